"""Character-level language modelling on Tiny Shakespeare (bytes, bits per character).

    ./launch.sh --config configs/char_lm.py:transformer
    ./launch.sh --config configs/char_lm.py:lstm,cpu        # built-in corpus, minutes on a CPU
    ./launch.sh --config configs/char_lm.py:lstm,source=files,files=~/data/input.txt
    python -m ltmjax.sample --config configs/char_lm.py:lstm,cpu --workdir runs/char_lm_lstm_cpu \\
        --prompt "MARA:" --length 200 --temperature 0.8

Arg: a model (a name in ltmjax.models.MODELS), `cpu`, `T=<window>`,
`source=tfds|files|builtin`, `files=<glob>`, `data_dir=<dir>`.
Default corpus: tfds `tiny_shakespeare` (prepare it once online; the error says how), its
train split for training and its validation split for evaluation. `cpu` switches to the
small built-in corpus. The Transformer follows nanoGPT's shakespeare_char: 6 layers,
6 heads, width 384, dropout 0.2, window 256, batch 64, lr 1e-3 (cosine to 1e-4, AdamW
b2 = 0.99), 5000 steps. The LSTM follows char-rnn: 2 layers of 512 with dropout.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu',),
                       {'T': int, 'source': str, 'files': str, 'data_dir': str})
  model = config_lib.model_arg(arg)
  cpu = config_lib.has(arg, 'cpu')
  c = config_lib.base_config(model=model, task='char_lm')
  c.task.source = config_lib.arg_value(arg, 'source', 'builtin' if cpu else 'tfds')
  c.task.files = config_lib.arg_value(arg, 'files', '')
  c.task.data_dir = config_lib.arg_value(arg, 'data_dir', '')
  c.task.seq_len = int(config_lib.arg_value(arg, 'T', 64 if cpu else 256))

  config_lib.set_model(c, recurrent=dict(layers=2, hidden=512, embed_dim=64, dropout=0.2),
                       residual=dict(dim=384, layers=12, dropout=0.2),
                       attention=dict(dim=384, heads=6, layers=6, mlp_dim=1536, dropout=0.2),
                       ltmt=dict(segment=64, memory_slots=32))
  config_lib.assign(c.opt, learning_rate=1e-3, end_factor=0.1, b2=0.99, weight_decay=0.1,
                    warmup_steps=100)
  config_lib.assign(c.train, steps=5000, batch_size=64, eval_batch_size=64, eval_examples=1024,
                    eval_every=250, log_every=50)
  c.ckpt.every = 500

  if cpu:
    config_lib.set_model(c, recurrent=dict(layers=1, hidden=256, embed_dim=32, dropout=0.0),
                         residual=dict(dim=128, layers=4, dropout=0.0),
                         attention=dict(dim=128, heads=4, layers=2, mlp_dim=512, dropout=0.0),
                         ltmt=dict(segment=16, memory_slots=8))
    config_lib.assign(c.opt, learning_rate=3e-3, weight_decay=0.0)
    config_lib.assign(c.train, steps=1000, batch_size=32, eval_batch_size=32, eval_examples=64,
                      eval_every=250, log_every=50)
    c.ckpt.every = 250
  return config_lib.lock(c)
