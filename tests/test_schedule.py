"""Learning-rate schedules on resume: the rate is logged, a resume that changes the schedule
says so in one line, and wsd / constant extend a run cleanly (bit-exact with a straight run)."""
import json
import logging
import math

import jax
import numpy as np
import pytest

from ltmjax import optim, train, workdir
from tests.test_train import state_of, tiny_config


def _with(config, **changes):
  config = config.copy_and_resolve_references()
  with config.unlocked():
    for dotted, value in changes.items():
      group, key = dotted.split('__')
      config[group][key] = value
  return config


def test_learning_rate_is_logged_with_hand_computed_values(tmp_path):
  config = tiny_config(steps=8)   # warm-up 2, cosine over 6 updates
  lr = config.opt.learning_rate
  train.run(config, str(tmp_path))
  logged = {r['step']: r['learning_rate'] for r in map(json.loads, open(tmp_path / 'metrics.jsonl'))
            if r['split'] == 'train'}
  # Step s makes update s-1: warm-up 0, lr/2, then cosine over the 6 updates from count 2.
  cosine = lambda c: lr * 0.5 * (1 + math.cos(math.pi * (c - 2) / 6))  # noqa: E731
  want = {2: lr / 2, 4: cosine(3), 6: cosine(5), 8: cosine(7)}
  assert logged.keys() == want.keys()
  for step, value in want.items():
    assert logged[step] == pytest.approx(value, rel=1e-6), step


def test_wsd_is_warmup_stable_then_linear_decay():
  config = _with(tiny_config(steps=10), opt__schedule='wsd', opt__end_factor=0.0)
  lr = config.opt.learning_rate
  rates = [optim.rate_at(config.opt, 10, s) for s in range(1, 11)]
  # warm-up 2 updates (0, lr/2), stable until the last 20 % (2 updates), then linear to 0.
  np.testing.assert_allclose(rates, [0, lr / 2, lr, lr, lr, lr, lr, lr, lr, lr / 2], rtol=1e-6)


def test_a_longer_cosine_resume_says_how_the_schedule_changed(tmp_path, caplog):
  short = tiny_config(steps=4)
  train.run(short, str(tmp_path))
  longer = _with(short, train__steps=8)
  old = workdir.check_config(str(tmp_path), short.to_dict())
  assert old is None   # the same config: nothing to say
  old = workdir.check_config(str(tmp_path), longer.to_dict())
  assert old['train']['steps'] == 4
  with caplog.at_level(logging.WARNING, logger='ltmjax'):
    train.run(longer, str(tmp_path), previous_config=old)
  lines = [r.getMessage() for r in caplog.records if 'learning-rate schedule' in r.getMessage()]
  assert len(lines) == 1
  assert 'resuming at step 4' in lines[0] and 'train.steps 4 -> 8' in lines[0]
  assert 'cosine over 4 steps' in lines[0] and 'cosine over 8' in lines[0]


def test_wsd_resumed_before_its_decay_equals_a_straight_longer_run(tmp_path, caplog):
  base = _with(tiny_config(steps=8), opt__schedule='wsd')
  longer = _with(base, train__steps=16)
  train.run(longer, str(tmp_path / 'straight'))
  train.run(base, str(tmp_path / 'extended'), stop_at=4)     # stable phase: before step 7
  with caplog.at_level(logging.WARNING, logger='ltmjax'):
    train.run(longer, str(tmp_path / 'extended'), previous_config=base.to_dict())
  assert not [r for r in caplog.records if 'learning-rate schedule' in r.getMessage()]
  a, b = state_of(tmp_path / 'straight', longer), state_of(tmp_path / 'extended', longer)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
