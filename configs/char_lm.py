"""Character-level language modelling on Tiny Shakespeare (bytes, bits per character).

    ./launch.sh --config configs/char_lm.py:transformer
    ./launch.sh --config configs/char_lm.py:lstm,cpu        # built-in corpus, minutes on a CPU
    ./launch.sh --config configs/char_lm.py:lstm,source=files,files=~/data/input.txt
    python -m ltmjax.sample --config configs/char_lm.py:lstm,cpu --workdir runs/char_lm_lstm_cpu \\
        --prompt "MARA:" --length 200 --temperature 0.8

Arg: a model (lstm | gru | transformer | ltmt), `cpu`, `T=<window>`,
`source=tfds|files|builtin`, `files=<glob>`, `data_dir=<dir>`.
Default corpus: tfds `tiny_shakespeare` (prepare it once online; the error says how), its
train split for training and its validation split for evaluation. `cpu` switches to the
small built-in corpus. The Transformer follows nanoGPT's shakespeare_char: 6 layers,
6 heads, width 384, dropout 0.2, window 256, batch 64, lr 1e-3 (cosine to 1e-4, AdamW
b2 = 0.99), 5000 steps. The LSTM follows char-rnn: 2 layers of 512 with dropout.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.MODELS + ('cpu',),
                       {'T': int, 'source': str, 'files': str, 'data_dir': str})
  models = [m for m in ('lstm', 'gru', 'transformer', 'ltmt') if config_lib.has(arg, m)]
  model = models[0] if models else 'lstm'
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='char_lm')
  c.task.source = config_lib.arg_value(arg, 'source', 'builtin' if cpu else 'tfds')
  c.task.files = config_lib.arg_value(arg, 'files', '')
  c.task.data_dir = config_lib.arg_value(arg, 'data_dir', '')
  c.task.seq_len = int(config_lib.arg_value(arg, 'T', 64 if cpu else 256))

  if model in ('lstm', 'gru'):
    c.model.layers = 2
    c.model.hidden = 512
    c.model.embed_dim = 64
    c.model.dropout = 0.2
  else:
    c.model.dim, c.model.heads, c.model.layers, c.model.mlp_dim = 384, 6, 6, 1536
    c.model.dropout = 0.2
  if model == 'ltmt':
    c.model.segment = 64
    c.model.memory_slots = 32

  c.opt.learning_rate = 1e-3
  c.opt.end_factor = 0.1
  c.opt.b2 = 0.99
  c.opt.weight_decay = 0.1
  c.opt.warmup_steps = 100
  c.train.steps = 5000
  c.train.batch_size = 64
  c.train.eval_batch_size = 64
  c.train.eval_examples = 1024
  c.train.eval_every = 250
  c.train.log_every = 50
  c.ckpt.every = 500

  if cpu:
    if model in ('lstm', 'gru'):
      c.model.layers, c.model.hidden, c.model.embed_dim, c.model.dropout = 1, 256, 32, 0.0
    else:
      c.model.dim, c.model.heads, c.model.layers, c.model.mlp_dim = 128, 4, 2, 512
      c.model.dropout = 0.0
    if model == 'ltmt':
      c.model.segment, c.model.memory_slots = 16, 8
    c.opt.learning_rate = 3e-3
    c.opt.weight_decay = 0.0
    c.train.steps = 1000
    c.train.batch_size = 32
    c.train.eval_batch_size = 32
    c.train.eval_examples = 64
    c.train.eval_every = 250
    c.train.log_every = 50
    c.ckpt.every = 250
  return config_lib.lock(c)
