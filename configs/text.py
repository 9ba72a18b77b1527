"""LRA Text: byte-level IMDB sentiment classification (T = 4096 bytes, 2 classes).

    ./launch.sh --config configs/text.py:transformer
    ./launch.sh --config configs/text.py:lstm,cpu          # a few minutes on a laptop CPU
    ./launch.sh --config configs/text.py:ltmt,T=1000       # LRA's released max_length

Arg: a model (lstm | gru | transformer | ltmt), `cpu`, `T=<bytes>`.
Needs tfds `imdb_reviews` prepared as array_record once on a machine with network (the
error message gives the command). The Transformer follows LRA's
lra_benchmarks/text_classification/configs/base_tc_config.py: emb_dim 256, 4 heads,
4 layers, mlp_dim 1024, CLS pooling, batch 32, 20k steps, weight decay 0.1, Adam
b2 = 0.98, 8000 warmup steps. LRA's schedule 0.05 * warmup * rsqrt_decay peaks at
0.05 / sqrt(8000) = 5.6e-4; we use AdamW with a 5e-4 peak and cosine decay.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.MODELS + ('cpu',), {'T': int})
  models = [m for m in ('lstm', 'gru', 'transformer', 'ltmt') if config_lib.has(arg, m)]
  model = models[0] if models else 'lstm'
  c = config_lib.base_config(model=model, task='text')
  c.task.seq_len = int(config_lib.arg_value(arg, 'T', 4096))

  if model in ('lstm', 'gru'):
    c.model.hidden = 256
    c.model.embed_dim = 64
    c.model.pool = 'last'       # the last real byte (padding is masked)
  else:
    c.model.dim = 256
    c.model.heads = 4
    c.model.layers = 4
    c.model.mlp_dim = 1024
    c.model.dropout = 0.1
    c.model.pool = 'cls' if model == 'transformer' else 'mean'
  if model == 'ltmt':
    c.model.segment = 256       # 16 segments of 4096 bytes
    c.model.memory_slots = 32

  c.opt.learning_rate = 5e-4
  c.opt.warmup_steps = 8000
  c.opt.weight_decay = 0.1
  c.opt.b2 = 0.98
  c.train.steps = 20_000
  c.train.batch_size = 32
  c.train.eval_batch_size = 64
  c.train.eval_every = 1000
  c.train.log_every = 100
  c.ckpt.every = 1000

  if config_lib.has(arg, 'cpu'):
    c.task.seq_len = int(config_lib.arg_value(arg, 'T', 512))
    c.task.max_eval_examples = 256
    if model in ('lstm', 'gru'):
      c.model.hidden = 64
      c.model.embed_dim = 32
    else:
      c.model.dim, c.model.heads, c.model.layers, c.model.mlp_dim = 64, 4, 2, 128
    if model == 'ltmt':
      c.model.segment, c.model.memory_slots = 64, 8
    c.opt.warmup_steps = 50
    c.train.steps = 300
    c.train.batch_size = 16
    c.train.eval_batch_size = 32
    c.train.eval_every = 150
    c.train.log_every = 25
    c.ckpt.every = 150
  return config_lib.lock(c)
