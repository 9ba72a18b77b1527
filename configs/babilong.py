"""BABILong-style QA (Kuratov et al. 2024): a bAbI story hidden in filler text, then a question.

    ./launch.sh --config configs/babilong.py:ltmt,qa2,T=16384
    ./launch.sh --config configs/babilong.py:lstm,cpu                 # minutes on a laptop CPU
    ./launch.sh --config configs/babilong.py:ltmt,qa1,filler_dir=~/data/pg19/train

Arg: a model (a name in ltmjax.models.MODELS), `cpu`, a kind (qa1 .. qa5; default qa1),
`T=<length in bytes>`, `facts=<story sentences>`, `filler_dir=<folder of .txt files>`
(default: the built-in play), `steps=<train steps>`. Every model trains with a segment
curriculum (RMT / ARMT): from 256 bytes (`cpu`; 512 on GPU) the length doubles up to T,
the stages spread over the first 60 % of the steps; LTM-T bounds its memory
(model.memory_norm='unit': each slot at RMS 1). The story, filler and answers are generated here
(ltmjax/tasks/babi.py); the answer is a class (6 places; qa5: 4 people + 4 objects), so
chance accuracy is 1/6 (qa5: 1/8). The GPU default trains at 4K bytes with BABILong's
QA1-QA5 story sizes in mind (bAbI stories have 2-10 facts; 8 here). `cpu`: 1K bytes,
2 facts (3 for qa3, qa5), small models, 1500 steps (LSTM: about 8 minutes of one core; it
was still at chance, 18 %, after 1000 steps: learning QA from raw bytes takes longer).
"""
from ltmjax import config_lib

KINDS = ('qa1', 'qa2', 'qa3', 'qa4', 'qa5')


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu',) + KINDS,
                       {'T': int, 'facts': int, 'filler_dir': str,
                        'steps': int})
  model = config_lib.model_arg(arg)
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='babilong')
  c.task.kind = next((k for k in KINDS if config_lib.has(arg, k)), 'qa1')
  c.task.length = int(config_lib.arg_value(arg, 'T', 1024 if cpu else 4096))
  small = 3 if c.task.kind in ('qa3', 'qa5') else 2   # the fewest facts that ask qa3 / qa5
  c.task.facts = int(config_lib.arg_value(arg, 'facts', small if cpu else 8))
  c.task.filler_dir = config_lib.arg_value(arg, 'filler_dir', '')

  # Sizes, schedule, the segment curriculum up to task.length and LTM-T's bounded memory.
  config_lib.set_memory_defaults(c, cpu, steps=config_lib.arg_value(arg, 'steps', None))
  return config_lib.lock(c)
