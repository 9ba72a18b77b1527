"""LRA Pathfinder (32x32, T = 1024) and Path-X (128x128, T = 16384): are the markers connected?

    ./launch.sh --config configs/pathfinder.py:transformer
    ./launch.sh --config configs/pathfinder.py:lstm,cpu     # a few minutes on a laptop CPU
    ./launch.sh --config configs/pathfinder.py:ltmt,pathx   # Path-X

Arg: a model (a name in ltmjax.models.MODELS), `cpu`, `pathx` (128x128 images). The
200k images (160k/20k/20k) are generated locally into ~/tensorflow_datasets (or
$TFDS_DATA_DIR) on first use by `ltmjax.tasks.pathfinder`, in parallel over all cores
(about 3 CPU-hours at 32x32, 6 at 128x128: Linsley et al.'s construction redraws a lot).
The Transformer follows LRA's lra_benchmarks/image/configs/pathfinder32/transformer_base.py
(on base_pathfinder32_config.py): emb_dim 128, 4 heads, 1 layer, mlp_dim 128 (2 * qkv_dim
64), dropout 0.2, mean pooling, fixed positions, batch 512, 200 epochs (62.4k steps),
learning rate 1e-3 with one epoch of warmup and cosine decay, no weight decay.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu', 'pathx'))
  model = config_lib.model_arg(arg)
  c = config_lib.base_config(model=model, task='pathfinder')
  if config_lib.has(arg, 'pathx'):
    c.task.resolution = 128

  config_lib.set_model(c, recurrent=dict(hidden=256, embed_dim=64, pool='last'),
                       residual=dict(dim=128, layers=2, dropout=0.2),
                       attention=dict(dim=128, heads=4, layers=1, mlp_dim=128, dropout=0.2,
                                      pool='mean'),
                       ltmt=dict(segment=128 if c.task.resolution == 32 else 512, memory_slots=32))
  if c.task.resolution > 32:   # 16k x 16k scores do not fit densely
    config_lib.set_model(c, transformer=dict(attention='blockwise', remat='full'))

  c.opt.learning_rate = 1e-3
  c.opt.warmup_steps = 312              # one epoch of 160k / 512
  c.opt.weight_decay = 0.0
  c.opt.clip_norm = 0.0                 # LRA: grad_clip_norm None
  config_lib.assign(c.train, steps=62_400, batch_size=512, eval_batch_size=512, eval_every=3120,
                    log_every=100)    # 200 epochs
  c.ckpt.every = 3120

  if config_lib.has(arg, 'cpu'):
    # 2.5k images: generated in about a minute on 2 cores; a small model trains in minutes.
    c.task.train_examples, c.task.val_examples, c.task.test_examples = 2000, 256, 256
    config_lib.set_model(c, recurrent=dict(hidden=64, embed_dim=16),
                         residual=config_lib.cpu_residual(layers=1, dropout=0.0),
                         attention=config_lib.cpu_attention(layers=1),
                         ltmt=dict(segment=128, memory_slots=8))
    c.opt.warmup_steps = 50
    config_lib.assign(c.train, steps=300, batch_size=32, eval_batch_size=64, eval_every=150,
                      log_every=25)
    c.ckpt.every = 150
  return config_lib.lock(c)
