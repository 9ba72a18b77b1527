"""Passkey and multi-key needle retrieval in long filler text, generated here.

`task.kind`:
  single    the passkey test of Mohtashami & Jaggi 2023 ("Landmark Attention"): one needle
            " The pass key is 71432. Remember it. 71432 is the pass key." in filler, then
            "\\nQ: What is the pass key?".
  multikey  RULER's multi-key needle-in-a-haystack (Hsieh et al. 2024): `task.needles`
            needles " The special magic number for jade is 71432." with distinct keys (words
            of KEYS), then "\\nQ: What is the special magic number for jade?" about one of them.

The answer is the key's `task.digits` digits (uniform, leading zeros allowed), predicted
as one output of digits x 10 logits read as `digits` ten-way classes: the loss is their
mean cross-entropy, `accuracy` counts an example only when every digit is right (chance
10^-digits) and `digit_accuracy` counts digits (chance 0.1).

`task.depth`: where the (asked) needle sits in the filler, a fraction in [0, 1] ('0' at
the start, '1' just before the question; at the nearest sentence start) or 'uniform' (a
fraction drawn per example). Other needles are placed uniformly. `task.length` is the whole
example in bytes = tokens (bytes + 1; vocabulary 257), as in `ltmjax.tasks.haystack`.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

from ltmjax.tasks import haystack
from ltmjax.tasks.base import TaskSpec

KINDS = ('single', 'multikey')
KEYS = ('amber', 'cobalt', 'coral', 'crimson', 'indigo', 'ivory', 'jade', 'lilac', 'maroon',
        'olive', 'pearl', 'ruby', 'saffron', 'scarlet', 'teal', 'violet')
WORLD_WORDS = KEYS + ('pass key', 'passkey', 'magic number')


def needle_bytes(kind: str, value: str, key: str = '') -> bytes:
  if kind == 'single':
    return f' The pass key is {value}. Remember it. {value} is the pass key.'.encode()
  return f' The special magic number for {key} is {value}.'.encode()


def question_bytes(kind: str, key: str = '') -> bytes:
  if kind == 'single':
    return b'\nQ: What is the pass key?'
  return f'\nQ: What is the special magic number for {key}?'.encode()


def parse_depth(depth: str):
  """'uniform' -> None; a number in [0, 1] -> that float; else a ValueError."""
  if str(depth) == 'uniform':
    return None
  try:
    value = float(depth)
  except ValueError:
    value = -1.0
  if not 0.0 <= value <= 1.0:
    raise ValueError(f"task.depth must be 'uniform' or a number in [0, 1], got {depth!r}")
  return value


class PasskeyTask(haystack.HaystackTask):
  """A key of digits hidden at `depth` in `length` bytes of filler (see module doc)."""
  name = 'passkey'
  world_words = WORLD_WORDS

  @staticmethod
  def default_config():
    return dict(kind='single', digits=5, needles=4, depth='uniform',
                **haystack.HaystackTask.filler_config())

  def __init__(self, cfg, **kw):
    if cfg.kind not in KINDS:
      raise ValueError(f'unknown task.kind {cfg.kind!r}; known: {", ".join(KINDS)}')
    if not 1 <= cfg.digits <= 16:
      raise ValueError(f'task.digits must be in 1..16, got {cfg.digits}')
    if cfg.kind == 'multikey' and not 1 <= cfg.needles <= len(KEYS):
      raise ValueError(f'task.needles must be in 1..{len(KEYS)} (one key word each), '
                       f'got {cfg.needles}')
    self.kind, self.digits = cfg.kind, cfg.digits
    self.needles = cfg.needles if cfg.kind == 'multikey' else 1
    self.depth = parse_depth(cfg.depth)
    super().__init__(cfg, **kw)
    self.spec = TaskSpec('tokens', haystack.VOCAB, 'sequence', 10 * self.digits, self.length)

  def label(self):
    name = 'Passkey' if self.kind == 'single' else f'Multi-key NIAH ({self.needles} needles)'
    where = 'uniform depth' if self.depth is None else f'depth {self.depth:g}'
    return f'{name} ({where}, T={self.length})'

  def max_story_bytes(self):
    value, key = '9' * self.digits, max(KEYS, key=len)
    return (self.needles * len(needle_bytes(self.kind, value, key))
            + len(question_bytes(self.kind, key)))

  def draw(self, rng, length):
    values_NxD = rng.integers(0, 10, size=(self.needles, self.digits))
    keys = [KEYS[i] for i in rng.permutation(len(KEYS))[:self.needles]]
    asked = int(rng.integers(self.needles))
    depth_N = rng.random(self.needles)
    depth_N[asked] = rng.random() if self.depth is None else self.depth
    order = np.argsort(depth_N, kind='stable')
    pieces = [needle_bytes(self.kind, ''.join(map(str, values_NxD[i])), keys[i]) for i in order]
    hay = haystack.build(self.filler, rng, length, pieces, depth_N[order],
                         question_bytes(self.kind, keys[asked]))
    return hay, values_NxD[asked].astype(np.int32)

  def loss_and_metrics(self, logits_BxC, batch):
    logits_BxDx10 = logits_BxC.reshape(logits_BxC.shape[0], self.digits, 10).astype(jnp.float32)
    labels_BxD = batch['targets']
    ce = optax.softmax_cross_entropy_with_integer_labels(logits_BxDx10, labels_BxD).mean()
    hit_BxD = jnp.argmax(logits_BxDx10, -1) == labels_BxD
    return ce, {'loss': ce, 'accuracy': hit_BxD.all(-1).astype(jnp.float32).mean(),
                'digit_accuracy': hit_BxD.astype(jnp.float32).mean()}

  def reference_metrics(self):
    return {'chance_accuracy': 0.1 ** self.digits, 'chance_digit_accuracy': 0.1}
