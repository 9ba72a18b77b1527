"""LRA Text: byte-level IMDB sentiment classification (T = 4096 bytes, 2 classes).

    ./launch.sh --config configs/text.py:transformer
    ./launch.sh --config configs/text.py:lstm,cpu          # a few minutes on a laptop CPU
    ./launch.sh --config configs/text.py:ltmt,T=1000       # LRA's released max_length

Arg: a model (a name in ltmjax.models.MODELS), `cpu`, `T=<bytes>`.
Needs tfds `imdb_reviews` prepared as array_record once on a machine with network (the
error message gives the command). The Transformer follows LRA's
lra_benchmarks/text_classification/configs/base_tc_config.py: emb_dim 256, 4 heads,
4 layers, mlp_dim 1024, CLS pooling, batch 32, 20k steps, weight decay 0.1, Adam
b2 = 0.98, 8000 warmup steps. LRA's schedule 0.05 * warmup * rsqrt_decay peaks at
0.05 / sqrt(8000) = 5.6e-4; we use AdamW with a 5e-4 peak and cosine decay.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu',), {'T': int})
  model = config_lib.model_arg(arg)
  c = config_lib.base_config(model=model, task='text')
  c.task.seq_len = int(config_lib.arg_value(arg, 'T', 4096))

  # Recurrent models pool the last real byte (padding is masked); LTM-T: 16 segments of 256.
  config_lib.set_model(c, recurrent=dict(hidden=256, embed_dim=64, pool='last'),
                       residual=dict(dim=256, layers=6, dropout=0.1),
                       attention=dict(dim=256, heads=4, layers=4, mlp_dim=1024, dropout=0.1,
                                      pool='mean'),
                       transformer=dict(pool='cls'), ltmt=dict(segment=256, memory_slots=32))
  config_lib.assign(c.opt, learning_rate=5e-4, warmup_steps=8000, weight_decay=0.1, b2=0.98)
  config_lib.assign(c.train, steps=20_000, batch_size=32, eval_batch_size=64, eval_every=1000,
                    log_every=100)
  c.ckpt.every = 1000

  if config_lib.has(arg, 'cpu'):
    c.task.seq_len = int(config_lib.arg_value(arg, 'T', 512))
    c.train.eval_examples = 256
    config_lib.set_model(c, recurrent=dict(hidden=64, embed_dim=32),
                         residual=config_lib.cpu_residual(dropout=0.0),
                         attention=config_lib.cpu_attention(),
                         ltmt=dict(segment=64, memory_slots=8))
    c.opt.warmup_steps = 50
    config_lib.assign(c.train, steps=300, batch_size=16, eval_batch_size=32, eval_every=150,
                      log_every=25)
    c.ckpt.every = 150
  return config_lib.lock(c)
