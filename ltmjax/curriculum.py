"""Curriculum training: the task length grows at given steps, as RMT and ARMT are trained.

`train.curriculum` is '' (none) or 'STEP:LENGTH,STEP:LENGTH,...', e.g. '0:512,2000:1024,4000:2048':
from step STEP on, training batches are drawn from the task rebuilt with task.length=LENGTH.
The first stage starts at step 0, steps increase, and every LENGTH is at most task.length:
the model is built for task.length and the run is evaluated there (result.json's column), so
a curriculum changes what is trained on, never what is measured.

Resumable bit for bit: the batch of step s is the stage task's procedural batch of step s,
a function of (seed, s, curriculum) alone, so the checkpointed data state is the step, as
for any procedural task. The trainer knows no task: it hands over a `make_task(length)`;
a task whose batches are not drawn from (seed, step) cannot follow a curriculum and says
so. jax.jit compiles the train step once per batch shape and keeps each one, so a stage
boundary compiles once and a resumed run compiles only the stages it still reaches.
"""
from __future__ import annotations

import bisect
import logging
from typing import Callable, Dict, List, Tuple

from ltmjax.errors import ConfigError
from ltmjax.tasks.base import BatchIterator, Task

log = logging.getLogger('ltmjax')
Stages = List[Tuple[int, int]]


def parse(text: str, *, steps: int, max_length: int) -> Stages:
  """[(first step, length)] of `train.curriculum` ('' -> []); ConfigError on a bad stage."""
  text = str(text or '').strip()
  if not text:
    return []
  example = "e.g. train.curriculum='0:512,2000:1024'"
  stages: Stages = []
  for part in text.split(','):
    step, colon, length = part.strip().partition(':')
    try:
      stage = (int(step), int(length))
    except ValueError:
      stage = None
    if not colon or stage is None:
      raise ConfigError(f'train.curriculum: {part.strip()!r} is not STEP:LENGTH; {example}')
    if stages and stage[0] <= stages[-1][0]:
      raise ConfigError(f'train.curriculum: steps must increase, {stage[0]} follows '
                        f'{stages[-1][0]}; {example}')
    if not 1 <= stage[1] <= max_length:
      raise ConfigError(f'train.curriculum: length {stage[1]} at step {stage[0]} is outside '
                        f'1..task.length={max_length}; raise task.length (the length the run '
                        'is evaluated at) or shorten the stage')
    stages.append(stage)
  for before, stage in zip(stages, stages[1:]):
    if stage[1] < before[1]:
      raise ConfigError(f'train.curriculum: lengths must not shrink, {stage[0]}:{stage[1]} '
                        f'follows {before[0]}:{before[1]} (a curriculum grows to '
                        f'task.length); {example}')
  if stages[0][0] != 0:
    raise ConfigError(f'train.curriculum: the first stage must start at step 0, not '
                      f'{stages[0][0]}; {example}')
  if stages[-1][0] >= steps:
    raise ConfigError(f'train.curriculum: stage {stages[-1][0]}:{stages[-1][1]} starts at or '
                      f'after train.steps={steps}; drop it or raise train.steps')
  return stages


def of_config(config) -> Stages:
  """The stages of `config.train.curriculum` ([] for none), checked against the config."""
  text = config.train.get('curriculum', '')
  if not str(text or '').strip():
    return []
  if 'length' not in config.task:
    raise ConfigError(f'train.curriculum needs a task with task.length; {config.task.name} '
                      "has none: set train.curriculum=''")
  return parse(text, steps=int(config.train.steps), max_length=int(config.task.length))


def stage_index(stages: Stages, step: int) -> int:
  """The stage that draws the batch of `step`."""
  return bisect.bisect_right([s for s, _ in stages], step) - 1


class CurriculumIterator(BatchIterator):
  """Batches of step s from the train iterator of the task of s's stage; state {'step': s}."""

  def __init__(self, stages: Stages, stage_tasks: List[Task], process_index: int = 0,
               process_count: int = 1):
    self.stages, self._tasks = stages, stage_tasks
    self._where = (process_index, process_count)
    self.step, self._stage, self._iter = 0, None, None

  def __next__(self):
    stage = stage_index(self.stages, self.step)
    if stage != self._stage:
      self._iter = self._tasks[stage].train_iterator(*self._where)
      self._iter.set_state({'step': self.step})
      self._stage = stage
      log.info('curriculum: from step %d, task.length=%d', self.step, self.stages[stage][1])
    batch = next(self._iter)
    self.step += 1
    return batch

  def get_state(self):
    return {'step': self.step}

  def set_state(self, state):
    self.step, self._stage, self._iter = int(state['step']), None, None


def train_iterator(config, task: Task, make_task: Callable[[int], Task], process_index: int = 0,
                   process_count: int = 1) -> BatchIterator:
  """The run's training batches: `task`'s own, or a CurriculumIterator of `config.train.curriculum`.

  Args:
    config: the run's config (train.curriculum, train.steps, task.length).
    task: the run's task (at task.length); it serves the stages at that length.
    make_task: length -> the task rebuilt with task.length changed (the trainer's builder).
  Raises:
    ConfigError: a bad curriculum, a task without task.length, or one whose batches are not
      drawn from (seed, step).
  """
  stages = of_config(config)
  if not stages:
    return task.train_iterator(process_index, process_count)
  built: Dict[int, Task] = {int(config.task.length): task}
  for step, length in stages:
    if length not in built:
      try:
        built[length] = make_task(length)
      except ValueError as e:
        raise ConfigError(f'train.curriculum stage {step}:{length}: {e}') from None
  for length, stage_task in built.items():
    if set(stage_task.train_iterator(process_index, process_count).get_state()) != {'step'}:
      raise ConfigError(f'train.curriculum: task {config.task.name} does not draw its batches '
                        "from (seed, step), so it cannot change length: set train.curriculum=''")
  return CurriculumIterator(stages, [built[length] for _, length in stages], process_index,
                            process_count)
