"""Quickstart: an LSTM learns the copy memory task on a laptop CPU in about a minute.

    ./launch.sh --config configs/quickstart.py

Copy task (Arjovsky et al. 2016), CPU size: 5 symbols from an alphabet of 8 are
recalled after a span of 10 blanks (T = 20 steps). Chance recall is 0.125; the
memoryless baseline's cross-entropy is 5 log 8 / 20 = 0.52. After 6000 steps recall
accuracy is about 0.9 and still climbing (see README). The four-model comparison is `./launch.sh quickstart`.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg)
  c = config_lib.base_config(model='lstm', task='copy')
  c.task.update(blank_len=10, length=5, alphabet=8)
  c.model.update(hidden=64, embed_dim=16)
  c.opt.update(learning_rate=1e-2, warmup_steps=100)
  c.train.update(steps=6000, batch_size=64, eval_batch_size=256, eval_examples=1024,
                 eval_every=1000, log_every=100)
  c.ckpt.every = 1000
  return config_lib.lock(c)
