"""Copy memory task (Arjovsky et al. 2016) for LSTM, GRU, Transformer and LTM-T.

    ./launch.sh --config configs/copy.py:lstm,T=500        # paper settings, T = 100 ... 1000
    ./launch.sh --config configs/copy.py:ltmt,cpu          # minutes on a laptop CPU

Argument (comma-separated): a model (lstm | gru | transformer | ltmt; default lstm),
`cpu` (a short blank span and small models), `T=<blank span>`.
Ten symbols from an alphabet of 8 are recalled after T blanks; the memoryless
baseline's cross-entropy is 10 log 8 / (T + 20). The `cpu` variant copies 5 symbols
across 10 blanks, longer than one LTM-T segment (8), so the memory must carry them;
each model gets about a minute of a 2-core CPU (recurrent steps are cheaper, so they get
more of them: 6000 steps for LSTM/GRU, 800 for the Transformer and LTM-T).
"""
from ltmjax import config_lib

def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.MODELS + ('cpu',), {'T': int})
  model = config_lib.model_arg(arg)
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='copy')
  c.task.blank_len = int(config_lib.arg_value(arg, 'T', 10 if cpu else 100))
  c.task.length = 5 if cpu else 10
  c.train.batch_size = 64
  c.train.steps = (6000 if model in ('lstm', 'gru') else 800) if cpu else 20000
  c.train.eval_every = 500 if cpu else 2000
  c.train.eval_examples = 1024
  c.ckpt.every = 500 if cpu else 2000
  c.opt.learning_rate = 1e-2 if cpu else 1e-3
  c.opt.warmup_steps = 100 if cpu else 1000

  if model in ('lstm', 'gru'):
    c.model.hidden = 64 if cpu else 128
    c.model.embed_dim = 16 if cpu else 32
  elif model == 'transformer':
    if cpu:
      c.model.update(dim=64, heads=4, layers=2, mlp_dim=128, dropout=0.0)
    c.model.positions = 'learned'
    c.opt.learning_rate = 1e-3
  else:  # ltmt
    if cpu:
      c.model.update(dim=64, heads=4, layers=2, mlp_dim=128, segment=8, memory_slots=8,
                     remat=False)
    else:
      c.model.update(segment=64, memory_slots=16)
    c.opt.learning_rate = 1e-3
  return config_lib.lock(c)
