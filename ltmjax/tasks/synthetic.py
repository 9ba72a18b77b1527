"""Procedural memory tasks: the copy memory task and the adding problem.

Both are drawn per batch from (seed, step): infinite, reproducible, resumable by step
alone; the eval set is a fixed draw from a distinct stream (`ltmjax.tasks.base.ProceduralTask`).
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from ltmjax.tasks.base import ProceduralTask, TaskSpec, token_metrics


class CopyTask(ProceduralTask):
  """Copy memory (Arjovsky et al. 2016).

  Input: `length` symbols from an alphabet of `alphabet` (tokens 1..alphabet), then
  `blank_len - 1` blanks (token 0), a delimiter (token alphabet+1), and `length`
  blanks; T = blank_len + 2 * length. Targets: blank everywhere except the last
  `length` positions, which must recall the symbols in order. The memoryless
  baseline (blanks, then a uniform guess) has cross-entropy
  length * log(alphabet) / T, i.e. 10 log 8 / (T + 20) at the paper's settings.
  """
  name, primary_metric = 'copy', 'recall_accuracy'

  @staticmethod
  def default_config():
    return dict(blank_len=100, length=10, alphabet=8)

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    self.blank_len, self.length, self.alphabet = cfg.blank_len, cfg.length, cfg.alphabet
    if self.blank_len < 1 or self.length < 1 or self.alphabet < 2:
      raise ValueError('copy task needs blank_len >= 1, length >= 1 and alphabet >= 2')
    self.seq_len = self.blank_len + 2 * self.length
    vocab = self.alphabet + 2
    self.spec = TaskSpec('tokens', vocab, 'token', vocab, self.seq_len, causal=True)

  def label(self):
    return f'Copy (T={self.blank_len})'

  def make_batch(self, rng, size):
    n, t = self.length, self.seq_len
    symbols = rng.integers(1, self.alphabet + 1, size=(size, n), dtype=np.int32)
    inputs = np.zeros((size, t), np.int32)
    inputs[:, :n] = symbols
    inputs[:, n + self.blank_len - 1] = self.alphabet + 1
    targets = np.zeros((size, t), np.int32)
    targets[:, -n:] = symbols
    return {'inputs': inputs, 'targets': targets, 'weights': np.ones((size, t), np.float32)}

  def loss_and_metrics(self, logits_BxTxC, batch):
    loss, metrics = token_metrics(logits_BxTxC, batch['targets'], batch['weights'])
    n = self.length
    recall = jnp.argmax(logits_BxTxC[:, -n:], -1) == batch['targets'][:, -n:]
    metrics['recall_accuracy'] = recall.astype(jnp.float32).mean()
    return loss, metrics

  def reference_metrics(self):
    return {'memoryless_loss': self.length * math.log(self.alphabet) / self.seq_len,
            'chance_recall_accuracy': 1.0 / self.alphabet}


class AddingTask(ProceduralTask):
  """Adding problem (Hochreiter & Schmidhuber 1997).

  Each step carries (value ~ U[-1, 1], marker). One marker lies in the first half of
  the sequence and one in the second; the target is 0.5 + (x1 + x2) / 4 as in the
  original paper, which also counts a sequence as solved when the absolute error is
  below 0.04. Predicting the mean has MSE Var(target) = 1/24.
  The values and the target are Hochreiter & Schmidhuber's; the marker placement is the
  modern one (one marker uniformly in each half, as in Le et al. 2015 and Arjovsky et al.
  2016). Their Experiment 4 put the first marker among the first ten steps and the second
  among the first T/2 - 1, and marked the first and last steps with -1.
  """
  name = 'adding'
  primary_metric = 'mse'
  higher_is_better = False

  @staticmethod
  def default_config():
    return dict(length=100, tolerance=0.04)

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    self.seq_len, self.tolerance = cfg.length, cfg.tolerance
    if self.seq_len < 2:
      raise ValueError('adding task needs length >= 2')
    self.spec = TaskSpec('real', 2, 'sequence', 1, self.seq_len)

  def label(self):
    return f'Adding (T={self.seq_len})'

  def make_batch(self, rng, size):
    t, half = self.seq_len, self.seq_len // 2
    values = rng.uniform(-1.0, 1.0, size=(size, t)).astype(np.float32)
    first = rng.integers(0, half, size=size)
    second = rng.integers(half, t, size=size)
    markers = np.zeros((size, t), np.float32)
    rows = np.arange(size)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = 0.5 + (values[rows, first] + values[rows, second]) / 4.0
    return {'inputs': np.stack([values, markers], -1),
            'targets': target[:, None].astype(np.float32)}

  def loss_and_metrics(self, preds_Bx1, batch):
    err_B = (preds_Bx1 - batch['targets'])[:, 0].astype(jnp.float32)
    mse = jnp.mean(err_B ** 2)
    return mse, {'loss': mse, 'mse': mse,
                 'success': (jnp.abs(err_B) < self.tolerance).astype(jnp.float32).mean()}

  def reference_metrics(self):
    return {'memoryless_mse': 1.0 / 24.0}


class SegmentCopyTask(ProceduralTask):
  """The copy task of the Recurrent Memory Transformer (Bulatov, Kuratov, Burtsev, NeurIPS 2022),
  read as a language model reads it, segment after segment.

  Reference: github.com/booydar/LM-RMT, `generation/algorithmic.ipynb` (`copy_generator`,
  SEQ_LEN 24), `pytorch/experiment_utils/generate_data.py` (`data_loader`:
  source and answer are stacked and shifted by one) and `pytorch/train_synthetic.py` (the
  loss and accuracy count the last `answer_size` = 48 positions). A source of `length` tokens
  drawn uniformly from 2..vocab-1 is followed by the start token 1 and the source written
  twice; token 0 (padding in the original) never occurs. The model reads
  [source, 1, source, source[:-1]] (T = 3 * length) and predicts the next token everywhere;
  the last 2 * length positions, the two copies, are scored. Every answer lies `length` or
  more tokens after the token it copies, so a model that reads segments of `length / 2`
  (RMT's 12) must carry the source across segments. `accuracy` here is teacher-forced
  (one forward pass); the RMT paper's accuracy generates the answer greedily, which agrees
  with it for a model that copies without error and at chance. The published runs
  (`experiment_results/short_synthetic+MT.csv`) have ntokens = 12, i.e. 10 symbols 2..11:
  their memoryless baselines score 0.10 = 1/10, so `vocab` defaults to 12.
  """
  name = 'segment_copy'

  @staticmethod
  def default_config():
    return dict(length=24, vocab=12)

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    self.length, self.vocab = cfg.length, cfg.vocab
    if self.length < 1 or self.vocab < 3:
      raise ValueError('segment_copy needs length >= 1 and vocab >= 3 (padding, start token '
                       'and at least one symbol)')
    self.seq_len = 3 * self.length
    self.spec = TaskSpec('tokens', self.vocab, 'token', self.vocab, self.seq_len, causal=True)

  def label(self):
    return f'RMT copy ({self.length} tokens)'

  def make_batch(self, rng, size):
    n = self.length
    source_BxN = rng.integers(2, self.vocab, size=(size, n), dtype=np.int32)
    start_Bx1 = np.ones((size, 1), np.int32)
    full = np.concatenate([source_BxN, start_Bx1, source_BxN, source_BxN], axis=1)
    weights = np.zeros((size, 3 * n), np.float32)
    weights[:, n:] = 1.0
    return {'inputs': full[:, :-1], 'targets': full[:, 1:], 'weights': weights}

  def loss_and_metrics(self, logits_BxTxC, batch):
    return token_metrics(logits_BxTxC, batch['targets'], batch['weights'])

  def reference_metrics(self):
    symbols = self.vocab - 2
    return {'memoryless_loss': math.log(symbols), 'chance_accuracy': 1.0 / symbols}
