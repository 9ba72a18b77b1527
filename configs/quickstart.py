"""Quickstart: an LSTM learns the copy memory task on a laptop CPU in a few minutes.

    ./launch.sh --config configs/quickstart.py

Copy task (Arjovsky et al. 2016) with a blank span of 20: 10 symbols from an alphabet
of 8 must be recalled after the delimiter. Chance recall is 0.125.
"""
from ltmjax import config_lib


def get_config(arg=None):
  del arg
  c = config_lib.base_config(model='lstm', task='copy')
  c.task.blank_len = 20
  c.model.hidden = 128
  c.model.embed_dim = 32
  c.opt.learning_rate = 3e-3
  c.opt.warmup_steps = 100
  c.train.steps = 2000
  c.train.batch_size = 64
  c.train.eval_batch_size = 256
  c.train.eval_examples = 1024
  c.train.eval_every = 500
  c.train.log_every = 50
  c.ckpt.every = 500
  return config_lib.lock(c)
