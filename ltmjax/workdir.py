"""A run's folder: usable (a writable folder), held by one run at a time, tied to one config.

`prepare` makes sure the folder can take the run's files; `Lock` keeps a second run out
(an advisory `fcntl` lock on DIR/run.lock, released by the kernel when its process ends,
so a lock left by a killed run is never stale); `check_config` compares the config with
DIR/config.json, written at the start of the first run, before anything is resumed.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
from typing import Dict, List, Optional

from ltmjax.errors import ConfigError, RunError

LOCK_FILE = 'run.lock'
CONFIG_FILE = 'config.json'
# A resume may change these: the length of the run (a longer one continues the old run), the
# progress bar, and the device layout (the data a run sees does not depend on it).
CHANGEABLE_PREFIXES = ('train.progress', 'parallel.')
ALLOW_FLAG = '--allow_config_change'


def prepare(workdir: str) -> None:
  """Creates `workdir` if needed; ConfigError (one line) when it cannot hold the run's files."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f'--workdir {workdir} is a file, not a folder; pick another --workdir')
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f'.write-test-{os.getpid()}')
    with open(probe, 'w'):
      pass
    os.remove(probe)
  except OSError as e:
    reason = e.strerror or type(e).__name__
    raise ConfigError(f'--workdir {workdir} is not a writable folder ({reason}); pick another '
                      '--workdir or fix its permissions') from None


class Lock:
  """`with Lock(workdir):` holds the workdir for this process; RunError if another run holds it."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd = None

  def __enter__(self):
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      holder = _read_pid(fd)
      os.close(fd)
      if e.errno not in (errno.EAGAIN, errno.EACCES):
        raise
      raise RunError(f'{os.path.dirname(self.path)} is in use by another run (process '
                     f'{holder}); wait for it to end (or stop it), or use another --workdir'
                     ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f'{os.getpid()}\n'.encode())
    self._fd = fd
    return self

  def __exit__(self, *exc):
    if self._fd is not None:
      os.ftruncate(self._fd, 0)
      os.close(self._fd)   # closing releases the lock
      self._fd = None


def _read_pid(fd: int) -> str:
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 64).decode(errors='replace').strip()
  return text if text.isdigit() else 'unknown'


def flatten(tree: Dict, prefix: str = '') -> Dict:
  """{'train': {'steps': 5}} -> {'train.steps': 5}."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def config_changes(old: Dict, new: Dict) -> List[str]:
  """The flat keys in which `new` differs from `old` in a way a resume may not accept."""
  a, b = flatten(old), flatten(json.loads(json.dumps(new)))   # tuples as JSON keeps them
  changed = []
  for key in sorted(set(a) | set(b)):
    if a.get(key, '<absent>') == b.get(key, '<absent>') or key.startswith(CHANGEABLE_PREFIXES):
      continue
    if key == 'train.steps' and isinstance(a.get(key), int) and b[key] >= a[key]:
      continue   # a longer run continues the old one
    changed.append(key)
  return changed


def remove_if_unused(workdir: str) -> None:
  """Removes a workdir made by a run that stopped before it trained: its config.json and
  run.lock, then the folder if nothing else is in it (a run's bad input leaves nothing)."""
  if has_progress(workdir):
    return
  for name in (CONFIG_FILE, LOCK_FILE):
    try:
      os.remove(os.path.join(workdir, name))
    except OSError:
      pass
  try:
    os.rmdir(workdir)
  except OSError:
    pass   # something else is in it: keep it


def has_progress(workdir: str) -> bool:
  """Whether `workdir` holds something a run would resume or report: a checkpoint or a result."""
  ckpt = os.path.join(workdir, 'checkpoints')
  steps = os.path.isdir(ckpt) and any(n.isdigit() for n in os.listdir(ckpt))
  return steps or os.path.exists(os.path.join(workdir, 'result.json'))


def check_config(workdir: str, config: Dict, *, allow_change: bool = False) -> Optional[Dict]:
  """Writes DIR/config.json; when DIR holds a run of another config, ConfigError listing the keys.

  Args:
    config: the run's config as a plain dict (`ConfigDict.to_dict()`).
    allow_change: accept the differences (the old config.json is replaced).
  Returns:
    The config DIR's run was started with where it differs from `config` (a longer
    train.steps, or any change under `allow_change`), else None.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  old = None
  if os.path.exists(path) and has_progress(workdir):
    try:
      with open(path) as f:
        old = json.load(f)
    except (OSError, ValueError):
      old = None   # unreadable: the checkpoint's shapes are checked on restore
    changed = config_changes(old, config) if isinstance(old, dict) else []
    if changed and not allow_change:
      a, b = flatten(old), flatten(json.loads(json.dumps(config)))
      shown = ', '.join(f'{k} {a.get(k, "<absent>")!r} -> {b.get(k, "<absent>")!r}'
                        for k in changed[:6])
      more = f' and {len(changed) - 6} more' if len(changed) > 6 else ''
      raise ConfigError(f'{workdir} holds a run of another config ({shown}{more}); use another '
                        f'--workdir, or pass {ALLOW_FLAG} to resume it under the new config')
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'w') as f:
    json.dump(config, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
  same = isinstance(old, dict) and flatten(old) == flatten(json.loads(json.dumps(config)))
  return old if isinstance(old, dict) and not same else None
