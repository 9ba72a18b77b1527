"""Haystacks: short texts (facts, needles) hidden in long filler text, then a question.

Shared by the bAbI-style QA task (`ltmjax.tasks.babi`) and passkey retrieval
(`ltmjax.tasks.passkey`), as BABILong (Kuratov et al. 2024) hides bAbI facts in PG19 books
and the passkey test (Mohtashami & Jaggi 2023) hides a number in repeated text.

Filler is a corpus of bytes (the built-in play `builtin_corpus.txt`, or the user's text
files, e.g. PG19 books) with every sentence that names a word of the task's world removed
(`sanitize`), so that no filler sentence reads as a fact. It is read cyclically from a
sentence start. Inserted pieces go at sentence starts of the filler (the one nearest to
each target depth), in order; the question goes last. An example is a `Haystack`: a few
numbers and the inserted pieces, rendered to bytes in O(length) by numpy slicing, whole
(`render`) or chunk by chunk (`chunks`, never more than one chunk in memory).

Tokens are the bytes shifted by one, so that 0 is padding (vocabulary 257, as LRA's byte
tasks in `ltmjax.tasks.text`).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from ltmjax.errors import ConfigError
from ltmjax.tasks import char_lm
from ltmjax.tasks.base import EVAL_STREAM, ProceduralTask

VOCAB = 257          # 256 byte values + padding id 0
PAD_ID = 0
BOUNDARY = b'.!?\n'  # a sentence ends after one of these bytes


def tokens(data_T: np.ndarray) -> np.ndarray:
  """int32 tokens (byte + 1; 0 is padding) of uint8 bytes, any shape."""
  return np.asarray(data_T, np.uint8).astype(np.int32) + 1


def load_text(filler_dir: str = '', filler_files: str = '*.txt') -> np.ndarray:
  """[N] uint8: the built-in corpus, or the files matching `filler_files` in `filler_dir`."""
  if not filler_dir:
    return char_lm.load_builtin()
  try:
    data = char_lm.load_files(filler_files, filler_dir)
  except FileNotFoundError:
    raise FileNotFoundError(f'no filler text: no file matches task.filler_files={filler_files!r} '
                            f'in task.filler_dir={filler_dir!r}; point task.filler_dir at a '
                            "folder of text files, or set it to '' for the built-in corpus"
                            ) from None
  control = np.isin(data, np.array([b for b in range(32) if b not in b'\t\n\r\f'], np.uint8))
  if control.mean() > 0.01:   # NUL and other control bytes: not text, the haystack would be noise
    raise ConfigError(f'task.filler_dir={filler_dir!r} (files {filler_files!r}) holds binary data '
                      f'({100 * control.mean():.0f} % control bytes), not text; point it at a '
                      "folder of text files, or set it to '' for the built-in corpus")
  return data


def banned_pattern(words: Sequence[str]) -> 're.Pattern[bytes]':
  """Whole-word, case-insensitive regex of `words` (a phrase matches across any spaces)."""
  alts = sorted({rb'\s+'.join(re.escape(part) for part in w.encode().split()) for w in words},
                key=len, reverse=True)
  return re.compile(rb'(?i)\b(?:' + b'|'.join(alts) + rb')\b')


def sanitize(data: np.ndarray, words: Sequence[str]) -> np.ndarray:
  """`data` [N] uint8 without the sentences that contain any of `words` (whole words,
  any case); a sentence ends after a byte of BOUNDARY. The result ends with a boundary,
  so that read cyclically its end and start do not join into one word or sentence."""
  data = np.asarray(data, np.uint8)
  if not len(data):
    return data
  ends = np.flatnonzero(np.isin(data, np.frombuffer(BOUNDARY, np.uint8)))
  if not len(ends) or ends[-1] != len(data) - 1:
    ends = np.append(ends, len(data) - 1)
  hits = [m.start() for m in banned_pattern(words).finditer(data.tobytes())]
  keep = np.ones(len(ends), bool)
  keep[np.searchsorted(ends, np.asarray(hits, np.int64))] = False
  lengths = np.diff(ends, prepend=-1)
  out = data[np.repeat(keep, lengths)]
  if len(out) and out[-1] not in np.frombuffer(BOUNDARY, np.uint8):
    out = np.append(out, np.uint8(ord('\n')))
  return out


class Filler:
  """A sanitized corpus read cyclically, with its sentence starts."""

  def __init__(self, text: np.ndarray, words: Sequence[str]):
    self.data = sanitize(text, words)
    is_end = np.isin(self.data, np.frombuffer(BOUNDARY, np.uint8))
    starts = np.flatnonzero(is_end[:-1]) + 1
    # Sentence starts, and their first one again one cycle later (the text ends at a boundary).
    self.starts = np.concatenate([[0], starts, [len(self.data)]]).astype(np.int64)

  def __len__(self):
    return len(self.data)

  def read(self, start: int, count: int) -> np.ndarray:
    """[count] uint8: the bytes at positions start .. start+count-1 of the cyclic text."""
    n, parts, pos = len(self.data), [], start % max(len(self.data), 1)
    while count > 0:
      take = min(count, n - pos)
      parts.append(self.data[pos:pos + take])
      count, pos = count - take, 0
    return np.concatenate(parts) if parts else np.zeros(0, np.uint8)

  def random_start(self, rng: np.random.Generator) -> int:
    """A uniformly drawn sentence start."""
    return int(self.starts[rng.integers(0, len(self.starts) - 1)]) if len(self.data) else 0

  def snap(self, offset: int, targets: np.ndarray, size: int) -> np.ndarray:
    """Window positions of the sentence starts nearest to `targets` in a window of `size`
    bytes that starts at the sentence start `offset`, never past the window's end.

    Monotone: sorted targets give sorted positions. A position equal to `size` (the end) is
    used only where the window ends at a sentence start.
    """
    targets = np.asarray(targets, np.int64)
    if not len(self.data) or not len(targets):
      return np.minimum(np.maximum(targets, 0), size)
    n = len(self.data)
    absolute = offset + targets
    cycle, rem = absolute - absolute % n, absolute % n
    j = np.searchsorted(self.starts, rem, side='right')   # starts[j-1] <= rem < starts[j]
    below, above = cycle + self.starts[j - 1], cycle + self.starts[np.minimum(j, len(self.starts) - 1)]
    pick = np.where((above - absolute < absolute - below) & (above - offset <= size), above, below)
    return pick - offset


@dataclasses.dataclass(frozen=True)
class Haystack:
  """One example's bytes: `size` filler bytes read from `offset` of the filler, with
  `pieces[i]` inserted before filler byte `at[i]` (sorted; the question is the last piece,
  at `size`). Its length is size + the pieces' bytes."""
  filler: Filler
  offset: int
  size: int
  at: Tuple[int, ...]
  pieces: Tuple[bytes, ...]

  @property
  def length(self) -> int:
    return self.size + sum(len(p) for p in self.pieces)

  def piece_starts(self) -> np.ndarray:
    """[P] output positions of the first byte of each piece."""
    lengths = np.array([len(p) for p in self.pieces], np.int64)
    return np.asarray(self.at, np.int64) + np.concatenate([[0], np.cumsum(lengths)[:-1]])

  def _segments(self):
    """(output start, filler start or -1, bytes or None, length) of each run of filler or piece."""
    segs, out, prev = [], 0, 0
    for at, piece in zip(self.at, self.pieces):
      if at > prev:
        segs.append((out, prev, None, at - prev))
        out += at - prev
      segs.append((out, -1, piece, len(piece)))
      out, prev = out + len(piece), at
    if self.size > prev:
      segs.append((out, prev, None, self.size - prev))
    return segs

  def render(self, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
    """[stop - start] uint8: bytes start .. stop-1 of the example (default: all of it)."""
    stop = self.length if stop is None else min(stop, self.length)
    out = np.empty(max(stop - start, 0), np.uint8)
    for seg_start, filler_start, piece, length in self._segments():
      lo, hi = max(start, seg_start), min(stop, seg_start + length)
      if lo >= hi:
        continue
      if piece is None:
        out[lo - start:hi - start] = self.filler.read(self.offset + filler_start + lo - seg_start,
                                                      hi - lo)
      else:
        out[lo - start:hi - start] = np.frombuffer(piece, np.uint8)[lo - seg_start:hi - seg_start]
    return out

  def chunks(self, chunk: int) -> Iterator[np.ndarray]:
    """The example as consecutive [chunk] uint8 arrays (the last may be shorter)."""
    if chunk < 1:
      raise ValueError(f'chunk must be >= 1, got {chunk}')
    return (self.render(s, s + chunk) for s in range(0, self.length, chunk))


def build(filler: Filler, rng: np.random.Generator, length: int, pieces: Sequence[bytes],
          depths: Sequence[float], question: bytes) -> Haystack:
  """A haystack of exactly `length` bytes: `pieces` at the sentence starts nearest to the
  fractions `depths` (non-decreasing, in [0, 1]) of the filler, then `question`.

  Draws one number from `rng` (the filler offset).
  """
  depths = np.asarray(depths, np.float64)
  if len(depths) != len(pieces) or np.any(np.diff(depths) < 0):
    raise ValueError('haystack.build needs one non-decreasing depth per piece')
  size = length - sum(len(p) for p in pieces) - len(question)
  if size < 0:
    raise ValueError(f'task.length={length} is shorter than the story and question '
                     f'({length - size} bytes); raise task.length or lower task.facts')
  if size and not len(filler):
    raise ValueError('the filler text is empty once sentences naming the world are removed; '
                     'use other filler text (task.filler_dir)')
  offset = filler.random_start(rng)
  at = filler.snap(offset, np.floor(depths * size).astype(np.int64), size)
  return Haystack(filler, offset, size, tuple(int(a) for a in at) + (size,),
                  tuple(pieces) + (question,))


class HaystackTask(ProceduralTask):
  """A procedural task whose example is a `Haystack` and a label, drawn by `draw(rng, length)`.

  Config keys shared by subclasses: `length` (total bytes = tokens of an example, question
  included), `filler_dir` ('' = the built-in corpus) and `filler_files` (a glob there).
  Example i of the eval set is drawn from the key (seed, EVAL_STREAM, i), training row r of
  step s from (seed, TRAIN_STREAM, s, r) (`ltmjax.tasks.base`). Each draw takes the story
  from the generator before the layout, so eval example i has the same story and answer
  at every `length`; only the filler around it changes.
  """
  world_words: Tuple[str, ...] = ()   # no filler sentence may contain one of these

  @staticmethod
  def filler_config():
    return dict(length=1024, filler_dir='', filler_files='*.txt')

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    self.length = cfg.length
    need = self.max_story_bytes()
    if self.length < need:
      raise ValueError(f'{self.name}: task.length={self.length} is too short for the story '
                       f'and question (up to {need} bytes); raise task.length to >= {need}')
    # The filler without sentences naming the world; read now, so a bad filler_dir stops the run
    # before any work.
    self.filler = Filler(load_text(cfg.filler_dir, cfg.filler_files), self.world_words)

  def max_story_bytes(self) -> int:
    """An upper bound on the bytes of an example's inserted pieces and question."""
    raise NotImplementedError

  def draw(self, rng: np.random.Generator, length: int) -> Tuple[Haystack, object]:
    """One example of `length` bytes: (haystack, label: int class or [D] int array)."""
    raise NotImplementedError

  def make_batch(self, rng, size):
    drawn = [self.draw(rng, self.length) for _ in range(size)]
    return {'inputs': tokens(np.stack([h.render() for h, _ in drawn])),
            'targets': np.asarray([label for _, label in drawn], np.int32)}

  def _eval_draw(self, index: int, length: Optional[int]):
    rng = np.random.default_rng([self.seed, EVAL_STREAM, int(index)])
    return self.draw(rng, self.length if length is None else int(length))

  def example(self, index: int, length: Optional[int] = None):
    """Eval example `index` at `length` bytes (default task.length): (bytes [T] uint8, label).
    The same bytes as row `index` of the eval set when `length` is task.length."""
    hay, label = self._eval_draw(index, length)
    return hay.render(), label

  def example_chunks(self, index: int, length: Optional[int] = None, chunk: int = 65536):
    """Eval example `index` as (iterator of [chunk] uint8 arrays, the last possibly shorter;
    label). Only the current chunk's bytes are ever materialised; concatenated they equal
    `example(index, length)[0]`."""
    hay, label = self._eval_draw(index, length)
    return hay.chunks(chunk), label
