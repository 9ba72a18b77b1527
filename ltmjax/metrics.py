"""Run logging: metrics.jsonl, TensorBoard event files, and a progress bar."""
from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Dict, Optional

import numpy as np

log = logging.getLogger('ltmjax')


def to_floats(metrics: Dict) -> Dict[str, float]:
  return {k: float(np.asarray(v)) for k, v in metrics.items()}


class MetricsWriter:
  """Appends one JSON object per logged step to DIR/metrics.jsonl and mirrors it to
  TensorBoard (DIR/tensorboard). Only the writing process (process 0) is `enabled`."""

  def __init__(self, workdir: str, *, enabled: bool = True, tensorboard: bool = True):
    self.enabled, self._start = enabled, time.time()
    self._jsonl = self._tb = None
    if not enabled:
      return
    self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a', buffering=1)
    if tensorboard:
      from tensorboardX import SummaryWriter  # no TensorFlow needed
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))

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
  """A tqdm bar with loss and ETA on a terminal; periodic log lines otherwise."""

  def __init__(self, total: int, initial: int, *, enabled: bool):
    self._bar = None
    self._total = total
    if enabled:
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


def format_metrics(metrics: Optional[Dict[str, float]]) -> str:
  return ', '.join(f'{k}={v:.4g}' for k, v in sorted((metrics or {}).items()))
