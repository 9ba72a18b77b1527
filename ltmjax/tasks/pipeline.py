"""Batches from random-access data sources (tfds array_record splits, lists, arrays) via grain.

A *source* is anything with `__len__` and `__getitem__`: a `tfds.data_source(...)` split,
an ArrayRecord data source, a Python list or a numpy array. A *preprocess* function maps
one record to a dict of numpy arrays of fixed shapes (e.g. `pad_tokens` for token lists),
so that records stack into batches.

Global batch j is always the examples at positions [j*B, (j+1)*B) of the epoch's
permutation; process p of P gets the p-th block of B/P rows of it. Hence each process
reads a disjoint slice of every epoch, the slices cover the epoch, and the global batch
sequence does not depend on the number of processes.

    it = SourceIterator(open_tfds('mnist', 'train'), preprocess, batch_size=64, seed=0)
    batch = next(it); state = it.get_state()      # JSON: saved in checkpoints
    it.set_state(state)                           # resume: the same batches follow
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

import grain
import numpy as np

from ltmjax.tasks.base import Batch, BatchIterator

Preprocess = Callable[[Any], Dict[str, np.ndarray]]


def _local_batch(batch_size: int, process_count: int) -> int:
  if batch_size % process_count:
    raise ValueError(f'batch_size {batch_size} is not divisible by the {process_count} processes')
  return batch_size // process_count


def _read_options(num_threads: int, prefetch: int) -> grain.ReadOptions:
  # Each element of the pipeline is a whole local batch, so threads fetch batches in
  # parallel and `prefetch` counts batches held ahead.
  return grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)


def _sharded_batches(ds: grain.MapDataset, preprocess: Preprocess, num_examples: int,
                     batch_size: int, process_index: int, process_count: int) -> grain.MapDataset:
  """Keeps `num_examples // batch_size` global batches; this process's local batches."""
  local = _local_batch(batch_size, process_count)
  used = (num_examples // batch_size) * batch_size   # drop_remainder of the global batch
  if used == 0:
    raise ValueError(f'{num_examples} examples make no full batch of {batch_size}')
  # Local batch k belongs to process k % P, so global batch j = local batches jP..jP+P-1.
  return ds[:used].map(preprocess).batch(local, drop_remainder=True)[process_index::process_count]


class SourceIterator(BatchIterator):
  """Infinite, shuffled, per-process-sharded batches of a random-access source.

  Every epoch is a fresh permutation of the whole source (grain's index shuffle with seed
  `seed + epoch`); the last partial global batch of each epoch is dropped. State is
  grain's `{'next_index': n}`: the number of batches this process has returned.
  """

  def __init__(self, source: Sequence[Any], preprocess: Preprocess, *, batch_size: int,
               seed: int, process_index: int = 0, process_count: int = 1, shuffle: bool = True,
               num_threads: int = 4, prefetch: int = 8):
    """Args:
      source: random-access records (len + getitem).
      preprocess: record -> dict of numpy arrays of fixed shapes.
      batch_size: the GLOBAL batch size B; this process yields B // process_count rows.
      seed: shuffle seed (epoch e uses seed + e).
      process_index, process_count: this process among the data-loading processes.
      shuffle: False keeps the source order (useful in tests and for curricula).
      num_threads, prefetch: grain read threads and batches prefetched.
    """
    ds = grain.MapDataset.source(source)
    if shuffle:
      ds = ds.shuffle(seed=seed)
    ds = _sharded_batches(ds, preprocess, len(source), batch_size, process_index, process_count)
    self.batches_per_epoch = len(ds)
    self._dataset = ds.repeat().to_iter_dataset(_read_options(num_threads, prefetch))
    self._iterator = iter(self._dataset)

  def __next__(self) -> Batch:
    return next(self._iterator)

  def get_state(self) -> Dict[str, Any]:
    return {k: int(v) if isinstance(v, (int, np.integer)) else v
            for k, v in self._iterator.get_state().items()}

  def set_state(self, state: Dict[str, Any]) -> None:
    # A fresh iterator drops batches prefetched from the old position.
    self._iterator = iter(self._dataset)
    self._iterator.set_state(dict(state))


def eval_batches(source: Sequence[Any], preprocess: Preprocess, batch_size: int,
                 process_index: int = 0, process_count: int = 1,
                 max_examples: Optional[int] = None, num_threads: int = 4,
                 prefetch: int = 8) -> Iterator[Batch]:
  """The first `max_examples` records (default all) in order, as full global batches.

  Deterministic and finite; the last partial batch is dropped so every batch has the
  same size (the trainer averages per-batch metrics) and every process the same count.

  Args:
    source: random-access records.
    preprocess: record -> dict of numpy arrays of fixed shapes.
    batch_size: global batch size B; this process yields B // process_count rows.
    process_index, process_count: this process among the data-loading processes.
    max_examples: cap on the number of records read.
  Returns:
    an iterator of batches (dicts of [B // process_count, ...] arrays).
  """
  n = len(source) if max_examples is None else min(len(source), max_examples)
  ds = _sharded_batches(grain.MapDataset.source(source), preprocess, n, batch_size,
                        process_index, process_count)
  return iter(ds.to_iter_dataset(_read_options(num_threads, prefetch)))


def pad_tokens(tokens, seq_len: int, pad_id: int = 0) -> Tuple[np.ndarray, np.ndarray]:
  """Pads (or truncates) a 1-D token sequence to `seq_len`.

  Returns:
    (inputs [seq_len] int32, mask [seq_len] bool, True at real tokens).
  """
  tokens = np.asarray(tokens, np.int32)[:seq_len]
  inputs = np.full((seq_len,), pad_id, np.int32)
  inputs[:len(tokens)] = tokens
  mask = np.zeros((seq_len,), bool)
  mask[:len(tokens)] = True
  return inputs, mask


def default_data_dir() -> str:
  """Where tfds datasets live: $TFDS_DATA_DIR, else ~/tensorflow_datasets (tfds' default)."""
  return os.environ.get('TFDS_DATA_DIR') or os.path.expanduser('~/tensorflow_datasets')


def open_tfds(name: str, split: str, data_dir: Optional[str] = None) -> Sequence[Any]:
  """A prepared tfds dataset's split as a random-access source (no TensorFlow needed).

  Never downloads (machines may be offline); a missing or tfrecord-only dataset raises
  a FileNotFoundError that says how to prepare it.

  Args:
    name: tfds name, optionally with config and version ('mnist', 'cifar10:3.0.2').
    split: split expression ('train', 'test', 'train[:90%]').
    data_dir: tfds data directory (default `default_data_dir()`).
  Returns:
    a sequence of records (dicts of numpy arrays).
  """
  import tensorflow_datasets as tfds  # heavy import: only where a tfds dataset is read
  data_dir = data_dir or default_data_dir()
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # tfds raises several types (AssertionError, DatasetNotFoundError, ...)
    raise FileNotFoundError(
        f'tfds dataset {name!r} (split {split!r}) is not prepared as array_record in '
        f'{data_dir}: on a machine with network run `python -c "import tensorflow_datasets as '
        f'tfds; tfds.builder(\'{name}\', data_dir=\'{data_dir}\').download_and_prepare('
        f'file_format=\'array_record\')"` and copy the directory here, or set TFDS_DATA_DIR '
        f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})') from e


def generate_parallel(make_chunk: Callable[..., list], chunks: Sequence[tuple],
                      workers: int = 0) -> Iterator[Any]:
  """Yields the items of `make_chunk(*chunk)` for each chunk, in order, over worker processes.

  Data generators cut a split into chunks seeded by (seed, split, chunk index), so the
  result does not depend on `workers`. Workers are spawned (not forked): the parent may
  hold JAX's threads, which a fork would copy in an undefined state.

  Args:
    make_chunk: a module-level (picklable) function returning a list of items.
    chunks: the argument tuples, one per chunk.
    workers: processes; 0 means one per CPU core, 1 runs in this process.
  """
  import multiprocessing
  workers = workers or os.cpu_count() or 1
  if workers == 1 or len(chunks) <= 1:
    for chunk in chunks:
      yield from make_chunk(*chunk)
    return
  with multiprocessing.get_context('spawn').Pool(min(workers, len(chunks))) as pool:
    for items in pool.imap(_star_call, [(make_chunk, c) for c in chunks]):
      yield from items


def _star_call(fn_and_args):
  fn, args = fn_and_args
  return fn(*args)
