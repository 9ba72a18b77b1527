"""Orbax checkpoints of the train state and the data iterator's position.

Orbax writes each step into a temporary directory and renames it when complete, so a
checkpoint left half-written by a crash is never restored: `latest_step` only sees
finished steps, and the temporary leftovers are removed when the manager opens.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves {'state': train state pytree, 'data': iterator JSON} under `directory`."""

  def __init__(self, directory: str, *, keep: int = 2, async_save: bool = True,
               read_only: bool = False):
    self.directory = os.path.abspath(directory)
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
    """(state, data_state, step) of the latest complete checkpoint, or None if there is none.

    `abstract_state` holds jax.ShapeDtypeStruct leaves with the target shardings, so a
    run restored on a different number of devices is resharded on load.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      return None
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return restored['state'], restored['data'], step

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
  """The parameters of the latest complete checkpoint in `workdir` (for sampling, export).

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
    step = ckpt.latest_step()
    if step is None:
      raise FileNotFoundError(f'no complete checkpoint in {directory}')
    state = ckpt._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore()))['state']
  params = state['params']
  got = jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), params)
  want = jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), abstract_params)
  if got != want:
    raise ValueError(f'the checkpoint in {directory} (step {step}) holds parameters of another '
                     'model: check that the config matches the one it was trained with')
  return params
