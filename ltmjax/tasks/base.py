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
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

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


TRAIN_STREAM, EVAL_STREAM = 0, 1   # the second word of every example key


def process_rows(batch_size: int, process_index: int = 0, process_count: int = 1) -> np.ndarray:
  """The global rows [p*B/P, (p+1)*B/P) of a batch of B that process p of P materialises.

  Contiguous blocks in process order: where `parallel.global_batch` puts each process's rows.
  """
  if batch_size % process_count:
    raise ValueError(f'batch_size {batch_size} is not divisible by the {process_count} processes')
  local = batch_size // process_count
  return np.arange(process_index * local, (process_index + 1) * local)


def draw_examples(make_batch, key: Sequence[int], indices) -> Batch:
  """Example i is `make_batch(default_rng([*key, i]), 1)`, stacked over `indices`.

  Each example is a function of (key, i) alone, so a process can draw any subset of one
  global batch (or eval set) without drawing the rest. One Generator per example costs
  about 15-25 us more than a vectorised draw (1.4 ms per copy batch of 64).
  """
  parts = [make_batch(np.random.default_rng([*key, int(i)]), 1) for i in indices]
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class StepIterator(BatchIterator):
  """An iterator whose position is its step alone: JSON state {'step': s}."""
  step: int = 0

  def get_state(self) -> Dict[str, Any]:
    return {'step': self.step}

  def set_state(self, state: Dict[str, Any]) -> None:
    self.step = int(state['step'])


class ProceduralIterator(StepIterator):
  """Batches drawn from (seed, step): infinite, reproducible, resumable by step alone.

  `make_batch(rng, size)` draws `size` examples from a numpy Generator. Row r of the
  global batch of step s is drawn from the key (seed, TRAIN_STREAM, s, r) and each process
  draws only its rows (`process_rows`), so the global batch does not depend on the number
  of processes, and a run resumes on another topology with the same data.
  """

  def __init__(self, make_batch, seed: int, batch_size: int, process_index: int = 0,
               process_count: int = 1, step: int = 0):
    self._make_batch, self._seed = make_batch, seed
    self._rows = process_rows(batch_size, process_index, process_count)
    self.step = step

  def __next__(self) -> Batch:
    batch = draw_examples(self._make_batch, (self._seed, TRAIN_STREAM, self.step), self._rows)
    self.step += 1
    return batch


class Task:
  """Base class: subclasses set `name`, `spec`, and give batches and a loss.

  Built by the trainer as `cls(cfg, seed=..., batch_size=..., eval_batch_size=...,
  eval_examples=...)` from the config's `task` group and `seed`, `train.batch_size`,
  `train.eval_batch_size`, `train.eval_examples` (None: the class's
  `default_eval_examples`, which is also that key's default in config_lib). Subclasses
  declare their `task` group in `default_config()`.
  """
  name: str = ''
  spec: TaskSpec
  primary_metric: str = 'accuracy'   # the metric a comparison table shows
  higher_is_better: bool = True
  default_eval_examples: int = 1024  # train.eval_examples for this task unless set
  min_eval_examples: int = 1

  def __init__(self, cfg, *, seed: int, batch_size: int, eval_batch_size: int,
               eval_examples: Optional[int] = None):
    self.cfg, self.seed = cfg, seed
    self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
    self.eval_examples = self.default_eval_examples if eval_examples is None else eval_examples
    if self.eval_examples < self.min_eval_examples:
      raise ValueError(f'{self.name}: train.eval_examples must be >= {self.min_eval_examples}, '
                       f'got {self.eval_examples}')

  @staticmethod
  def default_config() -> Dict[str, Any]:
    raise NotImplementedError

  def label(self) -> str:
    """Column name in tables, e.g. 'Copy (T=100)'."""
    return self.name

  def benchmark(self) -> str:
    """The published benchmark whose average this task's column enters (e.g. 'lra'), or ''."""
    return ''

  def train_iterator(self, process_index: int = 0, process_count: int = 1) -> BatchIterator:
    """Process `process_index`'s rows of the global batches; the global batch of step s
    depends on (seed, s) alone, never on the number of processes."""
    raise NotImplementedError

  def eval_batches(self, process_index: int = 0, process_count: int = 1) -> Iterator[Batch]:
    """A fixed, finite evaluation set (same every call and on every topology)."""
    raise NotImplementedError

  def loss_and_metrics(self, outputs, batch):
    """(scalar loss, {metric: scalar}); jit-compiled inside the train/eval steps."""
    raise NotImplementedError

  def reference_metrics(self) -> Dict[str, float]:
    """Analytic baselines (e.g. the memoryless loss) written beside the results."""
    return {}


class ProceduralTask(Task):
  """A task whose examples come from `make_batch(rng, size)`: training batches from
  (seed, step), and a fixed eval set of `eval_examples` (rounded down to whole batches)."""

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    b = self.eval_batch_size
    self.eval_examples = max(self.eval_examples - self.eval_examples % b, b)

  def make_batch(self, rng: np.random.Generator, size: int) -> Batch:
    raise NotImplementedError

  def train_iterator(self, process_index=0, process_count=1):
    return ProceduralIterator(self.make_batch, self.seed, self.batch_size, process_index,
                              process_count)

  def eval_batches(self, process_index=0, process_count=1):
    return fixed_eval_batches(self.make_batch, self.seed, self.eval_examples,
                              self.eval_batch_size, process_index, process_count)


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


def indexed_eval_batches(examples: Callable[[np.ndarray], Batch], num_examples: int,
                         batch_size: int, process_index: int = 0,
                         process_count: int = 1) -> Iterator[Batch]:
  """Examples 0..num_examples-1 in whole global batches; this process's rows of each.

  `examples(indices)` gives the examples at those global indices (a batch). The set is the
  same on every topology; a last partial batch is dropped.
  """
  rows = process_rows(batch_size, process_index, process_count)
  return (examples(start + rows) for start in range(0, num_examples - batch_size + 1, batch_size))


def fixed_eval_batches(make_batch, seed: int, num_examples: int, batch_size: int,
                       process_index: int = 0, process_count: int = 1) -> Iterator[Batch]:
  """A fixed eval set: example i drawn from the key (seed, EVAL_STREAM, i), in batches."""
  return indexed_eval_batches(
      lambda indices: draw_examples(make_batch, (seed, EVAL_STREAM), indices), num_examples,
      batch_size, process_index, process_count)
