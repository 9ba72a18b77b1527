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

from typing import Mapping, Optional, Sequence, Tuple

import ml_collections


def opt_defaults() -> dict:
  return dict(
      name='adamw',            # adamw | adam | sgd | lamb
      learning_rate=1e-3,
      schedule='cosine',       # cosine | constant | linear | wsd (ltmjax/optim.py)
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
      eval_examples=1024,      # eval set size: procedural tasks draw this many; dataset tasks
                               # read the first N of task.eval_split (0 = all, their default)
      eval_every=500,
      log_every=50,
      dtype='float32',         # compute dtype: float32 | bfloat16 (params stay float32)
      progress=True,           # progress bar with loss and ETA
      curriculum='',           # '' or 'STEP:LENGTH,...': task.length grows at those steps
                               # (ltmjax.curriculum; e.g. '0:512,2000:1024,4000:2048')
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
      train=dict(train_defaults(), eval_examples=tasks.get(task).default_eval_examples),
      ckpt=ckpt_defaults(),
      parallel=parallel_defaults(),
  ))


def model_words() -> Tuple[str, ...]:
  """The model words a config argument may name: every model of the registry
  (`ltmjax.models.MODELS`, the registered cells with a family included)."""
  from ltmjax import models
  return tuple(models.MODELS)


def family(model: str) -> str:
  """The family of model `model` ('recurrent', 'residual', 'attention'; its registry entry)."""
  from ltmjax import models
  return models.family(model)


def model_arg(arg: Optional[str], default: str = 'lstm') -> str:
  """The model the config-file argument names (`configs/x.py:gru,cpu` -> 'gru'), or `default`."""
  return next((m for m in model_words() if has(arg, m)), default)


def by_family(model: str, **values):
  """The value given for the family of `model`: a setting outside the model group that
  differs by family, e.g. `by_family(model, recurrent=6000, residual=1500, attention=800)`.

  Raises:
    ConfigError: no value for the model's family (a config gives one for every family).
  """
  from ltmjax.errors import ConfigError
  fam = family(model)
  if fam not in values:
    raise ConfigError(f'this config gives no value for model {model!r} of family {fam!r} '
                      f'(only for {", ".join(values)}); add {fam}=... to its by_family call')
  return values[fam]


def assign(group: ml_collections.ConfigDict, **values) -> None:
  """`group.<key> = value` for each value; a key the group lacks is an error (no dead keys)."""
  for key, value in values.items():
    if key not in group:
      raise KeyError(f'no config key {key!r} here; the keys are {", ".join(sorted(group))}')
    group[key] = value


def set_model(c: ml_collections.ConfigDict, **groups: Optional[dict]) -> None:
  """The model group's sizes: the group of the model's family, then the group named after
  the model itself, where given.

  E.g. `set_model(c, recurrent=dict(hidden=64), residual=dict(dim=64), attention=dict(dim=64),
  transformer=dict(pool='cls'))`: lstm and gru (and every 'recurrent' cell) get hidden=64,
  the Transformer dim=64 then pool='cls'. The families are the registry's
  (`ltmjax.models.FAMILIES`, each model's `family`); a config names no model otherwise.
  Raises:
    KeyError: a group that is neither a family nor a model, or a key the model lacks.
  """
  from ltmjax import models
  unknown = [k for k in groups if k not in models.FAMILIES and k not in models.MODELS]
  if unknown:
    raise KeyError(f'set_model: no family or model {", ".join(unknown)}; the families are '
                   f'{", ".join(models.FAMILIES)}, the models {", ".join(models.MODELS)}')
  name = c.model.name
  assign(c.model, **(groups.get(models.family(name)) or {}))
  assign(c.model, **(groups.get(name) or {}))


def cpu_attention(**changes) -> dict:
  """The attention sizes of the `cpu` configs (dim 64, 4 heads, 2 layers, MLP 128), changed."""
  return dict(dict(dim=64, heads=4, layers=2, mlp_dim=128), **changes)


def cpu_residual(**changes) -> dict:
  """The residual-family sizes of the `cpu` configs (dim 64, 2 layers), changed: the
  parameter count of `cpu_attention`'s Transformer, about (README's model sizes)."""
  return dict(dict(dim=64, layers=2), **changes)


