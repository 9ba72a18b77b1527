"""Pathfinder and Path-X (Linsley et al. 2018; Long Range Arena), generated here.

An image shows two long dashed, smoothly curving contours, a few short distractor
contours, and two round markers. Label 1: both markers sit on the two ends of the same
contour; label 0: they sit on different contours (labels alternate with the example index,
so every split is balanced). The model sees the image flattened row-major into a sequence
of RES*RES pixel intensities (tokens 0..255): 1024 for Pathfinder (RES=32), 16384 for
Path-X (RES=128).

Our generator (not Linsley's): every length scales with s = RES/32. A contour is
`contour_length` dashes of 2s pixels separated by gaps of s pixels; each dash turns by
at most `max_turn` degrees. Pixels are 0 or 255 (no anti-aliasing). Connectivity is
defined exactly: dashes of one contour are within Chebyshev distance BRIDGE = s+1 of each
other, and contours are grown by rejection so that different contours (with their markers)
stay at Chebyshev distance > BRIDGE. Hence "the markers are connected" is the same as "a
flood fill from one marker that may jump BRIDGE pixels reaches the other". Difficulty grows
with `contour_length`; LRA uses the hardest setting of Linsley et al. (14).

The data is a tfds dataset (`ltm_pathfinder`, array_record) written by `PathfinderBuilder`
in parallel over processes on first use; `PathfinderTask` reads it with grain
(`ltmjax.tasks.generated`).
"""
from __future__ import annotations

import dataclasses
import math
import random
from typing import List, Optional, Tuple

import numpy as np
import tensorflow_datasets as tfds

from ltmjax.tasks import generated
from ltmjax.tasks.base import TaskSpec

SPLITS = {'train': 0, 'validation': 1, 'test': 2}
CHUNK = 1000   # images per generation work item
INK = 255


