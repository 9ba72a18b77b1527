"""The base of every task read from a dataset: a source per split, a preprocess, a loss.

A dataset task declares what differs between datasets and nothing else:
  spec                  set in `__init__` (after `super().__init__(cfg, **kw)`)
  open_split(split)     a random-access source (len + getitem) of one split, e.g. a tfds
                        array_record split (`pipeline.open_tfds`)
  preprocess(record)    one record -> dict of fixed-shape numpy arrays ('inputs',
                        'targets', optionally 'mask', 'inputs2', 'mask2')
  loss_and_metrics      only if it is not classification of batch['targets']
Its config group has `train_split` and `eval_split`. The base builds the trainer's
iterators from them: shuffled, per-process-sharded training batches that resume from JSON
state (`pipeline.SourceIterator`), and the first `train.eval_examples` records of the eval
split (0, the default for dataset tasks: all of them) in whole batches. Global batches
are positions of the epoch's permutation, so they do not depend on the number of processes.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np

from ltmjax.tasks import pipeline
from ltmjax.tasks.base import Task, classification_metrics


class DatasetTask(Task):
  """A task over the splits of a dataset (classification unless a subclass says otherwise)."""
  default_eval_examples, min_eval_examples = 0, 0   # 0: the whole eval split

  def open_split(self, split: str) -> Sequence[Any]:
    raise NotImplementedError

  def preprocess(self, record) -> Dict[str, np.ndarray]:
    raise NotImplementedError

  def train_iterator(self, process_index=0, process_count=1):
    return pipeline.SourceIterator(self.open_split(self.cfg.train_split), self.preprocess,
                                   batch_size=self.batch_size, seed=self.seed,
                                   process_index=process_index, process_count=process_count)

  def eval_batches(self, process_index=0, process_count=1):
    return pipeline.eval_batches(self.open_split(self.cfg.eval_split), self.preprocess,
                                 self.eval_batch_size, process_index, process_count,
                                 max_examples=self.eval_examples or None)

  def loss_and_metrics(self, logits_BxC, batch):
    return classification_metrics(logits_BxC, batch['targets'])

  def reference_metrics(self):
    return {'chance_accuracy': 1.0 / self.spec.num_outputs}