def set_memory_defaults(c: ml_collections.ConfigDict, cpu: bool, steps=None) -> None:
  """Model sizes and schedule of the long-context memory configs (babilong, passkey).

  The answer is read where the question ends: the last position (LSTM, GRU), the final
  memory (LTM-T, pool='memory'), a mean over positions (the bidirectional Transformer).
  `cpu`: small models and 1500 steps of batch 32 at 1K tokens (LSTM: ~0.3 s of a core a step).
  `steps` (the config's `steps=` argument, or None) replaces the default number of steps.
  Every model trains with a segment curriculum (RMT / ARMT): 4 LTM-T segments first
  (256 bytes on CPU, 512 on GPU), doubling up to task.length (set it before this call);
  LTM-T keeps each memory slot at RMS 1 after every write (memory_norm='unit'; issue 20:
  at 16K / 64K bytes it read the passkey at 93.8 / 90.6 % over 2 seeds, 'rms_cap', each slot
  / max(1, its RMS), at 89.1 / 84.4 %).
  """
  if cpu:
    model = dict(recurrent=dict(layers=1, hidden=64, embed_dim=32), residual=cpu_residual(),
                 attention=cpu_attention(),
                 ltmt=dict(segment=64, memory_slots=8, pool='memory', remat=False))
    opt = dict(learning_rate=3e-3, weight_decay=0.0, warmup_steps=100)
    train = dict(steps=1500, batch_size=32, eval_examples=256, eval_every=250, log_every=50)
  else:
    model = dict(recurrent=dict(layers=2, hidden=256, embed_dim=64),
                 residual=dict(dim=128, layers=4),
                 attention=dict(dim=128, heads=4, layers=2, mlp_dim=512, dropout=0.0),
                 ltmt=dict(segment=128, memory_slots=16, pool='memory'))
    opt = dict(learning_rate=1e-3, weight_decay=0.01, warmup_steps=500)
    train = dict(steps=20_000, batch_size=64, eval_examples=1024, eval_every=2000, log_every=100)
  set_model(c, **model)
  assign(c.opt, **opt)
  assign(c.train, eval_batch_size=64, **train)
  c.ckpt.every = train['eval_every']      # a checkpoint at each evaluation
  if steps is not None:
    c.train.steps = int(steps)
  c.train.curriculum = segment_curriculum(c.task.length, c.train.steps, 256 if cpu else 512)
  set_model(c, ltmt=dict(memory_norm='unit'))


def segment_curriculum(length: int, steps: int, first: int) -> str:
  """`train.curriculum` of the memory configs, RMT/ARMT-style: lengths double from `first`
  to `length` (the number of segments doubles), the stages starting evenly over the first
  60 % of `steps`, so the last 40 % train at `length`. E.g. (1024, 500, 256) ->
  '0:256,150:512,300:1024'; '' when `first` >= `length`."""
  lengths = [first]
  while lengths[-1] * 2 < length:
    lengths.append(lengths[-1] * 2)
  lengths = [n for n in lengths if n < length] + [length]
  if len(lengths) == 1:
    return ''
  starts = [round(0.6 * steps * i / (len(lengths) - 1)) for i in range(len(lengths))]
  return ','.join(f'{s}:{n}' for s, n in zip(starts, lengths))


def has(arg: Optional[str], word: str) -> bool:
  """Whether the config-file argument (`configs/x.py:cpu,big`) contains `word`."""
  return bool(arg) and word in str(arg).split(',')


def arg_value(arg: Optional[str], key: str, default=None):
  """Value of `key=value` in the config-file argument, e.g. `configs/copy.py:T=500`."""
  for part in str(arg or '').split(','):
    if part.startswith(key + '='):
      return part.split('=', 1)[1]
  return default


def check_arg(arg: Optional[str], words: Sequence[str] = (),
              values: Optional[Mapping[str, type]] = None) -> Optional[str]:
  """The config-file argument, checked against what the file accepts; returns `arg`.

  Call it first in `get_config`, so that a typo (`lsmt`, `cpuu`, `T=abc`) stops the run
  instead of silently falling back to a default.
  Args:
    words: the plain words the file reads with `has` (model names, `cpu`, ...).
    values: `key -> type` of the `key=value` parts it reads with `arg_value`, e.g. {'T': int}.
  Raises:
    ConfigError: an unknown word or key (the message lists the valid ones), a value that
      does not parse as its type, or two model names.
  """
  from ltmjax import models
  from ltmjax.errors import ConfigError
  values = dict(values or {})
  valid = ', '.join(list(words) + [f'{k}=<{t.__name__}>' for k, t in values.items()])
  parts = [p for p in str(arg or '').split(',') if p]
  for part in parts:
    key, eq, value = part.partition('=')
    if not eq and key in words:
      continue
    if eq and key in values:
      try:
        values[key](value)
      except ValueError:
        kind = {int: 'an integer', float: 'a number'}.get(values[key], values[key].__name__)
        raise ConfigError(f'config argument {part!r}: {key} must be {kind}') from None
      continue
    raise ConfigError(f'unknown config argument {part!r}; '
                      + (f'valid: {valid}' if valid else 'this config file takes no argument'))
  given = [w for w in words if w in models.MODELS and w in parts]
  if len(given) > 1:
    raise ConfigError(f'config argument {arg!r} names {len(given)} models '
                      f'({", ".join(given)}); pick one')
  return arg


def lock(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Locks the structure: overriding a key that does not exist is an error."""
  config.lock()
  return config
