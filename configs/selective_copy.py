"""Selective copying (Gu & Dao 2023, Mamba): recall 16 tokens scattered among 4096 noise tokens.

    ./launch.sh --config configs/selective_copy.py:transformer
    ./launch.sh --config configs/selective_copy.py:lstm,cpu        # minutes on a laptop CPU
    ./launch.sh --config configs/selective_copy.py:ltmt,L=1024,tokens=16

Arg: a model (lstm | gru | transformer | ltmt), `cpu`, `L=<length>` (the noisy span),
`tokens=<tokens to recall>`, `vocab=<input vocabulary incl. noise and marker>`.
Mamba's setting (Section 4.1.1, Appendix E.1): length 4096, vocabulary 16, 16 tokens,
2-layer models of width 64, batch 64, constant learning rate 1e-4 for 400K steps.
Chance accuracy is 1/14.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.MODELS + ('cpu',), {'L': int, 'tokens': int, 'vocab': int})
  models = [m for m in ('lstm', 'gru', 'transformer', 'ltmt') if config_lib.has(arg, m)]
  model = models[0] if models else 'lstm'
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='selective_copy')
  c.task.length = int(config_lib.arg_value(arg, 'L', 64 if cpu else 4096))
  c.task.num_tokens = int(config_lib.arg_value(arg, 'tokens', 4 if cpu else 16))
  c.task.vocab = int(config_lib.arg_value(arg, 'vocab', 16))

  if model in ('lstm', 'gru'):
    c.model.layers = 2
    c.model.hidden = 64
    c.model.embed_dim = 64
  else:
    c.model.dim, c.model.heads, c.model.layers, c.model.mlp_dim = 64, 4, 2, 256
    c.model.dropout = 0.0
  if model == 'ltmt':
    c.model.segment = 256          # 17 segments of 4112 tokens
    c.model.memory_slots = 32      # room for the 16 tokens and their order

  c.opt.learning_rate = 1e-4
  c.opt.schedule = 'constant'
  c.opt.warmup_steps = 1000
  c.train.steps = 400_000
  c.train.batch_size = 64
  c.train.eval_batch_size = 64
  c.train.eval_examples = 1024
  c.train.eval_every = 10_000
  c.train.log_every = 500
  c.ckpt.every = 10_000

  if cpu:
    if model in ('lstm', 'gru'):
      c.model.layers, c.model.hidden, c.model.embed_dim = 1, 128, 32
    else:
      c.model.dim, c.model.heads, c.model.layers, c.model.mlp_dim = 64, 4, 2, 128
    if model == 'ltmt':
      c.model.segment, c.model.memory_slots = 16, 8
    c.opt.learning_rate = 3e-3
    c.opt.schedule = 'cosine'
    c.opt.warmup_steps = 100
    c.train.steps = 1500
    c.train.batch_size = 64
    c.train.eval_batch_size = 256
    c.train.eval_examples = 512
    c.train.eval_every = 500
    c.train.log_every = 50
    c.ckpt.every = 500
  return config_lib.lock(c)
