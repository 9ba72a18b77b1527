"""Run logging: metrics.jsonl, TensorBoard event files, and a progress bar."""
from __future__ import annotations

import json
import logging
import math
import os
import struct
import sys
import time
from typing import Dict, Optional

import numpy as np

log = logging.getLogger('ltmjax')


def to_floats(metrics: Dict) -> Dict[str, float]:
  return {k: float(np.asarray(v)) for k, v in metrics.items()}


class MetricsWriter:
  """Appends one JSON object per logged step to DIR/metrics.jsonl and mirrors it to
  TensorBoard (DIR/tensorboard). Only the writing process (process 0) is `enabled`.

  A run started at `resume_step` s (0: from scratch) first drops what both logs hold after
  s: the steps a killed run logged past its last checkpoint are logged again, once.
  """

  def __init__(self, workdir: str, *, enabled: bool = True, tensorboard: bool = True,
               resume_step: Optional[int] = None):
    self.enabled, self._start = enabled, time.time()
    self._jsonl = self._tb = None
    if not enabled:
      return
    path = os.path.join(workdir, 'metrics.jsonl')
    if resume_step is not None:
      drop_records_after(path, resume_step)
    self._jsonl = open(path, 'a', buffering=1)
    if tensorboard:
      from tensorboardX import SummaryWriter  # no TensorFlow needed
      events = os.path.join(workdir, 'tensorboard')
      if resume_step is not None:
        drop_events_after(events, resume_step)
      # The file name holds the time in seconds; a unique suffix keeps a quick restart from
      # overwriting the previous writer's file.
      self._tb = SummaryWriter(events, filename_suffix=f'.{os.getpid()}.{time.time_ns()}')

  def write(self, step: int, split: str, metrics: Dict[str, float]) -> None:
    if not self.enabled:
      return
    record = {'step': step, 'split': split, **metrics,
              'time_s': round(time.time() - self._start, 3)}
    self._jsonl.write(json.dumps(record, allow_nan=True) + '\n')
    if self._tb is not None:
      for k, v in metrics.items():
        if math.isfinite(v):
          self._tb.add_scalar(f'{split}/{k}', v, step)

  def close(self) -> None:
    if self._jsonl:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


class Progress:
  """A tqdm bar with loss and ETA on a terminal; periodic log lines otherwise (a log file,
  a SLURM job: a bar's carriage returns would fill it)."""

  def __init__(self, total: int, initial: int, *, enabled: bool):
    self._bar = None
    self._total = total
    if enabled and sys.stderr.isatty():
      from tqdm import tqdm
      self._bar = tqdm(total=total, initial=initial, unit='step', dynamic_ncols=True,
                       smoothing=0.1, mininterval=1.0)

  def update(self, n: int = 1) -> None:
    if self._bar is not None:
      self._bar.update(n)

  def show(self, step: int, split: str, metrics: Dict[str, float]) -> None:
    text = ' '.join(f'{k}={v:.4g}' for k, v in metrics.items() if k != 'grad_norm')
    if self._bar is not None:
      self._bar.set_postfix_str(f'{split}: {text}', refresh=False)
      if split == 'eval':
        self._bar.write(f'step {step}/{self._total} eval: {text}')
    else:
      log.info('step %d/%d %s: %s', step, self._total, split, text)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


def drop_records_after(path: str, step: int) -> None:
  """Keeps the metrics.jsonl records of steps <= `step` (and drops a half-written last line)."""
  if not os.path.exists(path):
    return
  kept, dropped = [], 0
  with open(path) as f:
    for line in f:
      try:
        keep = json.loads(line)['step'] <= step and line.endswith('\n')
      except (ValueError, KeyError, TypeError):
        keep = False
      if keep:
        kept.append(line)
      else:
        dropped += 1
  if dropped:
    _replace(path, ''.join(kept).encode())


def drop_events_after(folder: str, step: int) -> None:
  """Keeps the TensorBoard events of steps <= `step` in every event file of `folder`.

  Event files are TFRecord files (length, its CRC, data, its CRC); kept records are
  copied byte for byte, so no CRC is recomputed.
  """
  if not os.path.isdir(folder):
    return
  from tensorboardX.proto import event_pb2
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if 'tfevents' not in name or not os.path.isfile(path):
      continue
    with open(path, 'rb') as f:
      raw = f.read()
    kept, pos, dropped = [], 0, False
    while pos + 12 <= len(raw):
      (length,) = struct.unpack('<Q', raw[pos:pos + 8])
      end = pos + 12 + length + 4
      if end > len(raw):
        break   # a record cut off by a kill
      event = event_pb2.Event.FromString(raw[pos + 12:pos + 12 + length])
      if event.step <= step or event.HasField('file_version'):
        kept.append(raw[pos:end])
      else:
        dropped = True
      pos = end
    if dropped or pos != len(raw):
      _replace(path, b''.join(kept))


def _replace(path: str, data: bytes) -> None:
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'wb') as f:
    f.write(data)
  os.replace(tmp, path)


def format_metrics(metrics: Optional[Dict[str, float]]) -> str:
  return ', '.join(f'{k}={v:.4g}' for k, v in sorted((metrics or {}).items()))
