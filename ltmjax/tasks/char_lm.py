"""Character-level language modelling on bytes (vocabulary 256, so no vocabulary file).

Corpus (`task.source`):
  'builtin'  builtin_corpus.txt, a small play written for ltmjax (about 30 KB, no
             download): smoke tests and laptop runs.
  'tfds'     tfds `tiny_shakespeare` (Karpathy's char-rnn corpus): train split for
             training, validation split for evaluation. Must be prepared once as
             array_record on a machine with network (the error message says how).
  'files'    local text files: `task.files` is a glob, relative to `task.data_dir`
             when that is set; the files are read as bytes in sorted order.
For 'builtin' and 'files' the last `eval_fraction` of the text is held out.

Training windows of `seq_len` + 1 bytes start at random offsets drawn from (seed,
step); evaluation uses fixed windows of the held-out text. Metrics: loss (nats per
byte), accuracy, and bits per character, bpc = loss / ln 2 (the primary metric).
"""
from __future__ import annotations

import functools
import glob
import math
import os
from importlib import resources
from typing import Tuple

import jax.numpy as jnp
import numpy as np

from ltmjax.tasks.base import ProceduralTask, TaskSpec, indexed_eval_batches, token_metrics

VOCAB = 256
BUILTIN_CORPUS = 'builtin_corpus.txt'
SOURCES = ('builtin', 'tfds', 'files')


def _as_bytes(text) -> np.ndarray:
  """[N] uint8 of a str (UTF-8) or bytes."""
  if isinstance(text, np.ndarray):
    text = text.item() if text.ndim == 0 else bytes(text)
  if isinstance(text, str):
    text = text.encode('utf-8')
  return np.frombuffer(bytes(text), np.uint8)


def _split_tail(data: np.ndarray, eval_fraction: float) -> Tuple[np.ndarray, np.ndarray]:
  cut = int(round(len(data) * (1.0 - eval_fraction)))
  return data[:cut], data[cut:]


def load_builtin() -> np.ndarray:
  """The corpus that ships with the package, [N] uint8."""
  return _as_bytes(resources.files('ltmjax.tasks').joinpath(BUILTIN_CORPUS).read_bytes())


def load_files(files: str, data_dir: str = '') -> np.ndarray:
  """The bytes of every file matching the glob `files` (under `data_dir` if set), [N] uint8."""
  pattern = os.path.join(os.path.expanduser(data_dir), files) if data_dir else files
  paths = sorted(p for p in glob.glob(os.path.expanduser(pattern)) if os.path.isfile(p))
  if not files or not paths:
    raise FileNotFoundError(f'char_lm: no text file matches task.files={files!r} '
                            f'(pattern {pattern!r}); set task.files to a glob of text files')
  chunks = []
  for path in paths:
    with open(path, 'rb') as f:
      chunks.append(f.read())
  return _as_bytes(b''.join(chunks))


def load_tiny_shakespeare(data_dir: str = '') -> Tuple[np.ndarray, np.ndarray]:
  """(train, validation) bytes of tfds `tiny_shakespeare`; never downloads."""
  from ltmjax.tasks import pipeline   # tfds is a heavy import: only for this source
  data_dir = os.path.expanduser(data_dir) or pipeline.default_data_dir()
  try:
    train = pipeline.open_tfds('tiny_shakespeare', 'train', data_dir)
    valid = pipeline.open_tfds('tiny_shakespeare', 'validation', data_dir)
  except FileNotFoundError as e:
    raise FileNotFoundError(
        f'tfds tiny_shakespeare is not prepared in {data_dir}: run once on a machine with network '
        '(needs tensorflow) `python -c "import tensorflow_datasets as tfds; tfds.builder('
        f"'tiny_shakespeare', data_dir='{data_dir}').download_and_prepare(file_format="
        "'array_record')\"`, or download input.txt of karpathy/char-rnn and set "
        "task.source='files' task.files=input.txt (task.data_dir=its folder), or use "
        "task.source='builtin'") from e
  return (np.concatenate([_as_bytes(r['text']) for r in train]),
          np.concatenate([_as_bytes(r['text']) for r in valid]))


