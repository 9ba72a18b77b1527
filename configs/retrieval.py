"""LRA Retrieval: byte-level AAN citation matching, two documents of 4000 bytes, 2 classes.

    ./launch.sh --config configs/retrieval.py:transformer
    ./launch.sh --config configs/retrieval.py:lstm,cpu     # a few minutes on a laptop CPU

Arg: a model (lstm | gru | transformer | ltmt), `cpu`, `T=<bytes per document>`.
Needs the user's copy of LRA's tsv_data/new_aan_pairs.{train,eval,test}.tsv in
task.manual_dir (default <tfds data_dir>/downloads/manual/lra_aan); the first run turns
them into an array_record tfds dataset. Each document is encoded by the same model and
the two features are combined by the dual-encoder head (a pair task). The Transformer
follows LRA's lra_benchmarks/matching/configs/base_match_config.py: emb_dim 128, 4 heads,
4 layers, mlp_dim 512, CLS pooling, batch 32, 5000 steps, weight decay 0.1, Adam
b2 = 0.98. LRA's warmup (8000 steps) is longer than its run, so its learning rate only
climbs to 0.05 * 5000/8000 / sqrt(8000) = 3.5e-4; we use AdamW with a 5e-4 peak after 500
warmup steps and cosine decay.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.MODELS + ('cpu',), {'T': int})
  models = [m for m in ('lstm', 'gru', 'transformer', 'ltmt') if config_lib.has(arg, m)]
  model = models[0] if models else 'lstm'
  c = config_lib.base_config(model=model, task='retrieval')
  c.task.seq_len = int(config_lib.arg_value(arg, 'T', 4000))

  if model in ('lstm', 'gru'):
    c.model.hidden = 128
    c.model.embed_dim = 64
    c.model.pool = 'last'       # the last real byte (padding is masked)
  else:
    c.model.dim = 128
    c.model.heads = 4
    c.model.layers = 4
    c.model.mlp_dim = 512
    c.model.dropout = 0.1
    c.model.pool = 'cls' if model == 'transformer' else 'mean'
  if model == 'ltmt':
    c.model.segment = 200       # 20 segments of 4000 bytes
    c.model.memory_slots = 32

  c.opt.learning_rate = 5e-4
  c.opt.warmup_steps = 500
  c.opt.weight_decay = 0.1
  c.opt.b2 = 0.98
  c.train.steps = 5000
  c.train.batch_size = 32
  c.train.eval_batch_size = 64
  c.train.eval_every = 500
  c.train.log_every = 50
  c.ckpt.every = 500

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
