"""Selective copying (Gu & Dao 2023, Mamba): recall 16 tokens scattered among 4096 noise tokens.

    ./launch.sh --config configs/selective_copy.py:transformer
    ./launch.sh --config configs/selective_copy.py:lstm,cpu        # minutes on a laptop CPU
    ./launch.sh --config configs/selective_copy.py:ltmt,L=1024,tokens=16

Arg: a model (a name in ltmjax.models.MODELS), `cpu`, `L=<length>` (the noisy span),
`tokens=<tokens to recall>`, `vocab=<input vocabulary incl. noise and marker>`,
`steps=<train steps>`.
Mamba's setting (Section 4.1.1, Appendix E.1): length 4096, vocabulary 16, 16 tokens,
2-layer models of width 64, batch 64, constant learning rate 1e-4 for 400K steps.
Chance accuracy is 1/14.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu',),
                       {'L': int, 'tokens': int, 'vocab': int, 'steps': int})
  model = config_lib.model_arg(arg)
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='selective_copy')
  c.task.length = int(config_lib.arg_value(arg, 'L', 64 if cpu else 4096))
  c.task.num_tokens = int(config_lib.arg_value(arg, 'tokens', 4 if cpu else 16))
  c.task.vocab = int(config_lib.arg_value(arg, 'vocab', 16))

  # LTM-T: 17 segments of 4112 tokens; 32 slots, room for the 16 tokens and their order.
  config_lib.set_model(c, recurrent=dict(layers=2, hidden=64, embed_dim=64),
                       residual=dict(dim=64, layers=4),
                       attention=dict(dim=64, heads=4, layers=2, mlp_dim=256, dropout=0.0),
                       ltmt=dict(segment=256, memory_slots=32))
  config_lib.assign(c.opt, learning_rate=1e-4, schedule='constant', warmup_steps=1000)
  config_lib.assign(c.train, steps=400_000, batch_size=64, eval_batch_size=64,
                    eval_examples=1024, eval_every=10_000, log_every=500)
  c.ckpt.every = 10_000

  if cpu:
    config_lib.set_model(c, recurrent=dict(layers=1, hidden=128, embed_dim=32),
                         residual=config_lib.cpu_residual(),
                         attention=config_lib.cpu_attention(),
                         ltmt=dict(segment=16, memory_slots=8))
    config_lib.assign(c.opt, learning_rate=3e-3, schedule='cosine', warmup_steps=100)
    config_lib.assign(c.train, steps=1500, batch_size=64, eval_batch_size=256, eval_examples=512,
                      eval_every=500, log_every=50)
    c.ckpt.every = 500
  c.train.steps = int(config_lib.arg_value(arg, 'steps', c.train.steps))
  return config_lib.lock(c)
