"""Adding problem (Hochreiter & Schmidhuber 1997) for LSTM, GRU, Transformer and LTM-T.

    ./launch.sh --config configs/adding.py:gru,T=1000       # paper settings, T = 100 ... 1000
    ./launch.sh --config configs/adding.py:transformer,cpu  # minutes on a laptop CPU

Argument (comma-separated): a model (a name in ltmjax.models.MODELS; default lstm),
`cpu` (T=50 and small models), `T=<length>`, `steps=<train steps>`. Target 0.5 + (x1 + x2) / 4; predicting
the mean gives MSE 1/24 = 0.0417; a sequence counts as solved below 0.04 absolute error.
At CPU size each model gets about a minute of a 2-core CPU: 1000 steps for LSTM/GRU,
600 for the Transformer, LTM-T and the residual family (mLSTM, sLSTM, Mamba; their steps
cost more).
"""
from ltmjax import config_lib

def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu',), {'T': int, 'steps': int})
  model = config_lib.model_arg(arg)
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='adding')
  c.task.length = int(config_lib.arg_value(arg, 'T', 50 if cpu else 100))
  c.train.batch_size = 64
  c.train.steps = (config_lib.by_family(model, recurrent=1000, residual=600, attention=600)
                   if cpu else 20000)
  c.train.eval_every = 500 if cpu else 2000
  c.train.eval_examples = 1024
  c.ckpt.every = 500 if cpu else 2000
  c.opt.learning_rate = config_lib.by_family(model, recurrent=3e-3 if cpu else 1e-3,
                                             residual=3e-3 if cpu else 1e-3, attention=1e-3)
  c.opt.warmup_steps = 100 if cpu else 1000

  if cpu:
    config_lib.set_model(c, recurrent=dict(hidden=64), residual=config_lib.cpu_residual(),
                         attention=config_lib.cpu_attention(dropout=0.0),
                         ltmt=dict(layers=1, segment=25, memory_slots=8, remat=False))
  else:
    config_lib.set_model(c, recurrent=dict(hidden=128), residual=dict(dim=128, layers=4),
                         ltmt=dict(segment=64, memory_slots=16))
  c.train.steps = int(config_lib.arg_value(arg, 'steps', c.train.steps))
  return config_lib.lock(c)
