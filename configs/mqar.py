"""Multi-query associative recall (Arora et al. 2023, Zoology): recall the values of queried keys.

    ./launch.sh --config configs/mqar.py:transformer
    ./launch.sh --config configs/mqar.py:transformer,L=512,pairs=64
    ./launch.sh --config configs/mqar.py:lstm,cpu                 # minutes on a laptop CPU

Arg: a model (lstm | gru | transformer | ltmt), `cpu`, `L=<length>` (64 .. 512),
`pairs=<key-value pairs>` (4 .. 64; L >= 4 * pairs), `vocab=<vocabulary>`.
Zoology's setting: vocabulary 8192 (keys and values from disjoint halves), 100k training
and 3k test examples, batch 256, 64 epochs (= 25k steps), 2-layer models (width swept
64 .. 512; 128 here), AdamW with weight decay 0.1 and a learning rate swept around 3e-4.
Chance accuracy is 1/4096.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.MODELS + ('cpu',), {'L': int, 'pairs': int, 'vocab': int})
  models = [m for m in ('lstm', 'gru', 'transformer', 'ltmt') if config_lib.has(arg, m)]
  model = models[0] if models else 'lstm'
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='mqar')
  c.task.length = int(config_lib.arg_value(arg, 'L', 64 if cpu else 256))
  c.task.num_pairs = int(config_lib.arg_value(arg, 'pairs', 4 if cpu else 16))
  c.task.vocab = int(config_lib.arg_value(arg, 'vocab', 256 if cpu else 8192))

  if model in ('lstm', 'gru'):
    c.model.layers = 2
    c.model.hidden = 256
    c.model.embed_dim = 128
  else:
    c.model.dim, c.model.heads, c.model.layers, c.model.mlp_dim = 128, 4, 2, 512
    c.model.dropout = 0.0
  if model == 'ltmt':
    c.model.segment = 64
    c.model.memory_slots = 64      # one slot per pair at the largest setting

  c.opt.learning_rate = 3e-4
  c.opt.weight_decay = 0.1
  c.opt.warmup_steps = 500
  c.train.steps = 25_000
  c.train.batch_size = 256
  c.train.eval_batch_size = 256
  c.train.eval_examples = 3072
  c.train.eval_every = 2500
  c.train.log_every = 100
  c.ckpt.every = 2500

  if cpu:
    if model in ('lstm', 'gru'):
      c.model.layers, c.model.hidden, c.model.embed_dim = 1, 128, 64
    else:
      c.model.dim, c.model.heads, c.model.layers, c.model.mlp_dim = 64, 4, 2, 128
    if model == 'ltmt':
      c.model.segment, c.model.memory_slots = 16, 8
    c.opt.learning_rate = 3e-3
    c.opt.weight_decay = 0.0
    c.opt.warmup_steps = 100
    c.train.steps = 1500
    c.train.batch_size = 64
    c.train.eval_batch_size = 256
    c.train.eval_examples = 512
    c.train.eval_every = 500
    c.train.log_every = 50
    c.ckpt.every = 500
  return config_lib.lock(c)
