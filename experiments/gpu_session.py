"""The step runner of experiments/gpu_check.py: subprocesses under time limits, one live log
without machine paths, a summary and a results archive rewritten after every step.

Standard library only (it runs with the system python3 of a device machine).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Log:
  """Appends to a log file and stdout, with machine paths replaced by names."""

  def __init__(self, path: str, replace: Dict[str, str]):
    self.path, self.lock = path, threading.Lock()
    # Longest first, so that a path inside another is replaced by its own name.
    self.replace = sorted(((k, v) for k, v in replace.items() if k), key=lambda kv: -len(kv[0]))

  def clean(self, text: str) -> str:
    for old, new in self.replace:
      text = text.replace(old, new)
    # Other temporary folders (pip's build environments, ...).
    return re.sub(re.escape(tempfile.gettempdir()) + r'/[^/\s]+', '<tmp>', text)

  def __call__(self, text: str = '') -> None:
    line = self.clean(text.rstrip('\n'))
    with self.lock, open(self.path, 'a') as f:
      f.write(line + '\n')
    print(line, flush=True)


class Session:
  """Folders, log, summary and the step runner of one run under a global time budget.

  Args:
    out: where gpu_check.log, summary.json and results.tar.gz go.
    scratch: a folder for everything else (None: a new temporary one); `results/` in it is
      what results.tar.gz packs.
    mode: a word for the summary ('full', 'smoke').
    budget: seconds for the whole run; `limits` caps each step (by name) within what is left.
    only: the names of the steps to run (None: all).
  """

  def __init__(self, out: str, scratch: Optional[str], mode: str, budget: float,
               limits: Dict[str, float], only: Optional[Sequence[str]] = None):
    self.out = os.path.abspath(out)
    self.scratch = os.path.abspath(scratch or tempfile.mkdtemp(prefix='gpu_check_'))
    self.results = os.path.join(self.scratch, 'results')    # becomes results.tar.gz
    os.makedirs(self.out, exist_ok=True)
    os.makedirs(self.results, exist_ok=True)
    self.log = Log(os.path.join(self.out, 'gpu_check.log'),
                   {ROOT: '.', self.scratch: '<scratch>', self.out: '<out>',
                    os.path.expanduser('~'): '~'})
    self.budget, self.limits, self.only = budget, limits, only
    self.start = time.time()
    self.summary = {'mode': mode, 'steps': {}, 'numbers': {}}
    self.env = dict(os.environ)

  def left(self) -> float:
    return self.budget - (time.time() - self.start)

  def save(self) -> None:
    """summary.json and results.tar.gz, each replaced whole (a cut-off run keeps the last)."""
    tmp = os.path.join(self.out, '.summary.json')
    with open(tmp, 'w') as f:
      f.write(self.log.clean(json.dumps(self.summary, indent=2, sort_keys=True)) + '\n')
    os.replace(tmp, os.path.join(self.out, 'summary.json'))
    tmp = os.path.join(self.out, '.results.tar.gz')
    with tarfile.open(tmp, 'w:gz') as tar:
      tar.add(self.results, arcname='results')
    os.replace(tmp, os.path.join(self.out, 'results.tar.gz'))

  def run(self, name: str, cmd: List[str], *, limit: float, env=None,
          capture: Optional[str] = None) -> int:
    """Runs `cmd` under `limit` seconds (SIGTERM, then SIGKILL 30 s later); logs its output.

    capture: also write the output to this file (under results/).
    """
    self.log(f'$ {" ".join(cmd)}')
    lines: List[str] = []
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env or self.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors='replace',
                            preexec_fn=os.setpgrp)  # its own group: a limit stops its children

    def pump():
      for line in proc.stdout:
        lines.append(self.log.clean(line.rstrip('\n')))
        self.log(line)
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
      rc = proc.wait(timeout=max(limit, 1))
    except subprocess.TimeoutExpired:
      self.log(f'[gpu_check] {name}: time limit of {limit:.0f} s reached; SIGTERM')
      os.killpg(proc.pid, signal.SIGTERM)
      try:
        proc.wait(timeout=30)
      except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
      rc = 124
    reader.join(timeout=10)
    if capture:
      with open(capture, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return rc

  def step(self, name: str, fn) -> None:
    """Runs step `name` (fn(limit) -> (rc, numbers)) unless `only` leaves it out or no time is left."""
    if self.only and name not in self.only:
      return
    limit = min(self.limits[name], self.left())
    record = self.summary['steps'][name] = {}
    if limit < 20:
      record.update(status='skipped', reason=f'{self.left():.0f} s of the budget left')
      self.log(f'[gpu_check] {name}: skipped, {self.left():.0f} s of the budget left')
      self.save()
      return
    self.log(f'\n[gpu_check] ===== {name} (limit {limit:.0f} s, {self.left():.0f} s left) =====')
    start = time.time()
    try:
      rc, numbers = fn(limit)
    except Exception as e:  # noqa: BLE001  (a broken step must not stop the others)
      rc, numbers = 1, {'error': f'{type(e).__name__}: {e}'}
    record.update(status='ok' if rc == 0 else ('timeout' if rc == 124 else f'failed (rc {rc})'),
                  seconds=round(time.time() - start, 1))
    if numbers:
      self.summary['numbers'][name] = numbers
    self.log(f'[gpu_check] {name}: {record["status"]} in {record["seconds"]} s')
    self.save()

  def finish(self) -> Dict[str, str]:
    """Logs and saves the final summary; returns {step: status}."""
    statuses = {k: v['status'] for k, v in self.summary['steps'].items()}
    self.log(f'\n[gpu_check] done in {time.time() - self.start:.0f} s: '
             + ', '.join(f'{k} {v}' for k, v in statuses.items()))
    self.save()
    return statuses
