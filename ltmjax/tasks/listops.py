"""ListOps (Nangia & Bowman 2018; the Long Range Arena version of Tay et al. 2021), generated here.

An example is a nested prefix expression over the digits 0-9 with four list operators:
MIN, MAX, MED (median; the mean of the two middle values for an even count, floored) and
SM (sum modulo 10), e.g. `[MAX 2 9 [MIN 4 7 ] 0 ]` = 9. The label is its value (10 classes).
The trees follow LRA's generator rules (`ltmjax.tasks.listops_grammar`, after
lra_benchmarks/data/listops.py): 2-10 operands per operator (6 on average), operators
nested at most 9 deep (LRA's max_depth 10), 500 < length < 2000 tokens counting `[OP` and
`]`, 96k/2k/2k train/validation/test examples. The stored tokens keep `]`; `task.brackets`
chooses what the model reads: `keep` (as the S4/S5 pipelines, which keep `]`) or `drop`
(LRA's released input pipeline splits on \\W+ and loses every bracket, LRA issues #14 and
#20, which is probably what LRA's published numbers were trained on). LRA's parentheses
carry nothing the brackets do not and are never emitted.

Vocabulary (VOCAB_SIZE = 16): 0 pad | 1..10 the digits 0..9 | 11 '[MIN' | 12 '[MAX' |
13 '[MED' | 14 '[SM' | 15 ']'. Example i of a split is a pure function of (seed, split, i).

The data is a tfds dataset (`ltm_listops`, array_record, no TensorFlow needed) written by
`ListOpsBuilder` into `data_dir` on first use; `ListOpsTask` reads it with grain
(`ltmjax.tasks.generated`).
"""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import tensorflow_datasets as tfds

from ltmjax.tasks import generated, pipeline
from ltmjax.tasks.base import TaskSpec
from ltmjax.tasks.listops_grammar import (  # noqa: F401  (the vocabulary is re-exported)
    BRACKETS, DIGIT0, END, MAX, MED, MIN, OPERATORS, PAD, SM, VOCAB, VOCAB_SIZE, apply_operator,
    decode, generate_example, strip_brackets)

SPLITS = {'train': 0, 'validation': 1, 'test': 2}
CHUNK = 500   # examples per generation work item
# The config fields that make LRA's ListOps (ListOpsConfig's defaults are LRA's values).
LRA_FIELDS = ('train_examples', 'min_length', 'max_length', 'max_depth', 'max_args')


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


@dataclasses.dataclass
class ListOpsConfig(generated.GeneratedConfig):
  train_examples: int = 96_000
  val_examples: int = 2_000
  test_examples: int = 2_000
  min_length: int = 500
  max_length: int = 2000
  max_depth: int = 10
  max_args: int = 10


def is_lra_setting(task_cfg) -> bool:
  """Whether a task config gives LRA's ListOps: its lengths, depth, operands and 96k training
  examples (ListOpsConfig's defaults); a shorter or smaller version is another table column."""
  return all(task_cfg[f] == ListOpsConfig.__dataclass_fields__[f].default for f in LRA_FIELDS)


class ListOpsBuilder(generated.GeneratedBuilder):
  """tfds builder `ltm_listops`: generated locally from a seed (no download)."""
  name, VERSION = 'ltm_listops', tfds.core.Version('2.0.0')
  RELEASE_NOTES = {'2.0.0': "Trees drawn by LRA's generator rules (listops_grammar)."}
  BUILDER_CONFIGS = [ListOpsConfig(name='lra')]   # LRA sizes; other sizes by config object
  config_cls, generate_chunk, CHUNK = ListOpsConfig, staticmethod(generate_chunk), CHUNK
  SUPERVISED_KEYS = ('tokens', 'label')

  def features(self):
    return {'tokens': tfds.features.Tensor(shape=(None,), dtype=np.int32),
            'label': tfds.features.ClassLabel(num_classes=10)}


class ListOpsTask(generated.GeneratedTask):
  """LRA ListOps: classify the value (0-9) of a padded token sequence."""
  name, builder_cls = 'listops', ListOpsBuilder

  @classmethod
  def default_config(cls):
    return dict(
        super().default_config(),
        seq_len=2000,              # T: examples are padded to this ('mask' marks tokens)
        brackets='keep',           # keep | drop: ']' in the input or not (LRA's pipeline drops it)
    )

  def __init__(self, cfg, **kw):
    if cfg.seq_len < cfg.max_length:
      raise ValueError(f'seq_len {cfg.seq_len} < max_length {cfg.max_length} would cut '
                       'expressions and change their values')
    if cfg.brackets not in BRACKETS:
      raise ValueError(f'task.brackets must be one of {BRACKETS}, got {cfg.brackets!r}')
    super().__init__(cfg, **kw)
    self.spec = TaskSpec('tokens', VOCAB_SIZE, 'sequence', 10, cfg.seq_len)

  def label(self):
    if is_lra_setting(self.cfg):
      return 'ListOps'
    return f'ListOps ({self.cfg.min_length}-{self.cfg.max_length} tokens, not LRA)'

  def benchmark(self):   # LRA's published rows and LRA Avg apply to LRA's setting only
    return 'lra' if is_lra_setting(self.cfg) else ''

  def preprocess(self, record):
    tokens = strip_brackets(record['tokens'], self.cfg.brackets)
    inputs, mask = pipeline.pad_tokens(tokens, self.cfg.seq_len, PAD)
    return {'inputs': inputs, 'mask': mask, 'targets': np.int32(record['label'])}