def geometry(resolution: int) -> dict:
  """Lengths in pixels for a resolution (all scale with resolution / 32)."""
  s = max(1, resolution // 32)
  return dict(dash=2.0 * s, gap=1.5 * s, bridge=int(1.5 * s) + 1, marker=1.5 * s, margin=int(math.ceil(1.5 * s)))


def _raster(x0, y0, x1, y1) -> List[Tuple[int, int]]:
  """Pixels (row, col) of a 1-pixel line: samples at most 1/2 pixel apart per axis, so
  consecutive samples round to 8-connected pixels."""
  n = int(2 * max(abs(x1 - x0), abs(y1 - y0))) + 2
  dx, dy = (x1 - x0) / (n - 1), (y1 - y0) / (n - 1)
  return [(int(y0 + dy * i + 0.5), int(x0 + dx * i + 0.5)) for i in range(n)]


def _disc(y, x, radius) -> List[Tuple[int, int]]:
  r = int(math.ceil(radius))
  cy, cx = int(round(y)), int(round(x))
  return [(cy + dy, cx + dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
          if dy * dy + dx * dx <= radius * radius]


def _dilate(img: np.ndarray, r: int) -> np.ndarray:
  """Chebyshev dilation by r (separable max over shifts)."""
  out = img.copy()
  for axis in (0, 1):
    src = out.copy()
    for d in range(1, r + 1):
      if axis == 0:
        out[d:] |= src[:-d]
        out[:-d] |= src[d:]
      else:
        out[:, d:] |= src[:, :-d]
        out[:, :-d] |= src[:, d:]
  return out


class _Canvas:
  """Grows contours one by one, each kept more than `bridge` pixels from the others."""

  def __init__(self, rnd: random.Random, resolution: int, max_turn_deg: float):
    self.rnd, self.res, self.g = rnd, resolution, geometry(resolution)
    self.max_turn = math.radians(max_turn_deg)
    self.forbidden = np.zeros((resolution, resolution), bool)
    self.image = np.zeros((resolution, resolution), np.uint8)

  def _free(self, pixels) -> bool:
    lo, hi = self.g['margin'], self.res - 1 - self.g['margin']
    return all(lo <= r <= hi and lo <= c <= hi and not self.forbidden[r, c] for r, c in pixels)

  def contour(self, num_dashes: int, marked_ends: Tuple[bool, bool],
              tries: int = 30) -> Optional[List[Tuple[float, float]]]:
    """Draws a contour (markers at the chosen ends); returns its end points or None."""
    g, rnd = self.g, self.rnd
    look = 2 * (g['dash'] + g['gap'])
    for _ in range(tries):
      y = rnd.uniform(g['margin'], self.res - 1 - g['margin'])
      x = rnd.uniform(g['margin'], self.res - 1 - g['margin'])
      angle = rnd.uniform(0, 2 * math.pi)
      pixels = _disc(y, x, g['marker']) if marked_ends[0] else [(int(round(y)), int(round(x)))]
      if not self._free(pixels):
        continue
      start = (y, x)
      for _ in range(num_dashes):
        for attempt in range(12):
          # Turn more sharply after each blocked attempt, so contours bend at walls and
          # around other contours instead of being redrawn.
          turn = self.max_turn * (1 + attempt / 3)
          a = angle + rnd.uniform(-turn, turn)
          y1, x1 = y + g['dash'] * math.sin(a), x + g['dash'] * math.cos(a)
          # Look two dashes ahead (one pixel, cheap): steer away from walls and contours
          # before they block the way, instead of redrawing the contour.
          probe = (int(y + look * math.sin(a) + 0.5), int(x + look * math.cos(a) + 0.5))
          if attempt < 8 and not self._free([probe]):
            continue
          dash = _raster(x, y, x1, y1)
          if self._free(dash):
            break
        else:
          break
        pixels += dash
        angle = a
        end = (y1, x1)
        y, x = y1 + g['gap'] * math.sin(a), x1 + g['gap'] * math.cos(a)
      else:
        if marked_ends[1]:
          tip = _disc(end[0], end[1], g['marker'])
          if not self._free(tip):
            continue
          pixels += tip
        self._commit(pixels)
        return [start, end]
    return None

  def _commit(self, pixels):
    mask = np.zeros_like(self.forbidden)
    rows, cols = zip(*pixels)
    mask[list(rows), list(cols)] = True
    self.image[mask] = INK
    self.forbidden |= _dilate(mask, self.g['bridge'])


def generate_image(rnd: random.Random, label: int, resolution: int = 32,
                   contour_length: int = 14, distractors: int = 4, distractor_length: int = 4,
                   max_turn: float = 30.0) -> Tuple[np.ndarray, np.ndarray]:
  """One Pathfinder image.

  Returns:
    (image [R, R] uint8 in {0, 255}, markers [2, 2] int32 (row, col) of the marker centres).
  """
  while True:
    canvas = _Canvas(rnd, resolution, max_turn)
    ends0 = canvas.contour(contour_length, (True, bool(label)))
    ends1 = canvas.contour(contour_length, (not label, False)) if ends0 else None
    if ends1 is None:
      continue
    for _ in range(distractors):   # a distractor that does not fit is left out
      canvas.contour(distractor_length, (False, False), tries=5)
    markers = [ends0[0], ends0[1] if label else ends1[0]]
    return canvas.image, np.rint(np.asarray(markers)).astype(np.int32)


def example_rng(seed: int, split: str, index: int) -> random.Random:
  return random.Random((seed * 3 + SPLITS[split]) * 10**9 + index)


def generate_chunk(seed: int, split: str, start: int, stop: int, resolution: int,
                   contour_length: int, distractors: int, distractor_length: int,
                   max_turn: float) -> list:
  """Images start..stop-1 of a split as (key, tfds example) pairs."""
  items = []
  for i in range(start, stop):
    image, markers = generate_image(example_rng(seed, split, i), i % 2, resolution,
                                    contour_length, distractors, distractor_length, max_turn)
    items.append((i, {'image': image[..., None], 'markers': markers, 'label': i % 2}))
  return items


@dataclasses.dataclass
class PathfinderConfig(generated.GeneratedConfig):
  resolution: int = 32       # 32: Pathfinder (T=1024); 128: Path-X (T=16384)
  train_examples: int = 160_000   # LRA's 200k images split 80/10/10
  val_examples: int = 20_000
  test_examples: int = 20_000
  contour_length: int = 14   # dashes per contour: LRA uses the hardest (14)
  distractors: int = 4
  distractor_length: int = 4
  max_turn: float = 30.0     # degrees a contour may turn per dash


class PathfinderBuilder(generated.GeneratedBuilder):
  """tfds builder `ltm_pathfinder`: generated locally from a seed, in parallel processes."""
  name = 'ltm_pathfinder'
  VERSION = tfds.core.Version('1.0.0')
  BUILDER_CONFIGS = [PathfinderConfig(name='lra32'),
                     PathfinderConfig(name='pathx128', resolution=128)]
  config_cls, generate_chunk, CHUNK = PathfinderConfig, staticmethod(generate_chunk), CHUNK
  SUPERVISED_KEYS = ('image', 'label')

  def features(self):
    r = self.builder_config.resolution
    return {'image': tfds.features.Tensor(shape=(r, r, 1), dtype=np.uint8),
            'markers': tfds.features.Tensor(shape=(2, 2), dtype=np.int32),
            'label': tfds.features.ClassLabel(num_classes=2)}


class PathfinderTask(generated.GeneratedTask):
  """LRA Pathfinder / Path-X: are the two markers connected? From the flattened pixels."""
  name, builder_cls = 'pathfinder', PathfinderBuilder

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    self.spec = TaskSpec('tokens', 256, 'sequence', 2, cfg.resolution ** 2)

  def label(self):
    return 'Path-X' if self.cfg.resolution >= 128 else 'Pathfinder'

  def benchmark(self):   # LRA averages Pathfinder at 32 px; Path-X is in no average
    return 'lra' if self.cfg.resolution == 32 else ''

  def preprocess(self, record):
    return {'inputs': record['image'].reshape(-1).astype(np.int32),
            'targets': np.int32(record['label'])}
