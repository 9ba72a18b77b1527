"""What every task gives the trainer: a spec, batches, a loss and metrics.

A batch is a dict of numpy arrays holding this process's rows of the global batch:
  'inputs'   [B, T] int32 tokens, or [B, T, D] float32 features
  'mask'     [B, T] bool, True at real (non-padding) positions          (optional)
  'inputs2', 'mask2'  the second sequence of a pair task (retrieval)       (optional)
  'targets'  [B] int32 class, [B, 1] float32 value, or [B, T] int32 per position
  'weights'  [B, T] float32, which positions count in a per-token loss    (optional)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterator, Optional

import jax.numpy as jnp
import numpy as np
import optax

Batch = Dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """The shapes a model must take and produce for a task."""
  input_kind: str          # 'tokens' | 'real'
  input_dim: int           # vocabulary size for tokens, feature size for real inputs
  output_kind: str         # 'sequence' (one output per example) | 'token' (one per position)
  num_outputs: int         # classes, or 1 for regression
  seq_len: int             # T
  causal: bool = False     # outputs at t may depend on inputs <= t only
  pair: bool = False       # two input sequences per example (batch has inputs2/mask2)


class BatchIterator:
  """Iterator over training batches whose position is JSON state (saved in checkpoints)."""

  def __iter__(self):
    return self

  def __next__(self) -> Batch:
    raise NotImplementedError

  def get_state(self) -> Dict[str, Any]:
    raise NotImplementedError

  def set_state(self, state: Dict[str, Any]) -> None:
    raise NotImplementedError


class ProceduralIterator(BatchIterator):
  """Batches drawn from (seed, step): infinite, reproducible, resumable by step alone.

  `make_batch(rng, size)` draws `size` examples from a numpy Generator. Each process
  draws its own rows from a stream keyed by (seed, step, process_index).
  """

  def __init__(self, make_batch, seed: int, batch_size: int, process_index: int = 0,
               process_count: int = 1, step: int = 0):
    if batch_size % process_count:
      raise ValueError(f'batch_size {batch_size} is not divisible by the {process_count} processes')
    self._make_batch, self._seed = make_batch, seed
    self._local = batch_size // process_count
    self._process_index, self.step = process_index, step

  def __next__(self) -> Batch:
    rng = np.random.default_rng([self._seed, self.step, self._process_index])
    self.step += 1
    return self._make_batch(rng, self._local)

  def get_state(self):
    return {'step': self.step}

  def set_state(self, state):
    self.step = int(state['step'])


class Task:
  """Base class: subclasses set `name`, `spec`, and give batches and a loss.

  Subclasses take `(cfg, *, seed, batch_size, eval_batch_size)` where `cfg` is the
  config's `task` group, and declare their defaults in `default_config()`.
  """
  name: str = ''
  spec: TaskSpec
  primary_metric: str = 'accuracy'   # the metric a comparison table shows
  higher_is_better: bool = True

  @staticmethod
  def default_config() -> Dict[str, Any]:
    raise NotImplementedError

  def label(self) -> str:
    """Column name in tables, e.g. 'Copy (T=100)'."""
    return self.name

  def train_iterator(self, process_index: int = 0, process_count: int = 1) -> BatchIterator:
    raise NotImplementedError

  def eval_batches(self, process_index: int = 0, process_count: int = 1) -> Iterator[Batch]:
    """A fixed, finite evaluation set (same every call)."""
    raise NotImplementedError

  def loss_and_metrics(self, outputs, batch):
    """(scalar loss, {metric: scalar}); jit-compiled inside the train/eval steps."""
    raise NotImplementedError

  def reference_metrics(self) -> Dict[str, float]:
    """Analytic baselines (e.g. the memoryless loss) written beside the results."""
    return {}


def classification_metrics(logits_BxC, labels_B):
  """Cross-entropy and accuracy of one class per example."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits_BxC.astype(jnp.float32), labels_B)
  acc = (jnp.argmax(logits_BxC, -1) == labels_B).astype(jnp.float32)
  return ce.mean(), {'loss': ce.mean(), 'accuracy': acc.mean()}


def token_metrics(logits_BxTxC, labels_BxT, weights_BxT):
  """Weighted per-position cross-entropy and accuracy (weights pick the positions that count)."""
  w = weights_BxT.astype(jnp.float32)
  denom = jnp.maximum(w.sum(), 1.0)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxC.astype(jnp.float32), labels_BxT)
  correct = (jnp.argmax(logits_BxTxC, -1) == labels_BxT).astype(jnp.float32)
  loss = (ce * w).sum() / denom
  return loss, {'loss': loss, 'accuracy': (correct * w).sum() / denom}


def fixed_eval_batches(make_batch, seed: int, num_examples: int, batch_size: int,
                       process_index: int = 0, process_count: int = 1):
  """A deterministic eval set of `num_examples` drawn once from `seed`, split in batches."""
  rng = np.random.default_rng([seed, 0xE7A1])
  full = make_batch(rng, num_examples)
  local = batch_size // process_count
  for start in range(0, num_examples - batch_size + 1, batch_size):
    lo = start + process_index * local
    yield {k: v[lo:lo + local] for k, v in full.items()}

