"""Passkey retrieval (Mohtashami & Jaggi 2023) and multi-key needles (RULER, Hsieh et al. 2024).

    ./launch.sh --config configs/passkey.py:ltmt,T=16384
    ./launch.sh --config configs/passkey.py:lstm,cpu                  # minutes on a laptop CPU
    ./launch.sh --config configs/passkey.py:ltmt,multikey,needles=4,depth=0.25

Arg: a model (a name in ltmjax.models.MODELS), `cpu`, `multikey` (key-value needles;
default a single passkey), `T=<length in bytes>`, `digits=<key digits>`,
`needles=<key-value pairs>` (multikey), `depth=<0..1 or uniform>`,
`filler_dir=<folder of .txt files>` (default: the built-in play), `steps=<train steps>`.
Every model trains with a segment curriculum (RMT / ARMT): from 256 bytes (`cpu`; 512 on
GPU) the length doubles up to T, the stages spread over the first 60 % of the steps
(`cpu` at T=1024, 1500 steps: '0:256,450:512,900:1024'); LTM-T bounds its memory
(model.memory_norm='unit': each slot at RMS 1). Both let LTM-T read a key far past T (issue 20).
The key's digits are predicted as digit classes at the end (ltmjax/tasks/passkey.py):
`accuracy` needs every digit right (chance 10^-digits), `digit_accuracy` counts digits
(chance 0.1). `cpu`: 1K bytes, a 2-digit key, small models, 1500 steps (LSTM: about 8
minutes of one core).
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu', 'multikey'),
                       {'T': int, 'digits': int, 'needles': int, 'depth': str,
                        'filler_dir': str,
                        'steps': int})
  model = config_lib.model_arg(arg)
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='passkey')
  c.task.kind = 'multikey' if config_lib.has(arg, 'multikey') else 'single'
  c.task.length = int(config_lib.arg_value(arg, 'T', 1024 if cpu else 4096))
  c.task.digits = int(config_lib.arg_value(arg, 'digits', 2 if cpu else 5))
  c.task.needles = int(config_lib.arg_value(arg, 'needles', 4))
  c.task.depth = config_lib.arg_value(arg, 'depth', 'uniform')
  c.task.filler_dir = config_lib.arg_value(arg, 'filler_dir', '')

  # Sizes, schedule, the segment curriculum up to task.length and LTM-T's bounded memory.
  config_lib.set_memory_defaults(c, cpu, steps=config_lib.arg_value(arg, 'steps', None))
  return config_lib.lock(c)
