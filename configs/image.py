"""LRA Image: CIFAR-10 as 1024 grayscale pixel tokens, 10 classes.

    ./launch.sh --config configs/image.py:transformer
    ./launch.sh --config configs/image.py:lstm,cpu         # a few minutes on a laptop CPU

Arg: a model (a name in ltmjax.models.MODELS), `cpu`, `order=row` (32 steps of 32 values).
Needs tfds `cifar10` prepared as array_record once on a machine with network (the error
message gives the command). As in LRA (lra_benchmarks/image/input_pipeline.py), training
uses the first 90% of CIFAR-10's train split and the test split is reported. The
Transformer follows lra_benchmarks/image/configs/cifar10/base_cifar10_config.py: emb_dim
32, 1 head, 1 layer, mlp_dim 64, dropout 0.3, learned positions, CLS pooling, batch 256,
200 epochs of 45000 images (35000 steps), learning rate 5e-4 with one epoch of linear
warmup and cosine decay, no weight decay, no gradient clipping.
"""
from ltmjax import config_lib

STEPS_PER_EPOCH = 45000 // 256


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu',), {'order': str})
  model = config_lib.model_arg(arg)
  c = config_lib.base_config(model=model, task='cifar10')
  c.task.train_split = 'train[:90%]'
  c.task.order = config_lib.arg_value(arg, 'order', 'pixel')
  c.task.input = 'tokens' if c.task.order == 'pixel' else 'real'

  config_lib.set_model(c, recurrent=dict(hidden=128, embed_dim=32),
                       residual=dict(dim=64, layers=2, dropout=0.3),
                       attention=dict(dim=32, heads=1, layers=1, mlp_dim=64, dropout=0.3,
                                      positions='learned', pool='mean'),
                       transformer=dict(pool='cls'),
                       ltmt=dict(segment=64 if c.task.order == 'pixel' else 8, memory_slots=16))

  c.opt.learning_rate = 5e-4
  c.opt.warmup_steps = STEPS_PER_EPOCH
  c.opt.clip_norm = 0.0
  # eval batches of 200: the 10000 test images in 50 full batches.
  config_lib.assign(c.train, steps=STEPS_PER_EPOCH * 200, batch_size=256, eval_batch_size=200,
                    eval_every=STEPS_PER_EPOCH * 5, log_every=50)
  c.ckpt.every = STEPS_PER_EPOCH * 5

  if config_lib.has(arg, 'cpu'):
    c.train.eval_examples = 512
    config_lib.set_model(c, recurrent=dict(hidden=64), ltmt=dict(memory_slots=8))
    c.opt.warmup_steps = 50
    config_lib.assign(c.train, steps=300, batch_size=32, eval_batch_size=128, eval_every=150,
                      log_every=25)
    c.ckpt.every = 150
  return config_lib.lock(c)