class CharLMTask(ProceduralTask):
  """Next-byte prediction: inputs are bytes t..t+T-1, targets bytes t+1..t+T."""
  name = 'char_lm'
  primary_metric = 'bpc'
  higher_is_better = False

  @staticmethod
  def default_config():
    return dict(source='builtin', files='', data_dir='', seq_len=256, eval_fraction=0.1)

  def __init__(self, cfg, **kw):
    if cfg.source not in SOURCES:
      raise ValueError(f'unknown task.source {cfg.source!r}; known: {", ".join(SOURCES)}')
    if cfg.seq_len < 1:
      raise ValueError(f'char_lm needs seq_len >= 1, got {cfg.seq_len}')
    if not 0.0 < cfg.eval_fraction < 1.0:
      raise ValueError(f'char_lm needs 0 < eval_fraction < 1, got {cfg.eval_fraction}')
    super().__init__(cfg, **kw)
    self.seq_len = cfg.seq_len
    self.spec = TaskSpec('tokens', VOCAB, 'token', VOCAB, self.seq_len, causal=True)

  def label(self):
    corpus = 'Tiny Shakespeare' if self.cfg.source == 'tfds' else self.cfg.source
    return f'Char LM ({corpus}, T={self.seq_len})'

  @functools.cached_property
  def corpus(self) -> Tuple[np.ndarray, np.ndarray]:
    """(train, eval) bytes, [N] uint8 each; read on first use, so sampling needs no data."""
    cfg = self.cfg
    if cfg.source == 'tfds':
      train, held_out = load_tiny_shakespeare(cfg.data_dir)
    else:
      data = load_builtin() if cfg.source == 'builtin' else load_files(cfg.files, cfg.data_dir)
      train, held_out = _split_tail(data, cfg.eval_fraction)
    for split, part in (('training', train), ('evaluation', held_out)):
      if len(part) < self.seq_len + 1:
        raise ValueError(f'char_lm: the {split} text has {len(part)} bytes, fewer than '
                         f'task.seq_len + 1 = {self.seq_len + 1}; lower task.seq_len')
    return train, held_out

  # Text <-> tokens, for sampling (ltmjax.sample).
  def encode(self, text: str) -> np.ndarray:
    """[N] int32 byte tokens of a string (UTF-8)."""
    return _as_bytes(text).astype(np.int32)

  def decode(self, tokens) -> str:
    """The string of byte tokens; bytes that are not valid UTF-8 become U+FFFD."""
    return bytes(np.asarray(tokens, np.uint8)).decode('utf-8', errors='replace')

  def _windows(self, data: np.ndarray, starts_W: np.ndarray):
    idx_WxT1 = starts_W[:, None] + np.arange(self.seq_len + 1)
    chunk = data[idx_WxT1].astype(np.int32)
    return {'inputs': chunk[:, :-1], 'targets': chunk[:, 1:]}

  def make_batch(self, rng: np.random.Generator, size: int):
    """`size` training windows at uniform random offsets."""
    train = self.corpus[0]
    return self._windows(train, rng.integers(0, len(train) - self.seq_len, size=size))

  def eval_starts(self, num: int) -> np.ndarray:
    """[num] offsets of fixed windows of the held-out text: back to back where it is long
    enough, else evenly spaced (overlapping) so that a small corpus still fills a batch."""
    last_start = len(self.corpus[1]) - self.seq_len - 1
    if (num - 1) * self.seq_len <= last_start:
      return np.arange(num) * self.seq_len
    return np.linspace(0, last_start, num).round().astype(np.int64)

  def eval_windows(self, num: int):
    """The `num` fixed eval windows (`eval_starts`) as one batch."""
    return self._windows(self.corpus[1], self.eval_starts(num))

  def num_eval_windows(self) -> int:
    """Back-to-back windows of the held-out text, capped by train.eval_examples, rounded
    down to whole eval batches (at least one batch)."""
    available = (len(self.corpus[1]) - 1) // self.seq_len
    num = min(available, max(self.eval_examples, self.eval_batch_size))
    return max(num - num % self.eval_batch_size, self.eval_batch_size)

  def eval_batches(self, process_index=0, process_count=1):
    num = self.num_eval_windows()
    starts = self.eval_starts(num)
    return indexed_eval_batches(lambda i: self._windows(self.corpus[1], starts[i]), num,
                                self.eval_batch_size, process_index, process_count)

  def loss_and_metrics(self, logits_BxTxC, batch):
    weights_BxT = jnp.ones(batch['targets'].shape, jnp.float32)
    loss, metrics = token_metrics(logits_BxTxC, batch['targets'], weights_BxT)
    metrics['bpc'] = loss / math.log(2.0)
    return loss, metrics

  def reference_metrics(self):
    """Bits per character of the training text's byte frequencies (a context-free model)."""
    counts = np.bincount(self.corpus[0], minlength=VOCAB).astype(np.float64)
    probs = counts[counts > 0] / counts.sum()
    return {'unigram_bpc': float(-(probs * np.log2(probs)).sum())}
