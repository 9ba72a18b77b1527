"""Processes: joining a multi-host job, failing fast when a peer is lost, and preemption.

`initialize` joins this process to the job with `jax.distributed.initialize` and must
run before any other JAX call (main.py calls it first). Ways in:
  explicit  coordinator='host:port', num_processes, process_id (any cluster; tests);
  auto      jax.distributed.initialize() finds the job itself on SLURM, Cloud TPU pods
            and Open MPI;
  neither   one process, nothing to join.
JAX's coordination service kills a process (C++ abort) when the coordinator is not
reached within `timeout_s` or a peer sends no heartbeat for `heartbeat_s`; a small
filter on stderr turns that abort and its stack trace into one `error:` line.

`PreemptionGuard` turns SIGTERM (a scheduler's preemption notice) into a request the
train loop checks each step; with several processes, JAX's preemption service picks
the step at which all of them stop and save.

This module imports JAX only inside functions: the stderr filter runs it as a script.
"""
from __future__ import annotations

import json
import logging
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Mapping, Optional

from ltmjax.errors import ConfigError, RunError

log = logging.getLogger('ltmjax')
PREEMPTED_EXIT_CODE = 143   # 128 + SIGTERM, what a scheduler expects of a terminated job


class Preempted(RunError):
  """The job was told to stop (SIGTERM, or SIGINT: Ctrl-C); a checkpoint of `step` was saved."""
  exit_code = PREEMPTED_EXIT_CODE

  def __init__(self, step: int, directory: str, signum: int = signal.SIGTERM):
    what = 'interrupted (Ctrl-C)' if signum == signal.SIGINT else 'preempted'
    super().__init__(f'{what}: saved a checkpoint of step {step} in {directory}; run the '
                     'same command again to resume')
    self.step = step
    self.exit_code = 128 + int(signum)   # 143 for SIGTERM, 130 for Ctrl-C


def init_kwargs(*, coordinator: Optional[str] = None, num_processes: Optional[int] = None,
                process_id: Optional[int] = None, auto: bool = False, timeout_s: int = 300,
                heartbeat_s: int = 100, environ: Mapping[str, str] = os.environ
                ) -> Optional[Dict[str, Any]]:
  """Arguments of `jax.distributed.initialize`, or None when there is nothing to join.

  Raises:
    ConfigError: an incomplete or inconsistent explicit form (coordinator,
      num_processes and process_id go together).
  """
  explicit = (coordinator, num_processes, process_id)
  if any(x is not None for x in explicit):
    if any(x is None for x in explicit):
      raise ConfigError('--coordinator HOST:PORT, --num_processes N and --process_id I go '
                        'together')
    if not re.fullmatch(r'\S+:\d+', coordinator):
      raise ConfigError(f'--coordinator {coordinator!r} is not HOST:PORT')
    if not 0 <= process_id < num_processes:
      raise ConfigError(f'--process_id {process_id} is not in 0..{num_processes - 1}')
    kwargs = dict(coordinator_address=coordinator, num_processes=num_processes,
                  process_id=process_id)
  elif auto:
    kwargs = {}
    # On SLURM, JAX gives each process one GPU (one process per GPU). launch.sh starts
    # one process per node, which should own all the node's GPUs.
    gpus = environ.get('SLURM_GPUS_ON_NODE', '')
    per_node = environ.get('SLURM_NTASKS_PER_NODE', environ.get('SLURM_STEP_TASKS_PER_NODE', ''))
    if 'SLURM_JOB_ID' in environ and gpus.isdigit() and per_node.split('(')[0] == '1':
      kwargs['local_device_ids'] = list(range(int(gpus)))
  else:
    return None
  kwargs.update(initialization_timeout=int(timeout_s), heartbeat_timeout_seconds=int(heartbeat_s),
                shutdown_timeout_seconds=int(heartbeat_s))
  return kwargs


