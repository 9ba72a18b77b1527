"""A config checked before any work: names the registries know, values in range, devices.

Each check raises ConfigError with one line that names the key and the fix; `main` runs
them before anything is compiled, written or restored.
"""
from __future__ import annotations

import math
from typing import Any

from ltmjax.errors import ConfigError
from ltmjax.workdir import flatten

# (group.key, lowest value): counts and sizes of the run itself.
AT_LEAST = {
    'train.steps': 1, 'train.batch_size': 1, 'train.eval_batch_size': 1,
    'train.eval_examples': 0, 'train.eval_every': 1, 'train.log_every': 1,   # 0: whole split
    'ckpt.every': 1, 'ckpt.keep': 1, 'opt.warmup_steps': 0, 'opt.accumulate_steps': 1,
    'opt.weight_decay': 0, 'opt.clip_norm': 0, 'opt.end_factor': 0, 'seed': 0,
    'model.chunk_size': 0,   # residual models: 0 runs the step scan (models/residual.py)
}
BELOW_ONE = ('opt.b1', 'opt.b2')   # in [0, 1)


def config(cfg) -> None:
  """Registries, ranges and the curriculum's stages; no devices needed."""
  registries(cfg)
  ranges(cfg)
  from ltmjax import curriculum
  curriculum.of_config(cfg)


def registries(cfg) -> None:
  """The model and task names are known and their groups hold exactly their keys."""
  from ltmjax import models, tasks
  for group, registry in (('model', models), ('task', tasks)):
    name = cfg[group].name
    try:
      entry = registry.get(name)
    except ValueError as e:
      raise ConfigError(f'{group}.name: {e}') from None
    expected = set(entry.default_config()) | {'name'}
    actual = set(cfg[group].keys())
    if actual != expected:
      raise ConfigError(
          f'the {group} group does not fit {group} {name!r} (unexpected: '
          f'{", ".join(sorted(actual - expected)) or "none"}; missing: '
          f'{", ".join(sorted(expected - actual)) or "none"}); pick the {group} in the config '
          f'file argument (e.g. configs/copy.py:transformer) instead of overriding {group}.name')


def ranges(cfg) -> None:
  """Every number finite; run sizes, model widths and rates in range.

  Model and task integers follow their registry defaults: a key whose default is 0 may be
  0 (0 switches something off), any other model integer (a width, a count of layers or
  heads) is at least 1, and no task integer is negative (the task checks the rest).
  """
  from ltmjax import models, tasks
  flat = flatten(cfg.to_dict())
  defaults = {f'model.{k}': v for k, v in models.get(cfg.model.name).default_config().items()}
  defaults.update({f'task.{k}': v for k, v in tasks.get(cfg.task.name).default_config().items()})
  for key, value in flat.items():
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      continue
    if isinstance(value, float) and not math.isfinite(value):
      _bad(key, value, 'that is finite')
    low = AT_LEAST.get(key)
    if low is None and key.startswith('model.') and isinstance(value, int):
      low = 0 if defaults.get(key) == 0 else 1
    if low is None and key.startswith('task.') and isinstance(value, int):
      low = 0
    if low is not None and value < low:
      _bad(key, value, f'>= {low}')
    if (key in BELOW_ONE or key.endswith('dropout')) and not 0 <= value < 1:
      _bad(key, value, 'in [0, 1)')
  if not flat['opt.learning_rate'] > 0:
    _bad('opt.learning_rate', flat['opt.learning_rate'], '> 0')
  eval_examples, eval_batch = int(flat['train.eval_examples']), int(flat['train.eval_batch_size'])
  if eval_examples > 0 and eval_examples % eval_batch:
    # The eval set is cut into whole batches: the rest would silently go unevaluated.
    lower, upper = eval_examples // eval_batch * eval_batch, (eval_examples // eval_batch + 1) * eval_batch
    raise ConfigError(
        f'train.eval_examples={eval_examples} is not a multiple of train.eval_batch_size='
        f'{eval_batch} (only {lower or eval_batch} would be evaluated): set '
        f'--config.train.eval_examples to {f"{lower} or " if lower else ""}{upper}, or change '
        'train.eval_batch_size')
  from ltmjax import optim
  for key, known in (('opt.name', optim.OPTIMIZERS), ('opt.schedule', optim.SCHEDULES)):
    if flat[key] not in known:
      raise ConfigError(f'{key}={flat[key]!r} is unknown; known: {", ".join(known)}')


def devices(cfg, mesh) -> None:
  """Batch sizes that split evenly over the mesh's data-parallel devices."""
  n = mesh.shape['data']
  for key in ('batch_size', 'eval_batch_size'):
    size = int(cfg.train[key])
    if size % n:
      lower, upper = size // n * n, (size // n + 1) * n
      hint = f'{lower} or {upper}' if lower else f'{upper}'
      raise ConfigError(
          f'train.{key}={size} does not split over the {n} data-parallel devices: set '
          f'--config.train.{key} to a multiple of {n} (e.g. {hint}), or use fewer devices '
          '(--config.parallel.data)')


def _bad(key: str, value: Any, condition: str):
  raise ConfigError(f'{key}={value!r} is out of range: set --config.{key} to a value {condition}')
