"""The geometry of Pathfinder images (contours.py draws them): per-resolution settings, pre-rendered
paddle and marker stamps, and the moves of a growing snake on whole pixels.

Settings (LRA's `lra_benchmarks/data/pathfinder.py`; padding 1; single-paddle clutter off):

    res  paddle  thick  margin  seed dist  marker  continuity  distractor budget  contrast tgt/dis
    32   2       0.5    1       7          1.5     1.0         20 (5 x 4 paddles) 1.5 / 2.0
    64   5       1.0    1       12         2.5     1.8         22 (5 x 4)         0.8 / 0.8
    128  5       1.5    2 or 3  20         3.0     1.8         35 (8 x 4)         0.9 / 0.9

`bridge` = 2 * max(margin): how far apart (Chebyshev) the ink of different contours stays, and
the jump of the flood fill that decides "connected" (see contours.py).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Tuple

import numpy as np

SUPERSAMPLE = 4            # subpixels per pixel and axis for anti-aliasing

@dataclasses.dataclass(frozen=True)
class Preset:
  paddle_length: int
  thickness: float
  margins: Tuple[int, ...]         # one is drawn per image
  seed_distance: int
  marker_radius: float
  continuity: float
  distractor_budget: int
  target_contrast: float
  distractor_contrast: float
  padding: int = 1


PRESETS = {32: Preset(2, 0.5, (1,), 7, 1.5, 1.0, 20, 1.5, 2.0),
           64: Preset(5, 1.0, (1,), 12, 2.5, 1.8, 22, 0.8, 0.8),
           128: Preset(5, 1.5, (2, 3), 20, 3.0, 1.8, 35, 0.9, 0.9)}


def geometry(resolution: int) -> dict:
  """The settings of a resolution (see the module docstring) and the flood fill's `bridge`."""
  if resolution not in PRESETS:
    raise ValueError(f'pathfinder resolution must be one of {sorted(PRESETS)}, got {resolution}')
  p = PRESETS[resolution]
  return dict(dataclasses.asdict(p), bridge=2 * max(p.margins))


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
  """Chebyshev dilation by r over the last two axes (separable max of shifts)."""
  out = mask.copy()
  for axis in (-2, -1):
    src, n = out.copy(), out.shape[axis]
    for d in range(1, r + 1):
      lo = [slice(None)] * out.ndim
      hi = [slice(None)] * out.ndim
      lo[axis], hi[axis] = slice(d, n), slice(0, n - d)
      out[tuple(lo)] |= src[tuple(hi)]
      out[tuple(hi)] |= src[tuple(lo)]
  return out


def _subpixels(half: int) -> np.ndarray:
  """Subpixel centre offsets from a window's centre pixel, [(2 half + 1) * SUPERSAMPLE]."""
  k = np.arange((2 * half + 1) * SUPERSAMPLE)
  return (k + 0.5) / SUPERSAMPLE - half - 0.5


def _coverage(inside: np.ndarray, half: int) -> np.ndarray:
  """[..., w*S, w*S] bool subpixels -> [..., w, w] coverage in [0, 1]."""
  w, s = 2 * half + 1, SUPERSAMPLE
  return inside.reshape(*inside.shape[:-2], w, s, w, s).mean(axis=(-3, -1)).astype(np.float32)


