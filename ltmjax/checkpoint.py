"""Orbax checkpoints of the train state and the data iterator's position.

Orbax writes each step into a temporary directory and renames it when complete, so a
checkpoint left half-written by a crash is never restored: `latest_step` only sees
finished steps, and the temporary leftovers are removed when the manager opens. A
finished checkpoint that no longer restores (a file deleted or truncated) is reported,
moved aside to checkpoints.unrestorable/ and the next older one is restored instead.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp

from ltmjax.errors import RunError

log = logging.getLogger('ltmjax')


def _one_line(e: BaseException) -> str:
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  text = lines[0] if lines else ''
  return f'{type(e).__name__}: {text[:120]}'


class Checkpointer:
  """Saves {'state': train state pytree, 'data': iterator JSON} under `directory`."""

  def __init__(self, directory: str, *, keep: int = 2, async_save: bool = True,
               read_only: bool = False):
    self.directory = os.path.abspath(directory)
    self._read_only = read_only
    # A read-only view (tools, tests) leaves temporary directories to the writer.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=not read_only, cleanup_tmp_directories=not read_only,
        enable_async_checkpointing=async_save, read_only=read_only)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=('state', 'data'))

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, data_state: dict) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=True)

  def restore(self, abstract_state: Any, step: Optional[int] = None
              ) -> Optional[Tuple[Any, dict, int]]:
    """(state, data_state, step) of the newest checkpoint that restores, or None if there is none.

    A checkpoint that fails to restore (a file missing or truncated) is reported in one
    line and the next older one is tried; once one restores, the broken newer ones are
    moved aside to DIR.unrestorable/ (kept for inspection, out of the way of new saves).
    `abstract_state` holds jax.ShapeDtypeStruct leaves with the target shardings, so a
    run restored on a different number of devices is resharded on load.
    Raises:
      RunError: there are checkpoints but none of them restores.
    """
    found = self._newest_restorable(ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()), step)
    if found is None:
      return None
    restored, s, failed = found
    if failed:
      self._move_aside(failed, s)
    return restored['state'], restored['data'], s

  def _newest_restorable(self, args, step: Optional[int] = None):
    """(restored, step, [(broken step, reason)]) of the newest step that restores with
    `args`; None without checkpoints; RunError when none restores."""
    steps = sorted(self._manager.all_steps(), reverse=True) if step is None else [step]
    failed = []
    for s in steps:
      try:
        return self._manager.restore(s, args=args), s, failed
      except Exception as e:  # pylint: disable=broad-except  (orbax raises many kinds)
        failed.append((s, _one_line(e)))
    if failed:
      raise RunError(f'none of the {len(failed)} checkpoints in {self.directory} restores (step '
                     f'{failed[0][0]}: {failed[0][1]}); move that folder away to start over')
    return None

  def _move_aside(self, failed, restored_step: int) -> None:
    """Moves broken step folders out of the manager's way (a new save of that step), one
    line each; a read-only view only reports them."""
    for s, reason in failed:
      where = ''
      if not self._read_only:
        target = os.path.join(self.directory + '.unrestorable',
                              f'{s}-{time.strftime("%Y%m%d-%H%M%S")}')
        if jax.process_index() == 0:
          os.makedirs(os.path.dirname(target), exist_ok=True)
          os.replace(os.path.join(self.directory, str(s)), target)
        where = f'moved it to {target} and '
      log.warning('the checkpoint of step %d in %s does not restore (%s); %stook step %d', s,
                  self.directory, reason, where, restored_step)
    if self._read_only:
      return
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices('ltmjax_checkpoint_moved_aside')
    self._manager.reload()

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def directory_of(workdir: str) -> str:
  return os.path.join(workdir, 'checkpoints')


def restore_params(workdir: str, abstract_params: Any):
  """The parameters of the newest checkpoint in `workdir` that restores (for sampling, export).

  Args:
    abstract_params: the expected parameter tree (arrays or jax.ShapeDtypeStruct).
  Raises:
    FileNotFoundError: there is no complete checkpoint in `workdir`.
    ValueError: the checkpoint's parameters do not fit `abstract_params`.
  """
  directory = directory_of(workdir)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'no checkpoint in {workdir}: train there first '
                            '(python -m ltmjax.main --config ... --workdir ...)')
  with Checkpointer(directory, read_only=True) as ckpt:
    found = ckpt._newest_restorable(ocp.args.Composite(state=ocp.args.StandardRestore()))
  if found is None:
    raise FileNotFoundError(f'no complete checkpoint in {directory}')
  restored, step, failed = found
  if failed:
    ckpt._move_aside(failed, step)   # read-only: reports them
  state = restored['state']
  params = state['params']
  got = jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), params)
  want = jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), abstract_params)
  if got != want:
    raise ValueError(f'the checkpoint in {directory} (step {step}) holds parameters of another '
                     'model: check that the config matches the one it was trained with')
  return params
