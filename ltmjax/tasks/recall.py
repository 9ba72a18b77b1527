"""Recall tasks from the state-space-model literature: selective copying and MQAR.

Both are procedural (each batch drawn from (seed, step); the eval set is a fixed draw
from a distinct seed), causal and per-token: the loss and accuracy count only the
positions where something must be recalled (the batch's 'weights').
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from ltmjax.tasks.base import ProceduralTask, TaskSpec, token_metrics


def _distinct(rng: np.random.Generator, size: int, n: int, k: int) -> np.ndarray:
  """[size, k] int: k distinct values of 0..n-1 per row, in random order."""
  # argsort of uniform noise is a uniform random permutation of each row
  return np.argsort(rng.random((size, n)), axis=1)[:, :k]


class _RecallTask(ProceduralTask):
  """Tokens 0..vocab-1 in; at every position one of them out, causally (scored where the
  batch's 'weights' are 1)."""
  vocab: int
  seq_len: int

  @property
  def spec(self) -> TaskSpec:
    return TaskSpec('tokens', self.vocab, 'token', self.vocab, self.seq_len, causal=True)


class SelectiveCopyTask(_RecallTask):
  """Selective copying (Gu & Dao 2023, Mamba; the S4 repository's 'variable' copying).

  Tokens: 0 is noise, 1..vocab-2 are data, vocab-1 is the marker (so `vocab` counts
  every input token, as in the Mamba paper's "vocabulary 16"). The first `length`
  positions hold `num_tokens` data tokens at random positions and noise elsewhere;
  then `num_tokens` markers follow, T = length + num_tokens. At the i-th marker the
  model must output the i-th data token. Unlike the copy task the spacing varies, so
  a model must select by content, not count time steps.
  """
  name = 'selective_copy'

  @staticmethod
  def default_config():
    return dict(length=4096, num_tokens=16, vocab=16)

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    self.length, self.num_tokens, self.vocab = cfg.length, cfg.num_tokens, cfg.vocab
    if self.vocab < 3:
      raise ValueError('selective_copy needs vocab >= 3 (noise, marker and a data token)')
    if not 1 <= self.num_tokens <= self.length:
      raise ValueError(f'selective_copy needs 1 <= num_tokens <= length, got '
                       f'num_tokens={self.num_tokens}, length={self.length}')
    self.marker = self.vocab - 1
    self.seq_len = self.length + self.num_tokens

  def label(self):
    return f'Selective Copy (T={self.length})'

  def make_batch(self, rng, size):
    n, t = self.num_tokens, self.seq_len
    rows = np.arange(size)[:, None]
    positions_BxN = np.sort(_distinct(rng, size, self.length, n), axis=1)
    data_BxN = rng.integers(1, self.marker, size=(size, n), dtype=np.int32)
    inputs = np.zeros((size, t), np.int32)
    inputs[rows, positions_BxN] = data_BxN
    inputs[:, self.length:] = self.marker
    targets = np.zeros((size, t), np.int32)
    targets[:, self.length:] = data_BxN
    weights = np.zeros((size, t), np.float32)
    weights[:, self.length:] = 1.0
    return {'inputs': inputs, 'targets': targets, 'weights': weights}

  def loss_and_metrics(self, logits_BxTxC, batch):
    loss, metrics = token_metrics(logits_BxTxC, batch['targets'], batch['weights'])
    n = self.num_tokens
    hit_BxN = jnp.argmax(logits_BxTxC[:, -n:], -1) == batch['targets'][:, -n:]
    metrics['sequence_accuracy'] = hit_BxN.all(-1).astype(jnp.float32).mean()
    return loss, metrics

  def reference_metrics(self):
    data = self.vocab - 2
    return {'memoryless_loss': math.log(data), 'chance_accuracy': 1.0 / data}


class MQARTask(_RecallTask):
  """Multi-query associative recall (Arora et al. 2023, Zoology), as zoology draws it.

  Reference: `zoology/data/multiquery_ar.py` in github.com/HazyResearch/zoology. Keys are
  `num_pairs` distinct tokens of 1..vocab/2-1 and values `num_pairs` distinct tokens of
  vocab/2..vocab-1 (both drawn without replacement). The sequence starts with the pairs
  `k1 v1 k2 v2 ...`; then every key is queried once at an even offset of the rest of the
  sequence: the slot (gap) of the query of pair i is the i-th of `num_pairs` draws without
  replacement with probability proportional to a * g^(a-1) (g = 1, 2, ...; a = `power_a`),
  so most queries come soon after the context, and the pairs placed first tend to be asked
  first, as in zoology's sequential `np.random.choice`. Every other position holds a token
  drawn uniformly from 0..vocab-1 (zoology's `random_non_queries=True`, the default here;
  False leaves them 0). At a query position the model must output that key's value; the
  loss and accuracy count query positions only.
  """
  name = 'mqar'

  @staticmethod
  def default_config():
    return dict(length=256, num_pairs=16, vocab=8192, power_a=0.01, random_non_queries=True)

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    self.seq_len, self.num_pairs, self.vocab = cfg.length, cfg.num_pairs, cfg.vocab
    self.power_a, self.random_non_queries = cfg.power_a, bool(cfg.random_non_queries)
    half = self.vocab // 2
    if self.num_pairs < 1 or self.num_pairs > half - 1:
      raise ValueError(f'mqar needs 1 <= num_pairs <= vocab/2 - 1 = {half - 1} (distinct keys '
                       f'and values), got num_pairs={self.num_pairs}')
    if self.seq_len < 4 * self.num_pairs:
      raise ValueError(f'mqar needs length >= 4 * num_pairs (context plus a query slot and a '
                       f'blank per pair), got length={self.seq_len}, num_pairs={self.num_pairs}')
    if self.power_a <= 0:
      raise ValueError(f'mqar needs power_a > 0, got {self.power_a}')

  def label(self):
    return f'MQAR (T={self.seq_len}, {self.num_pairs} pairs)'

  def make_batch(self, rng, size):
    p, t, half = self.num_pairs, self.seq_len, self.vocab // 2
    context = 2 * p
    slots = (t - context) // 2          # query slots at even offsets after the context
    keys_BxP = (_distinct(rng, size, half - 1, p) + 1).astype(np.int32)
    values_BxP = (_distinct(rng, size, self.vocab - half, p) + half).astype(np.int32)
    # Pair i's slot is the i-th of p draws without replacement with probability ~ g^(a-1):
    # the Gumbel-top-k trick, taking the top scores in order, gives that sequential draw.
    g = np.arange(1, slots + 1, dtype=np.float64)
    log_w = math.log(self.power_a) + (self.power_a - 1.0) * np.log(g)
    scores = log_w - np.log(-np.log(rng.random((size, slots))))
    slot_BxP = np.argsort(-scores, axis=1)[:, :p]
    query_pos_BxP = context + 2 * slot_BxP
    if self.random_non_queries:
      inputs = rng.integers(0, self.vocab, size=(size, t), dtype=np.int32)
    else:
      inputs = np.zeros((size, t), np.int32)
    inputs[:, 0:context:2] = keys_BxP
    inputs[:, 1:context:2] = values_BxP
    rows = np.arange(size)[:, None]
    inputs[rows, query_pos_BxP] = keys_BxP
    targets = np.zeros((size, t), np.int32)
    targets[rows, query_pos_BxP] = values_BxP
    weights = np.zeros((size, t), np.float32)
    weights[rows, query_pos_BxP] = 1.0
    return {'inputs': inputs, 'targets': targets, 'weights': weights}

  def loss_and_metrics(self, logits_BxTxC, batch):
    return token_metrics(logits_BxTxC, batch['targets'], batch['weights'])

  def reference_metrics(self):
    values = self.vocab - self.vocab // 2
    return {'memoryless_loss': math.log(values), 'chance_accuracy': 1.0 / values}
