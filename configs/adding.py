"""Adding problem (Hochreiter & Schmidhuber 1997) for LSTM, GRU, Transformer and LTM-T.

    ./launch.sh --config configs/adding.py:gru,T=1000       # paper settings, T = 100 ... 1000
    ./launch.sh --config configs/adding.py:transformer,cpu  # minutes on a laptop CPU

Argument (comma-separated): a model (lstm | gru | transformer | ltmt; default lstm),
`cpu` (T=50 and small models), `T=<length>`. Target 0.5 + (x1 + x2) / 4; predicting
the mean gives MSE 1/24 = 0.0417; a sequence counts as solved below 0.04 absolute error.
At CPU size each model gets about a minute of a 2-core CPU: 1000 steps for LSTM/GRU,
600 for the Transformer and LTM-T (whose steps cost more).
"""
from ltmjax import config_lib

def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.MODELS + ('cpu',), {'T': int})
  model = config_lib.model_arg(arg)
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='adding')
  c.task.length = int(config_lib.arg_value(arg, 'T', 50 if cpu else 100))
  c.train.batch_size = 64
  c.train.steps = (1000 if model in ('lstm', 'gru') else 600) if cpu else 20000
  c.train.eval_every = 500 if cpu else 2000
  c.train.eval_examples = 1024
  c.ckpt.every = 500 if cpu else 2000
  c.opt.learning_rate = 3e-3 if cpu else 1e-3
  c.opt.warmup_steps = 100 if cpu else 1000

  if model in ('lstm', 'gru'):
    c.model.hidden = 64 if cpu else 128
  elif model == 'transformer':
    if cpu:
      c.model.update(dim=64, heads=4, layers=2, mlp_dim=128, dropout=0.0)
    c.opt.learning_rate = 1e-3
  else:  # ltmt
    if cpu:
      c.model.update(dim=64, heads=4, layers=1, mlp_dim=128, segment=25, memory_slots=8,
                     remat=False)
    else:
      c.model.update(segment=64, memory_slots=16)
    c.opt.learning_rate = 1e-3
  return config_lib.lock(c)
