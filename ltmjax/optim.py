"""The `opt` config group -> an optax optimizer (schedule, clipping, accumulation).

Schedules (`opt.schedule`), each after a linear warm-up of `opt.warmup_steps`:
  cosine    cosine decay to end_factor * learning_rate at train.steps;
  linear    linear decay to the same;
  constant  learning_rate to the end;
  wsd       warmup-stable-decay (Hägele et al., "Scaling Laws and Compute-Optimal Training
            Beyond Fixed Training Durations", 2024): learning_rate until the last
            WSD_DECAY_FRACTION of train.steps, then linear decay to end_factor * learning_rate.
A longer train.steps on resume rebuilds the schedule for the new total: cosine and linear
then change the rate of every later step (train.run says so in one line). constant never
changes, and wsd only moves its decay: a run resumed from a checkpoint before the old decay
began continues exactly as if it had been started with the longer train.steps.
"""
from __future__ import annotations

import optax

OPTIMIZERS = ('adamw', 'adam', 'sgd', 'lamb')
SCHEDULES = ('cosine', 'constant', 'linear', 'wsd')
WSD_DECAY_FRACTION = 0.2   # the cool-down share of train.steps (Hägele et al. 2024 use 20 %)


def schedule(opt_cfg, total_steps: int) -> optax.Schedule:
  """Linear warm-up to `learning_rate`, then cosine / constant / linear decay, or wsd."""
  lr, warmup = opt_cfg.learning_rate, min(opt_cfg.warmup_steps, max(total_steps - 1, 0))
  decay_steps = max(total_steps - warmup, 1)
  end = lr * opt_cfg.end_factor
  if opt_cfg.schedule == 'wsd':
    cool = max(min(round(WSD_DECAY_FRACTION * total_steps), decay_steps), 1)
    after = optax.join_schedules([optax.constant_schedule(lr), optax.linear_schedule(lr, end, cool)],
                                 [decay_steps - cool])
  elif opt_cfg.schedule == 'cosine':
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


def updates(opt_cfg, train_steps: int) -> int:
  """Optimizer updates of a run of `train_steps` steps (accumulation: one per k steps)."""
  return int(train_steps) // max(int(opt_cfg.accumulate_steps), 1)


def rate_at(opt_cfg, train_steps: int, step: int) -> float:
  """The learning rate of the update made at (1-based) train step `step`."""
  k = max(int(opt_cfg.accumulate_steps), 1)
  return float(schedule(opt_cfg, updates(opt_cfg, train_steps))(max(step - 1, 0) // k))


def schedule_change(old_opt: dict, old_steps: int, new_opt, new_steps: int, step: int):
  """One line on how a resume at `step` changes the learning-rate schedule, or None.

  Args:
    old_opt, old_steps: the `opt` group (a dict) and train.steps the run was started with.
    new_opt, new_steps: the ones it resumes with.
  """
  import ml_collections
  old = ml_collections.ConfigDict(dict(old_opt))
  keys = ('schedule', 'learning_rate', 'warmup_steps', 'end_factor', 'accumulate_steps')
  changed = [f'opt.{k} {old.get(k)!r} -> {new_opt.get(k)!r}' for k in keys
             if old.get(k) != new_opt.get(k)]
  if old_steps != new_steps:
    changed.insert(0, f'train.steps {old_steps} -> {new_steps}')
  if not changed:
    return None
  import numpy as np
  done = np.arange(max(step, 0) // max(int(old.accumulate_steps), 1))   # updates made so far
  if (int(old.accumulate_steps) == int(new_opt.accumulate_steps) and np.array_equal(
      np.asarray(schedule(old, updates(old, old_steps))(done)),
      np.asarray(schedule(new_opt, updates(new_opt, new_steps))(done)))):
    return None   # the steps trained so far had the new schedule's rates: a clean extension
  before, after = rate_at(old, old_steps, step), rate_at(new_opt, new_steps, step + 1)
  return (f'resuming at step {step} under another learning-rate schedule ({", ".join(changed)}): '
          f'steps 1-{step} were trained with {old.schedule} over {old_steps} steps (rate '
          f'{before:.4g} at step {step}), the rest follows {new_opt.schedule} over {new_steps} '
          f'(rate {after:.4g} at step {step + 1}), so this is not the run a straight '
          f'{new_steps}-step run gives; opt.schedule=constant, or wsd resumed before its decay, '
          'extends cleanly')