class Stamps:
  """Pre-rendered paddles (one per whole degree) and the marker disc, in windows of 2W+1 px.

  A paddle stamp k is anchored at its window's centre pixel and runs paddle_length px in
  direction k degrees (row = sin, col = cos). For each stamp: `cov` (coverage), `sup` (ink:
  cov > 0), `near` (ink dilated by bridge: where other contours may not ink) and `own[m]`
  (ink dilated by margin m: where the same snake's later paddles may not ink).
  """

  def __init__(self, resolution: int):
    g = geometry(resolution)
    self.g = g
    length, half_t, bridge = g['paddle_length'], g['thickness'] / 2, g['bridge']
    self.W = W = int(math.ceil(max(length + half_t, g['marker_radius']))) + 1 + bridge
    o = _subpixels(W)
    rows, cols = o[:, None], o[None, :]
    angle = np.radians(np.arange(360))[:, None, None]
    along = rows * np.sin(angle) + cols * np.cos(angle)
    across = -rows * np.cos(angle) + cols * np.sin(angle)
    inside = (along >= 0) & (along <= length) & (np.abs(across) <= half_t)
    self.cov = _coverage(inside, W)                                   # [360, w, w]
    self.sup = self.cov > 0
    self.near = _dilate(self.sup, bridge)
    self.own = {m: _dilate(self.sup, m) for m in g['margins']}
    disc = rows ** 2 + cols ** 2 <= g['marker_radius'] ** 2
    self.marker_cov = _coverage(disc, W)
    self.marker_sup = self.marker_cov > 0
    self.marker_near = _dilate(self.marker_sup, bridge)


@functools.lru_cache(maxsize=None)
def stamps(resolution: int) -> Stamps:
  return Stamps(resolution)


def _touches(st: Stamps, k: int, offset, prev_k: int) -> bool:
  """Does stamp k, anchored `offset` px from stamp prev_k's anchor, ink within bridge of it?"""
  (dr, dc), w = offset, 2 * st.W + 1
  if abs(dr) >= w or abs(dc) >= w:
    return False
  a = st.sup[k][max(0, -dr):w - max(0, dr), max(0, -dc):w - max(0, dc)]
  b = st.near[prev_k][max(0, dr):w - max(0, -dr), max(0, dc):w - max(0, -dc)]
  return bool((a & b).any())


class Moves:
  """The moves of a snake for one margin, on whole pixels as in the original.

  From a pivot, candidate head j sits at pivot + `head[j]` (the pixels of the circle of
  radius paddle_length + margin), has heading `heading[j]`, is drawn with stamp `stamp[j]`
  (back toward the pivot) and puts the next pivot at head + `pivot[j]` (margin further on).
  `weight[j', j]` is the chance weight of j after j': cos(min(continuity * turn, 90 deg))^2,
  and 0 where j's ink would not come within bridge of j''s (a gap the flood fill cannot
  jump). `seed_pivot[d]` and `seed_weight[d, j]` are the same for a seed paddle of d degrees.
  """

  def __init__(self, st: Stamps, margin: int):
    g = st.g
    radius = g['paddle_length'] + margin
    n = int(math.ceil(2 * math.pi * radius))          # about one pixel apart on the circle
    theta = 2 * math.pi * np.arange(n) / n
    head = np.rint(radius * np.stack([np.sin(theta), np.cos(theta)], 1)).astype(np.int64)
    self.head = np.unique(head, axis=0)
    self.heading = np.arctan2(self.head[:, 0], self.head[:, 1])
    self.stamp = np.rint(np.degrees(self.heading + np.pi)).astype(np.int64) % 360
    unit = np.stack([np.sin(self.heading), np.cos(self.heading)], 1)
    self.pivot = np.rint(margin * unit).astype(np.int64)
    seed = np.radians(np.arange(360))
    self.seed_pivot = np.rint(radius * np.stack([np.sin(seed), np.cos(seed)], 1)).astype(np.int64)

    def turn_weight(direction):
      turn = np.abs((self.heading - direction + np.pi) % (2 * np.pi) - np.pi)
      return np.cos(np.minimum(turn * g['continuity'], np.pi / 2)) ** 2

    def row(direction, prev_stamp, to_pivot):
      ok = [_touches(st, k, to_pivot + d, prev_stamp) for k, d in zip(self.stamp, self.head)]
      return turn_weight(direction) * np.asarray(ok)

    self.weight = np.stack([row(h, k, p) for h, k, p in zip(self.heading, self.stamp, self.pivot)])
    self.seed_weight = np.stack([row(a, d, self.seed_pivot[d]) for d, a in enumerate(seed)])


@functools.lru_cache(maxsize=None)
def moves(resolution: int, margin: int) -> Moves:
  return Moves(stamps(resolution), margin)
