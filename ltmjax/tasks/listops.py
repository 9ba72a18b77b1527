"""ListOps (Nangia & Bowman 2018; the Long Range Arena version of Tay et al. 2021), generated here.

An example is a nested prefix expression over the digits 0-9 with four list operators:
MIN, MAX, MED (median; the mean of the two middle values for an even count, floored) and
SM (sum modulo 10), e.g. `[MAX 2 9 [MIN 4 7 ] 0 ]` = 9. The label is its value (10 classes).
As in LRA: at most 10 operands per operator, nesting depth at most 10, 500-2000 tokens,
96k/2k/2k train/validation/test examples; LRA's parentheses are dropped (they carry no
information the brackets do not).

Vocabulary (VOCAB_SIZE = 16): 0 pad | 1..10 the digits 0..9 | 11 '[MIN' | 12 '[MAX' |
13 '[MED' | 14 '[SM' | 15 ']'.

Our generator (not LRA's): draw a token budget uniformly in [min_length, max_length] and
grow a tree top-down, splitting each operator's budget among 2..10 operands with random,
heavy-tailed shares (so some branches run deep and others are single digits); a share
too small for an operator becomes a digit. Lengths never exceed the budget; trees shorter
than min_length are redrawn. Example i of a split is a pure function of (seed, split, i).

The data is a tfds dataset (`ltm_listops`, array_record, no TensorFlow needed) written by
`ListOpsBuilder` into `data_dir` on first use; `ListOpsTask` reads it with grain.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from typing import List, Tuple

import numpy as np
import tensorflow_datasets as tfds

from ltmjax.tasks import pipeline
from ltmjax.tasks.base import Task, TaskSpec, classification_metrics

log = logging.getLogger('ltmjax')

PAD, DIGIT0, MIN, MAX, MED, SM, END = 0, 1, 11, 12, 13, 14, 15
VOCAB_SIZE = 16
VOCAB = ['<pad>'] + [str(d) for d in range(10)] + ['[MIN', '[MAX', '[MED', '[SM', ']']
OPERATORS = (MIN, MAX, MED, SM)
SPLITS = {'train': 0, 'validation': 1, 'test': 2}
CHUNK = 500   # examples per generation work item


def apply_operator(op: int, values: List[int]) -> int:
  """The value of one operator over its operands' values (digits 0..9)."""
  if op == MIN:
    return min(values)
  if op == MAX:
    return max(values)
  if op == SM:
    return sum(values) % 10
  s, n = sorted(values), len(values)
  return (s[(n - 1) // 2] + s[n // 2]) // 2


def _grow(rnd: random.Random, budget: int, depth: int, max_depth: int, max_args: int,
          out: List[int]) -> Tuple[int, int]:
  """Appends a subtree of at most `budget` tokens to `out`; returns (value, its depth)."""
  if budget < 4 or depth > max_depth:   # an operator needs >= 4 tokens: op, 2 operands, ']'
    d = int(rnd.random() * 10)
    out.append(DIGIT0 + d)
    return d, depth - 1
  op = OPERATORS[int(rnd.random() * 4)]
  rest = budget - 2
  k = 2 + int(rnd.random() * (min(max_args, rest) - 1))
  # Heavy-tailed shares (squared exponentials) of what is left after one token each.
  w = [(-math.log(1.0 - rnd.random())) ** 2 for _ in range(k)]
  scale = (rest - k) / (sum(w) or 1.0)
  out.append(op)
  values, deepest, spare = [], depth, 0
  for wi in w:
    # What a child leaves unused (a share too small for an operator) goes to the next one.
    share, start = 1 + int(wi * scale) + spare, len(out)
    v, dep = _grow(rnd, share, depth + 1, max_depth, max_args, out)
    spare = share - (len(out) - start)
    values.append(v)
    deepest = max(deepest, dep)
  out.append(END)
  return apply_operator(op, values), deepest


def generate_example(rnd: random.Random, min_length: int = 500, max_length: int = 2000,
                     max_depth: int = 10, max_args: int = 10) -> Tuple[np.ndarray, int, int]:
  """One ListOps expression.

  Returns:
    (tokens [L] int32 with min_length <= L <= max_length, label 0..9, nesting depth).
  """
  if not 4 <= min_length <= max_length:
    raise ValueError(f'need 4 <= min_length <= max_length, got {min_length}, {max_length}')
  while True:
    out: List[int] = []
    budget = min_length + int(rnd.random() * (max_length - min_length + 1))
    value, depth = _grow(rnd, budget, 1, max_depth, max_args, out)
    if len(out) >= min_length:
      return np.asarray(out, np.int32), value, depth


def example_rng(seed: int, split: str, index: int) -> random.Random:
  # random.Random hashes an int seed exactly; pack (seed, split, index) into one int.
  return random.Random((seed * 3 + SPLITS[split]) * 10**9 + index)


def generate_chunk(seed: int, split: str, start: int, stop: int, min_length: int,
                   max_length: int, max_depth: int, max_args: int) -> list:
  """Examples start..stop-1 of a split as (key, tfds example) pairs."""
  items = []
  for i in range(start, stop):
    tokens, label, _ = generate_example(example_rng(seed, split, i), min_length, max_length,
                                        max_depth, max_args)
    items.append((i, {'tokens': tokens, 'label': label}))
  return items


def decode(tokens) -> str:
  """Tokens back to text, e.g. '[MAX 2 9 ]' (padding dropped)."""
  return ' '.join(VOCAB[t] for t in np.asarray(tokens) if t != PAD)


@dataclasses.dataclass
class ListOpsConfig(tfds.core.BuilderConfig):
  train_examples: int = 96_000
  val_examples: int = 2_000
  test_examples: int = 2_000
  min_length: int = 500
  max_length: int = 2000
  max_depth: int = 10
  max_args: int = 10
  seed: int = 0
  workers: int = 0          # generation processes; 0 = one per core (not part of the data)


def listops_config(cfg) -> ListOpsConfig:
  """The builder config for a task config; its name encodes everything the data depends on."""
  name = (f'n{cfg.train_examples}-{cfg.val_examples}-{cfg.test_examples}'
          f'_len{cfg.min_length}-{cfg.max_length}_s{cfg.data_seed}')
  return ListOpsConfig(name=name, train_examples=cfg.train_examples,
                       val_examples=cfg.val_examples, test_examples=cfg.test_examples,
                       min_length=cfg.min_length, max_length=cfg.max_length,
                       seed=cfg.data_seed, workers=cfg.workers)


class ListOpsBuilder(tfds.core.GeneratorBasedBuilder):
  """tfds builder `ltm_listops`: generated locally from a seed (no download)."""
  name = 'ltm_listops'
  VERSION = tfds.core.Version('1.0.0')
  BUILDER_CONFIGS = [ListOpsConfig(name='lra')]   # LRA sizes; other sizes by config object

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__.split('\n\n')[0],
        features=tfds.features.FeaturesDict({
            'tokens': tfds.features.Tensor(shape=(None,), dtype=np.int32),
            'label': tfds.features.ClassLabel(num_classes=10)}),
        supervised_keys=('tokens', 'label'))

  def _split_generators(self, dl_manager):
    c = self.builder_config
    sizes = {'train': c.train_examples, 'validation': c.val_examples, 'test': c.test_examples}
    return {split: self._generate_examples(split, n) for split, n in sizes.items() if n > 0}

  def _generate_examples(self, split, num):
    c = self.builder_config
    chunks = [(c.seed, split, s, min(s + CHUNK, num), c.min_length, c.max_length, c.max_depth,
               c.max_args) for s in range(0, num, CHUNK)]
    yield from pipeline.generate_parallel(generate_chunk, chunks, c.workers)


def prepare(builder: tfds.core.DatasetBuilder) -> tfds.core.DatasetBuilder:
  """Generates and writes the dataset unless it is already in its data_dir."""
  if not builder.is_prepared():
    start = time.time()
    log.info('generating %s into %s ...', builder.info.full_name, builder.data_dir)
    builder.download_and_prepare(file_format='array_record')
    log.info('generated %s in %.1f s', builder.info.full_name, time.time() - start)
  return builder


class ListOpsTask(Task):
  """LRA ListOps: classify the value (0-9) of a padded token sequence."""
  name = 'listops'

  @staticmethod
  def default_config():
    return dict(
        data_dir='',               # '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
        seq_len=2000,              # T: examples are padded to this ('mask' marks tokens)
        train_examples=96_000,
        val_examples=2_000,
        test_examples=2_000,
        min_length=500,
        max_length=2000,
        data_seed=0,               # the generated dataset's seed (part of its name)
        workers=0,                 # generation processes; 0 = one per core
        eval_split='test',         # LRA reports test accuracy; 'validation' for model selection
    )

  def __init__(self, cfg, *, seed: int, batch_size: int, eval_batch_size: int,
               eval_examples: int = 0):
    del eval_examples   # a dataset task evaluates on its whole eval split
    if cfg.seq_len < cfg.max_length:
      raise ValueError(f'seq_len {cfg.seq_len} < max_length {cfg.max_length} would cut '
                       'expressions and change their values')
    self.cfg, self.seed = cfg, seed
    self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
    self.spec = TaskSpec('tokens', VOCAB_SIZE, 'sequence', 10, cfg.seq_len)
    self.builder = prepare(ListOpsBuilder(config=listops_config(cfg),
                                          data_dir=cfg.data_dir or pipeline.default_data_dir(),
                                          file_format='array_record'))

  def label(self):
    return 'ListOps'

  def preprocess(self, record):
    inputs, mask = pipeline.pad_tokens(record['tokens'], self.cfg.seq_len, PAD)
    return {'inputs': inputs, 'mask': mask, 'targets': np.int32(record['label'])}

  def train_iterator(self, process_index=0, process_count=1):
    return pipeline.SourceIterator(self.builder.as_data_source(split='train'), self.preprocess,
                                   batch_size=self.batch_size, seed=self.seed,
                                   process_index=process_index, process_count=process_count)

  def eval_batches(self, process_index=0, process_count=1):
    return pipeline.eval_batches(self.builder.as_data_source(split=self.cfg.eval_split),
                                 self.preprocess, self.eval_batch_size, process_index,
                                 process_count)

  def loss_and_metrics(self, logits_BxC, batch):
    return classification_metrics(logits_BxC, batch['targets'])

  def reference_metrics(self):
    return {'chance_accuracy': 0.1}
