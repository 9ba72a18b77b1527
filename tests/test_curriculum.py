"""Curriculum training: stages parsed and checked, batches by (seed, step, curriculum), exact resume."""
import jax
import numpy as np
import pytest

from ltmjax import config_lib, curriculum, train
from ltmjax.errors import ConfigError
from tests.test_train import params_of, tiny_config

CURRICULUM = '0:6,3:9,6:12'   # adding at T=6, then 9, then the run's task.length 12


def curriculum_config(steps=8, text=CURRICULUM):
  config = tiny_config(task='adding', steps=steps)
  with config.unlocked():
    config.train.curriculum = text
  return config


def test_parse_and_stage_index():
  stages = curriculum.parse(' 0:512, 2000:1024,4000:2048 ', steps=5000, max_length=2048)
  assert stages == [(0, 512), (2000, 1024), (4000, 2048)]
  assert [curriculum.stage_index(stages, s) for s in (0, 1999, 2000, 3999, 4000, 4999)] == \
      [0, 0, 1, 1, 2, 2]
  assert curriculum.parse('', steps=10, max_length=10) == []


@pytest.mark.parametrize('text, words', [
    ('0-512', 'not STEP:LENGTH'), ('0:abc', 'not STEP:LENGTH'),
    ('10:512', 'must start at step 0'), ('0:512,0:1024', 'steps must increase'),
    ('0:512,200:256,100:1024', 'steps must increase'), ('0:4096', 'outside 1..task.length=2048'),
    ('0:0', 'outside 1..'), ('0:512,5000:1024', 'at or after train.steps=5000')])
def test_bad_curricula_are_one_line(text, words):
  with pytest.raises(ConfigError, match=words) as e:
    curriculum.parse(text, steps=5000, max_length=2048)
  assert '\n' not in str(e.value)


def test_task_without_length_is_refused():
  c = config_lib.base_config(model='lstm', task='listops')
  c.train.curriculum = '0:100'
  with pytest.raises(ConfigError, match='needs a task with task.length'):
    curriculum.of_config(c)


def test_batch_of_step_s_is_the_stage_tasks_batch_of_step_s():
  config = curriculum_config()
  task = train.build_task(config)
  it = curriculum.train_iterator(config, task, lambda n: train.build_task(config, length=n))
  batches = [next(it) for _ in range(8)]
  assert [b['inputs'].shape[1] for b in batches] == [6, 6, 6, 9, 9, 9, 12, 12]
  for s, batch in enumerate(batches):
    length = {0: 6, 1: 6, 2: 6, 3: 9, 4: 9, 5: 9}.get(s, 12)
    ref = train.build_task(config, length=length).train_iterator()
    ref.set_state({'step': s})
    want = next(ref)
    for k in want:
      np.testing.assert_array_equal(batch[k], want[k])
  # Restarting at a step inside stage 2 gives the same batches from there on.
  again = curriculum.train_iterator(config, task, lambda n: train.build_task(config, length=n))
  again.set_state({'step': 4})
  for s in range(4, 8):
    np.testing.assert_array_equal(next(again)['inputs'], batches[s]['inputs'])
  assert again.get_state() == {'step': 8}


def test_curriculum_resume_equals_uninterrupted_run(tmp_path):
  config = curriculum_config()
  whole = train.run(config, str(tmp_path / 'whole'))
  assert whole['status'] == 'complete' and whole['steps'] == 8
  assert whole['seq_len'] == 12   # evaluated at task.length
  # Stop at step 4 (checkpointed; inside the T=9 stage), then resume across the T=12 boundary.
  assert train.run(config, str(tmp_path / 'split'), stop_at=4)['status'] == 'stopped'
  split = train.run(config, str(tmp_path / 'split'))
  a, b = params_of(str(tmp_path / 'whole'), config), params_of(str(tmp_path / 'split'), config)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert whole['metrics'] == split['metrics']


def test_too_short_stage_for_the_task_is_one_line_config_error():
  c = config_lib.base_config(model='lstm', task='babilong')
  c.task.length, c.train.steps, c.train.curriculum = 1024, 10, '0:16,5:1024'
  task = train.build_task(c)
  with pytest.raises(ConfigError, match=r'stage 0:16: .*too short'):
    curriculum.train_iterator(c, task, lambda n: train.build_task(c, length=n))
