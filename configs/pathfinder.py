"""LRA Pathfinder (32x32, T = 1024) and Path-X (128x128, T = 16384): are the markers connected?

    ./launch.sh --config configs/pathfinder.py:transformer
    ./launch.sh --config configs/pathfinder.py:lstm,cpu     # a few minutes on a laptop CPU
    ./launch.sh --config configs/pathfinder.py:ltmt,pathx   # Path-X

Arg: a model (lstm | gru | transformer | ltmt), `cpu`, `pathx` (128x128 images). The
200k images (160k/20k/20k) are generated locally into ~/tensorflow_datasets (or
$TFDS_DATA_DIR) on first use by `ltmjax.tasks.pathfinder`, in parallel over all cores.
The Transformer follows LRA's lra_benchmarks/image/configs/pathfinder32/transformer_base.py
(on base_pathfinder32_config.py): emb_dim 128, 4 heads, 1 layer, mlp_dim 128 (2 * qkv_dim
64), dropout 0.2, mean pooling, fixed positions, batch 512, 200 epochs (62.4k steps),
learning rate 1e-3 with one epoch of warmup and cosine decay, no weight decay.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.MODELS + ('cpu', 'pathx'))
  models = [m for m in ('lstm', 'gru', 'transformer', 'ltmt') if config_lib.has(arg, m)]
  model = models[0] if models else 'lstm'
  c = config_lib.base_config(model=model, task='pathfinder')
  if config_lib.has(arg, 'pathx'):
    c.task.resolution = 128

  if model in ('lstm', 'gru'):
    c.model.hidden = 256
    c.model.embed_dim = 64
    c.model.pool = 'last'
  else:
    c.model.dim = 128
    c.model.heads = 4
    c.model.layers = 1
    c.model.mlp_dim = 128
    c.model.dropout = 0.2
    c.model.pool = 'mean'
  if model == 'ltmt':
    c.model.segment = 128 if c.task.resolution == 32 else 512
    c.model.memory_slots = 32
  if model == 'transformer' and c.task.resolution > 32:
    c.model.attention = 'blockwise'     # 16k x 16k scores do not fit densely
    c.model.remat = 'full'

  c.opt.learning_rate = 1e-3
  c.opt.warmup_steps = 312              # one epoch of 160k / 512
  c.opt.weight_decay = 0.0
  c.opt.clip_norm = 0.0                 # LRA: grad_clip_norm None
  c.train.steps = 62_400                # 200 epochs
  c.train.batch_size = 512
  c.train.eval_batch_size = 512
  c.train.eval_every = 3120
  c.train.log_every = 100
  c.ckpt.every = 3120

  if config_lib.has(arg, 'cpu'):
    # 2.5k images: generated in ~10 s on 2 cores; a small model trains in minutes.
    c.task.train_examples, c.task.val_examples, c.task.test_examples = 2000, 256, 256
    if model in ('lstm', 'gru'):
      c.model.hidden = 64
      c.model.embed_dim = 16
    else:
      c.model.dim, c.model.heads, c.model.layers, c.model.mlp_dim = 64, 4, 1, 128
    if model == 'ltmt':
      c.model.segment, c.model.memory_slots = 128, 8
    c.opt.warmup_steps = 50
    c.train.steps = 300
    c.train.batch_size = 32
    c.train.eval_batch_size = 64
    c.train.eval_every = 150
    c.train.log_every = 25
    c.ckpt.every = 150
  return config_lib.lock(c)