def initialize(*, timeout_s: int = 300, heartbeat_s: int = 100, **where) -> bool:
  """Joins the multi-process job described by `where` (see `init_kwargs`); False if single.

  Must run before any other JAX call. A process other than 0 first waits up to
  `timeout_s` for the coordinator's port, so a wrong address is one clear error.
  """
  kwargs = init_kwargs(timeout_s=timeout_s, heartbeat_s=heartbeat_s, **where)
  if kwargs is None:
    return False
  address = kwargs.get('coordinator_address')
  if address and kwargs['process_id'] != 0:
    _wait_for_port(address, timeout_s)
  _filter_stderr({'address': address or 'the auto-detected coordinator',
                  'processes': kwargs.get('num_processes'), 'timeout_s': timeout_s,
                  'heartbeat_s': heartbeat_s})
  import jax
  try:
    jax.distributed.initialize(**kwargs)
  except (RuntimeError, ValueError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise RunError(f'could not join the distributed job: {first}') from None
  log.info('process %d of %d joined: %d local devices, %d in all', jax.process_index(),
           jax.process_count(), jax.local_device_count(), jax.device_count())
  return True


def _wait_for_port(address: str, timeout_s: float) -> None:
  host, port = address.rsplit(':', 1)
  deadline = time.monotonic() + timeout_s
  while True:
    try:
      with socket.create_connection((host.strip('[]'), int(port)), timeout=2):
        return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise RunError(f'cannot reach the coordinator at {address} within {timeout_s:g}s '
                       f'({e.strerror or e}); start process 0 there, or check --coordinator '
                       'and the firewall') from None
      time.sleep(0.5)


# ------------------------------------------------------------------ fatal-error filter

_FATAL = 'Terminating process because the JAX distributed service detected fatal errors'
# glog lines of the coordination service ("E1122 20:07:57.185 27080 file.cc:1549] ...").
_GLOG = re.compile(rb'^[EF]\d{4} [\d:.]+\s+\d+ (coordination\w*|client)\.(cc|h):\d+\]')
_NOISE = re.compile(rb'^\[Gloo\] Rank \d+ is connected to')


def _filter_stderr(context: Dict[str, Any]) -> None:
  """Routes this process's stderr (fd 2, C++ included) through `filter_stream`."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get('PYTHONPATH', '')]))
  sys.stderr.flush()
  read_end, write_end = os.pipe()
  real_stderr = os.dup(2)
  subprocess.Popen([sys.executable, '-m', 'ltmjax.distributed', json.dumps(context)],
                   stdin=read_end, stdout=real_stderr, stderr=real_stderr, env=env,
                   close_fds=True)
  os.close(read_end)
  os.close(real_stderr)
  os.dup2(write_end, 2)
  os.close(write_end)


def explain(text: str, context: Dict[str, Any]) -> str:
  """One line for a fatal coordination-service error (`text`: the abort's message)."""
  lost = re.search(r'unhealthy \(stopped sending heartbeats\):\s*([\d,\s]+?)\s*\n?The', text)
  if lost:
    ids = ', '.join(lost.group(1).replace(',', ' ').split())
    return (f'error: lost process {ids}: no heartbeat for {context["heartbeat_s"]}s (it crashed, '
            'was killed or preempted); the job stopped. Launch it again to resume from the '
            'last checkpoint')
  if 'RegisterTask' in text or 'DEADLINE_EXCEEDED' in text:
    n = context.get('processes')
    return (f'error: not all {n or "the"} processes joined the coordinator at '
            f'{context["address"]} within {context["timeout_s"]}s; start every process '
            '(process ids 0..N-1) with the same --coordinator, or raise --distributed_timeout')
  status = re.search(r'absl::Status: (.*)', text)
  return ('error: the distributed job failed: '
          + (status.group(1).strip() if status else 'see the other processes\' logs'))


def filter_stream(context: Dict[str, Any], src: int = 0, dst: int = 1) -> None:
  """Copies `src` to `dst`, replacing a coordination-service abort by one `error:` line.

  The service's error lines come just before the abort; they are held back for a moment
  and dropped if the abort follows, printed otherwise.
  """
  held, pending, fatal, held_since = [], b'', None, 0.0

  def out(data):
    os.write(dst, data)

  while True:
    ready, _, _ = select.select([src], [], [], 0.5)
    chunk = os.read(src, 65536) if ready else b'-'
    if chunk == b'':   # the process is gone
      break
    if held and fatal is None and time.monotonic() - held_since > 1.0:
      out(b''.join(held))   # no abort followed what was held: it was only a warning
      held = []
    if not ready:
      continue
    pending += chunk
    *lines, pending = pending.split(b'\n')
    for line in lines:
      line += b'\n'
      if fatal is not None:
        fatal.append(line)
      elif _FATAL.encode() in line:
        fatal = [line]
      elif _GLOG.match(line) or (held and not re.match(rb'^[IWEF]\d{4} ', line)):
        held_since = held_since if held else time.monotonic()
        held.append(line)
      elif not _NOISE.match(line):
        if held:
          out(b''.join(held))
          held = []
        out(line)
    if fatal is None and b'\r' in pending:   # progress bars redraw without a newline
      cut = pending.rindex(b'\r') + 1
      out(pending[:cut])
      pending = pending[cut:]
  if fatal is not None:
    out((explain(b''.join(fatal).decode(errors='replace'), context) + '\n').encode())
  else:
    out(b''.join(held) + pending)


# ------------------------------------------------------------------------ preemption

class PreemptionGuard:
  """`with PreemptionGuard() as guard:` ... `if guard.requested(step): save and stop`.

  One process: a SIGTERM or SIGINT (Ctrl-C) handler sets a flag and `signum` (a second
  signal kills at once). Several processes: JAX's preemption service (it catches SIGTERM
  itself) answers True on every process at the same step, so all save the same checkpoint.
  """

  def __init__(self):
    self._flag = False
    self._previous = {}   # signal -> the handler to put back, while ours is installed
    self._multi = False
    self.signum = signal.SIGTERM   # the signal that asked to stop

  def __enter__(self):
    import jax
    self._multi = jax.process_count() > 1
    if not self._multi and threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        self._previous[signum] = signal.SIG_DFL if previous is None else previous
        signal.signal(signum, self._on_signal)
    return self

  def _on_signal(self, signum, frame):
    del frame
    self._flag, self.signum = True, signum
    # A second signal is not caught; a second Ctrl-C ends the process at once (no
    # KeyboardInterrupt unwinding through the checkpoint being written).
    signal.signal(signum, signal.SIG_DFL if signum == signal.SIGINT else self._previous[signum])

  def requested(self, step: int) -> bool:
    """Whether to save and stop after `step` (call it at every step)."""
    if self._multi:
      from jax.experimental import multihost_utils
      try:
        return bool(multihost_utils.reached_preemption_sync_point(step))
      except RuntimeError as e:   # e.g. jax_enable_preemption_service is off
        # Every process fails here at the same step, so all of them go on without it alike;
        # our own SIGTERM handler is not installed, so requested() stays False from now on.
        self._multi = False
        log.warning('preemption handling is off for this run (a SIGTERM will not save a '
                    'checkpoint): %s', ' '.join(str(e).split()))
        return False
    return self._flag

  def __exit__(self, *exc):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}


if __name__ == '__main__':
  # The stderr filter of `_filter_stderr`: it outlives the process only to report its end.
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  filter_stream(json.loads(sys.argv[1]))
