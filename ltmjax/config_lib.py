"""Shared config defaults and helpers: the only ltmjax module a config file imports.

A config file defines `get_config(arg=None) -> ConfigDict`:

    from ltmjax import config_lib

    def get_config(arg=None):
      c = config_lib.base_config(model='lstm', task='copy')
      c.model.hidden = 256
      if config_lib.has(arg, 'cpu'):
        c.train.steps = 500
      return config_lib.lock(c)

Groups: model, task, opt, train, ckpt, parallel (+ seed). The model and task groups
start from their registry entries' `default_config()`, so every key is one the code
reads (no dead keys) and an override of an unknown key fails at parse time.
"""
from __future__ import annotations

from typing import Optional

import ml_collections


def opt_defaults() -> dict:
  return dict(
      name='adamw',            # adamw | adam | sgd | lamb
      learning_rate=1e-3,
      schedule='cosine',       # cosine | constant | linear
      warmup_steps=100,
      end_factor=0.0,          # final lr = learning_rate * end_factor (cosine, linear)
      weight_decay=0.0,
      b1=0.9,
      b2=0.999,
      clip_norm=1.0,           # global-norm gradient clipping; 0 disables
      accumulate_steps=1,      # gradient accumulation over k micro-batches
  )


def train_defaults() -> dict:
  return dict(
      steps=1000,
      batch_size=64,
      eval_batch_size=256,
      eval_examples=1024,      # procedural tasks: size of the fixed eval set
      eval_every=500,
      log_every=50,
      dtype='float32',         # compute dtype: float32 | bfloat16 (params stay float32)
      progress=True,           # progress bar with loss and ETA
  )


def ckpt_defaults() -> dict:
  return dict(every=500, keep=2)


def parallel_defaults() -> dict:
  # -1: all remaining devices; seq: devices that split one sequence (ring attention).
  return dict(data=-1, seq=1, model=1)


def base_config(*, model: str, task: str) -> ml_collections.ConfigDict:
  """A full config with every default; model and task defaults come from the registries."""
  from ltmjax import models, tasks  # imported here so a config file loads fast on error
  model_cfg = dict(name=model, **models.get(model).default_config())
  task_cfg = dict(name=task, **tasks.get(task).default_config())
  return ml_collections.ConfigDict(dict(
      seed=0,
      model=model_cfg,
      task=task_cfg,
      opt=opt_defaults(),
      train=train_defaults(),
      ckpt=ckpt_defaults(),
      parallel=parallel_defaults(),
  ))


def has(arg: Optional[str], word: str) -> bool:
  """Whether the config-file argument (`configs/x.py:cpu,big`) contains `word`."""
  return bool(arg) and word in str(arg).split(',')


def arg_value(arg: Optional[str], key: str, default=None):
  """Value of `key=value` in the config-file argument, e.g. `configs/copy.py:T=500`."""
  for part in str(arg or '').split(','):
    if part.startswith(key + '='):
      return part.split('=', 1)[1]
  return default


def lock(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Locks the structure: overriding a key that does not exist is an error."""
  config.lock()
  return config
