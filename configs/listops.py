"""LRA ListOps: the value (0-9) of a nested MIN/MAX/MED/SM expression, 500-2000 tokens.

    ./launch.sh --config configs/listops.py:transformer
    ./launch.sh --config configs/listops.py:lstm,cpu        # a few minutes on a laptop CPU
    ./launch.sh --config configs/listops.py:ltmt

Arg: a model (lstm | gru | transformer | ltmt), `cpu`. The dataset (96k/2k/2k) is
generated locally into ~/tensorflow_datasets (or $TFDS_DATA_DIR) on first use
(`ltmjax.tasks.listops`; a few minutes on 2 cores); `cpu` generates a small, short version.
The Transformer follows LRA's lra_benchmarks/listops/configs/base_listops_config.py:
emb_dim 512, 8 heads, 6 layers, mlp_dim 2048, CLS pooling, batch 32, 5000 steps,
weight decay 0.1, 1000 warmup steps; LRA's schedule 0.05 * warmup * rsqrt_decay peaks
at 0.05 / sqrt(1000) = 1.6e-3, so we use AdamW (b2 = 0.98) with that peak and cosine decay.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.MODELS + ('cpu',))
  models = [m for m in ('lstm', 'gru', 'transformer', 'ltmt') if config_lib.has(arg, m)]
  model = models[0] if models else 'lstm'
  c = config_lib.base_config(model=model, task='listops')

  if model in ('lstm', 'gru'):
    c.model.hidden = 256
    c.model.embed_dim = 64
    c.model.pool = 'last'       # the last real token (padding is masked)
  else:
    c.model.dim = 512
    c.model.heads = 8
    c.model.layers = 6
    c.model.mlp_dim = 2048
    c.model.dropout = 0.1
    c.model.pool = 'cls' if model == 'transformer' else 'mean'
  if model == 'ltmt':
    c.model.segment = 100       # 20 segments of 2000 tokens
    c.model.memory_slots = 32

  c.opt.learning_rate = 1.6e-3
  c.opt.warmup_steps = 1000
  c.opt.weight_decay = 0.1
  c.opt.b2 = 0.98
  c.train.steps = 5000
  c.train.batch_size = 32
  c.train.eval_batch_size = 64
  c.train.eval_every = 500
  c.train.log_every = 50
  c.ckpt.every = 500

  if config_lib.has(arg, 'cpu'):
    # 2.4k expressions of 50-200 tokens: generated in seconds, a model learns in minutes.
    c.task.train_examples, c.task.val_examples, c.task.test_examples = 2000, 256, 256
    c.task.min_length, c.task.max_length, c.task.seq_len = 50, 200, 200
    if model in ('lstm', 'gru'):
      c.model.hidden = 64
      c.model.embed_dim = 32
    else:
      c.model.dim, c.model.heads, c.model.layers, c.model.mlp_dim = 64, 4, 2, 128
    if model == 'ltmt':
      c.model.segment, c.model.memory_slots = 25, 8
    c.opt.learning_rate = 1e-3
    c.opt.warmup_steps = 50
    c.train.steps = 400
    c.train.batch_size = 32
    c.train.eval_batch_size = 64
    c.train.eval_every = 200
    c.train.log_every = 25
    c.ckpt.every = 200
  return config_lib.lock(c)
