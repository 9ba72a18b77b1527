"""The `opt` config group -> an optax optimizer (schedule, clipping, accumulation)."""
from __future__ import annotations

import optax

OPTIMIZERS = ('adamw', 'adam', 'sgd', 'lamb')
SCHEDULES = ('cosine', 'constant', 'linear')


def schedule(opt_cfg, total_steps: int) -> optax.Schedule:
  """Linear warm-up to `learning_rate`, then cosine / constant / linear decay."""
  lr, warmup = opt_cfg.learning_rate, min(opt_cfg.warmup_steps, max(total_steps - 1, 0))
  decay_steps = max(total_steps - warmup, 1)
  end = lr * opt_cfg.end_factor
  if opt_cfg.schedule == 'cosine':
    after = optax.cosine_decay_schedule(lr, decay_steps, alpha=opt_cfg.end_factor)
  elif opt_cfg.schedule == 'linear':
    after = optax.linear_schedule(lr, end, decay_steps)
  elif opt_cfg.schedule == 'constant':
    after = optax.constant_schedule(lr)
  else:
    raise ValueError(f'unknown opt.schedule {opt_cfg.schedule!r}; known: {", ".join(SCHEDULES)}')
  if warmup == 0:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), after], [warmup])


def build(opt_cfg, total_steps: int) -> optax.GradientTransformation:
  """Optimizer for `total_steps` updates (micro-batches count k times with accumulation)."""
  lr = schedule(opt_cfg, total_steps)
  if opt_cfg.name == 'adamw':
    core = optax.adamw(lr, b1=opt_cfg.b1, b2=opt_cfg.b2, weight_decay=opt_cfg.weight_decay)
  elif opt_cfg.name == 'adam':
    core = optax.adam(lr, b1=opt_cfg.b1, b2=opt_cfg.b2)
  elif opt_cfg.name == 'lamb':
    core = optax.lamb(lr, b1=opt_cfg.b1, b2=opt_cfg.b2, weight_decay=opt_cfg.weight_decay)
  elif opt_cfg.name == 'sgd':
    core = optax.sgd(lr, momentum=opt_cfg.b1 or None)
  else:
    raise ValueError(f'unknown opt.name {opt_cfg.name!r}; known: {", ".join(OPTIMIZERS)}')
  chain = [optax.clip_by_global_norm(opt_cfg.clip_norm)] if opt_cfg.clip_norm > 0 else []
  tx = optax.chain(*chain, core)
  if opt_cfg.accumulate_steps > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=opt_cfg.accumulate_steps)
  return tx
