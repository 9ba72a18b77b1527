"""Copy memory task (Arjovsky et al. 2016) for LSTM, GRU, Transformer and LTM-T.

    ./launch.sh --config configs/copy.py:lstm,T=500        # paper settings, T = 100 ... 1000
    ./launch.sh --config configs/copy.py:ltmt,cpu          # minutes on a laptop CPU

Argument (comma-separated): a model (a name in ltmjax.models.MODELS; default lstm),
`cpu` (a short blank span and small models), `T=<blank span>`, `symbols=<symbols to
recall>` (default 10; 5 with `cpu`), `steps=<train steps>`.
Ten symbols from an alphabet of 8 are recalled after T blanks; the memoryless
baseline's cross-entropy is 10 log 8 / (T + 20). The `cpu` variant copies 5 symbols
across 10 blanks, longer than one LTM-T segment (8), so the memory must carry them;
each model gets about a minute of a 2-core CPU (recurrent steps are cheaper, so they get
more of them: 6000 steps for LSTM/GRU, 800 for the Transformer and LTM-T, 1500 for the
residual family: mLSTM, sLSTM, Mamba; mLSTM recalls all symbols by step 250).
"""
from ltmjax import config_lib

def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu',),
                       {'T': int, 'symbols': int, 'steps': int})
  model = config_lib.model_arg(arg)
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='copy')
  c.task.blank_len = int(config_lib.arg_value(arg, 'T', 10 if cpu else 100))
  c.task.length = int(config_lib.arg_value(arg, 'symbols', 5 if cpu else 10))
  c.train.batch_size = 64
  c.train.steps = (config_lib.by_family(model, recurrent=6000, residual=1500, attention=800)
                   if cpu else 20000)
  c.train.eval_every = 500 if cpu else 2000
  c.train.eval_examples = 1024
  c.ckpt.every = 500 if cpu else 2000
  c.opt.learning_rate = config_lib.by_family(model, recurrent=1e-2 if cpu else 1e-3,
                                             residual=3e-3 if cpu else 1e-3, attention=1e-3)
  c.opt.warmup_steps = 100 if cpu else 1000

  if cpu:
    config_lib.set_model(c, recurrent=dict(hidden=64, embed_dim=16),
                         residual=config_lib.cpu_residual(),
                         attention=config_lib.cpu_attention(dropout=0.0),
                         ltmt=dict(segment=8, memory_slots=8, remat=False))
  else:
    config_lib.set_model(c, recurrent=dict(hidden=128, embed_dim=32),
                         residual=dict(dim=128, layers=4), ltmt=dict(segment=64, memory_slots=16))
  config_lib.set_model(c, transformer=dict(positions='learned'))
  c.train.steps = int(config_lib.arg_value(arg, 'steps', c.train.steps))
  return config_lib.lock(c)
