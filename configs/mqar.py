"""Multi-query associative recall (Arora et al. 2023, Zoology): recall the values of queried keys.

    ./launch.sh --config configs/mqar.py:transformer
    ./launch.sh --config configs/mqar.py:transformer,L=512,pairs=64
    ./launch.sh --config configs/mqar.py:lstm,cpu                 # minutes on a laptop CPU

Arg: a model (a name in ltmjax.models.MODELS), `cpu`, `L=<length>` (64 .. 512),
`pairs=<key-value pairs>` (4 .. 64; L >= 4 * pairs), `vocab=<vocabulary>`,
`steps=<train steps>`.
Zoology's setting: vocabulary 8192 (keys and values from disjoint halves), 100k training
and 3k test examples, batch 256, 64 epochs (= 25k steps), 2-layer models (width swept
64 .. 512; 128 here), AdamW with weight decay 0.1 and a learning rate swept around 3e-4.
Chance accuracy is 1/4096.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu',),
                       {'L': int, 'pairs': int, 'vocab': int, 'steps': int})
  model = config_lib.model_arg(arg)
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='mqar')
  c.task.length = int(config_lib.arg_value(arg, 'L', 64 if cpu else 256))
  c.task.num_pairs = int(config_lib.arg_value(arg, 'pairs', 4 if cpu else 16))
  c.task.vocab = int(config_lib.arg_value(arg, 'vocab', 256 if cpu else 8192))

  # LTM-T: one memory slot per pair at the largest setting.
  config_lib.set_model(c, recurrent=dict(layers=2, hidden=256, embed_dim=128),
                       residual=dict(dim=128, layers=4),
                       attention=dict(dim=128, heads=4, layers=2, mlp_dim=512, dropout=0.0),
                       ltmt=dict(segment=64, memory_slots=64))
  config_lib.assign(c.opt, learning_rate=3e-4, weight_decay=0.1, warmup_steps=500)
  config_lib.assign(c.train, steps=25_000, batch_size=256, eval_batch_size=256,
                    eval_examples=3072, eval_every=2500, log_every=100)
  c.ckpt.every = 2500

  if cpu:
    config_lib.set_model(c, recurrent=dict(layers=1, hidden=128, embed_dim=64),
                         residual=config_lib.cpu_residual(),
                         attention=config_lib.cpu_attention(),
                         ltmt=dict(segment=16, memory_slots=8))
    config_lib.assign(c.opt, learning_rate=3e-3, weight_decay=0.0, warmup_steps=100)
    config_lib.assign(c.train, steps=1500, batch_size=64, eval_batch_size=256, eval_examples=512,
                      eval_every=500, log_every=50)
    c.ckpt.every = 500
  c.train.steps = int(config_lib.arg_value(arg, 'steps', c.train.steps))
  return config_lib.lock(c)
