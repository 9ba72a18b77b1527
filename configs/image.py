"""LRA Image: CIFAR-10 as 1024 grayscale pixel tokens, 10 classes.

    ./launch.sh --config configs/image.py:transformer
    ./launch.sh --config configs/image.py:lstm,cpu         # a few minutes on a laptop CPU

Arg: a model (lstm | gru | transformer | ltmt), `cpu`, `order=row` (32 steps of 32 values).
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
  config_lib.check_arg(arg, config_lib.MODELS + ('cpu',), {'order': str})
  models = [m for m in ('lstm', 'gru', 'transformer', 'ltmt') if config_lib.has(arg, m)]
  model = models[0] if models else 'lstm'
  c = config_lib.base_config(model=model, task='cifar10')
  c.task.train_split = 'train[:90%]'
  c.task.order = config_lib.arg_value(arg, 'order', 'pixel')
  c.task.input = 'tokens' if c.task.order == 'pixel' else 'real'

  if model in ('lstm', 'gru'):
    c.model.hidden = 128
    c.model.embed_dim = 32
  else:
    c.model.dim = 32
    c.model.heads = 1
    c.model.layers = 1
    c.model.mlp_dim = 64
    c.model.dropout = 0.3
    c.model.positions = 'learned'
    c.model.pool = 'cls' if model == 'transformer' else 'mean'
  if model == 'ltmt':
    c.model.segment = 64 if c.task.order == 'pixel' else 8
    c.model.memory_slots = 16

  c.opt.learning_rate = 5e-4
  c.opt.warmup_steps = STEPS_PER_EPOCH
  c.opt.clip_norm = 0.0
  c.train.steps = STEPS_PER_EPOCH * 200
  c.train.batch_size = 256
  c.train.eval_batch_size = 200       # 10000 test images in 50 full batches
  c.train.eval_every = STEPS_PER_EPOCH * 5
  c.train.log_every = 50
  c.ckpt.every = STEPS_PER_EPOCH * 5

  if config_lib.has(arg, 'cpu'):
    c.task.max_eval_examples = 512
    if model in ('lstm', 'gru'):
      c.model.hidden = 64
    if model == 'ltmt':
      c.model.memory_slots = 8
    c.opt.warmup_steps = 50
    c.train.steps = 300
    c.train.batch_size = 32
    c.train.eval_batch_size = 128
    c.train.eval_every = 150
    c.train.log_every = 25
    c.ckpt.every = 150
  return config_lib.lock(c)
