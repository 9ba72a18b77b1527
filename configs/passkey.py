"""Passkey retrieval (Mohtashami & Jaggi 2023) and multi-key needles (RULER, Hsieh et al. 2024).

    ./launch.sh --config configs/passkey.py:ltmt,T=16384
    ./launch.sh --config configs/passkey.py:lstm,cpu                  # minutes on a laptop CPU
    ./launch.sh --config configs/passkey.py:ltmt,multikey,needles=4,depth=0.25

Arg: a model (lstm | gru | transformer | ltmt), `cpu`, `multikey` (key-value needles;
default a single passkey), `T=<length in bytes>`, `digits=<key digits>`,
`needles=<key-value pairs>` (multikey), `depth=<0..1 or uniform>`,
`filler_dir=<folder of .txt files>` (default: the built-in play).
The key's digits are predicted as digit classes at the end (ltmjax/tasks/passkey.py):
`accuracy` needs every digit right (chance 10^-digits), `digit_accuracy` counts digits
(chance 0.1). `cpu`: 1K bytes, a 2-digit key, small models, a few minutes of one core.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.MODELS + ('cpu', 'multikey'),
                       {'T': int, 'digits': int, 'needles': int, 'depth': str,
                        'filler_dir': str})
  model = config_lib.model_arg(arg)
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='passkey')
  c.task.kind = 'multikey' if config_lib.has(arg, 'multikey') else 'single'
  c.task.length = int(config_lib.arg_value(arg, 'T', 1024 if cpu else 4096))
  c.task.digits = int(config_lib.arg_value(arg, 'digits', 2 if cpu else 5))
  c.task.needles = int(config_lib.arg_value(arg, 'needles', 4))
  c.task.depth = config_lib.arg_value(arg, 'depth', 'uniform')
  c.task.filler_dir = config_lib.arg_value(arg, 'filler_dir', '')

  # The key is read where the question ends: the last position (recurrent models), the
  # final memory (LTM-T), a mean over positions for the bidirectional Transformer.
  config_lib.set_model(c, recurrent=dict(layers=2, hidden=256, embed_dim=64),
                       attention=dict(dim=128, heads=4, layers=2, mlp_dim=512, dropout=0.0),
                       ltmt=dict(segment=128, memory_slots=16, pool='memory'))
  config_lib.assign(c.opt, learning_rate=1e-3, weight_decay=0.01, warmup_steps=500)
  config_lib.assign(c.train, steps=20_000, batch_size=64, eval_batch_size=64, eval_examples=1024,
                    eval_every=2000, log_every=100)
  c.ckpt.every = 2000

  if cpu:
    config_lib.set_model(c, recurrent=dict(layers=1, hidden=128, embed_dim=32),
                         attention=config_lib.cpu_attention(),
                         ltmt=dict(segment=64, memory_slots=8, pool='memory', remat=False))
    config_lib.assign(c.opt, learning_rate=3e-3, weight_decay=0.0, warmup_steps=100)
    config_lib.assign(c.train, steps=1500, batch_size=32, eval_batch_size=64, eval_examples=256,
                      eval_every=250, log_every=50)
    c.ckpt.every = 250
  return config_lib.lock(c)
