"""Pathfinder images after Linsley et al.'s generator: snakes of paddles, distractors, markers.

Reference: `snakes2.py` and `snakes.py` in github.com/drewlinsley/pathfinder (Linsley, Kim,
Veerabadran, Windolf, Serre 2018; Kim*, Linsley* et al. 2020), with the per-resolution
settings that LRA quotes in `lra_benchmarks/data/pathfinder.py` (google-research/long-range-arena).
The code is ours; the construction is theirs:

 1. Two target contours ("snakes") of `contour_length` paddles. The first starts inside the
    central square at least 2 * seed_distance from every border; the second starts exactly
    seed_distance from it, in a random direction (whole degrees). Each seed paddle points in a
    random direction (whole degrees) and runs paddle_length px from its origin.
 2. The two snakes grow alternately, one paddle at a time. The pivot lies `margin` px beyond
    the last paddle's head; the next head is one of the pixels on the circle of radius
    paddle_length + margin around the pivot, drawn with weight cos(min(continuity * turn,
    90 deg))^2 (turn = change of direction; blocked pixels weigh 0), and the paddle runs from
    that head paddle_length px back toward the pivot. Consecutive paddles are therefore about
    2 * margin px apart. A paddle gets 3 draws; if none fits, both snakes are drawn again.
 3. contour_length // 3-paddle distractor snakes, distractor_budget // (contour_length // 3)
    of them, each seeded on a random free pixel in a random direction (5 tries each; one that
    does not fit is left out).
 4. One target snake is picked at random; a marker (disc of marker_radius) goes on its origin
    and another on a terminal tip: its own (label 1) or the other target's (label 0). In the
    original both snakes avoid one shared mask of all older paddles, so a tip keeps the same
    clearance from its own origin as from the other's; here (below) it is the tip markers'
    rule that is shared. The targets and markers of a class are then kept with a probability
    that depends on the markers' distance (marker_balance.py; else all is drawn again before
    the distractors), so that both classes' distances follow one distribution: the original
    has nothing that makes them agree, and at 64 px they do not. tests/test_pathfinder.py
    holds every one-feature classifier (distance, ink, each marker's distance from the
    centre) to chance.
 5. Rendering is grayscale and anti-aliased: each paddle (a flat-capped bar of paddle_thickness)
    and marker is the coverage of a 4x4 subpixel grid, times its contrast (markers 1); the image
    is the pixelwise maximum, scaled so that its maximum is 255 (the original's bytescale).

The per-resolution settings (LRA's), the paddle and marker stamps and the moves of a snake are in
paddles.py; this module grows the snakes and renders the image.

Where we differ, so that "connected" is exactly what a flood fill sees: the original keeps
contours apart only by their margin masks (about 2 * margin between centre lines, as much as
the gap inside a snake). Here the ink of different contours (all four target tips' marker
discs reserved, label or not) and of the border padding stays more than BRIDGE = 2 * max(margin)
px apart (Chebyshev), consecutive paddles of a snake are checked to come within BRIDGE, and a
snake keeps `margin` px from its own older paddles (the original's self-crossing test). A tip's
marker keeps BRIDGE from its own origin marker and all but its two newest paddles, as the other
target's tip marker must from all of them (else both snakes are drawn again): otherwise a snake
curling back could put its markers closer than any negative's, a marker-distance shortcut. So the
markers are connected iff a flood fill over inked pixels that may jump BRIDGE pixels reaches one
from the other. Also: box-filtered 4x4 supersampling instead of PIL + Lanczos at aa_scale 2;
heads on whole pixels as in the original, pivots unrounded, paddle directions in 1-degree steps;
the caller chooses the label (the builder alternates it), the original draws it.
"""
from __future__ import annotations

import math
import random
from typing import List, Optional, Tuple

import numpy as np

from ltmjax.tasks.marker_balance import keep_probability
from ltmjax.tasks.paddles import geometry, moves, stamps

PADDLE_TRIES = 3           # the original's max_paddle_retrial = 2, plus the first draw
DISTRACTOR_TRIES = 5       # max_distractor_contour_retrial = 4, plus the first
UNDO_BUDGET = 5


class _Canvas:
  """One image in progress, on a canvas padded by W so that stamp windows never clip."""

  def __init__(self, rnd: random.Random, resolution: int, margin: int):
    self.rnd, self.res, self.margin = rnd, resolution, margin
    self.st, self.mv = stamps(resolution), moves(resolution, margin)
    self.g, W = self.st.g, self.st.W
    self.size = size = resolution + 2 * W
    lo, hi = W + self.g['padding'], W + resolution - 1 - self.g['padding']
    self.wall = np.ones((size, size), bool)
    self.wall[lo:hi + 1, lo:hi + 1] = False
    self.value = np.zeros((size, size), np.float32)
    self.near_distractors = np.zeros((size, size), bool)

  def window(self, at) -> Tuple[slice, slice]:
    W = self.st.W
    return slice(at[0] - W, at[0] + W + 1), slice(at[1] - W, at[1] + W + 1)

  def clear(self, sup: np.ndarray, at, blocked: np.ndarray) -> bool:
    return not (sup & blocked[self.window(at)]).any()

  def random_pixel(self, free: np.ndarray) -> Optional[Tuple[int, int]]:
    idx = np.flatnonzero(free)
    if not len(idx):
      return None
    return divmod(int(idx[int(self.rnd.random() * len(idx))]), self.size)


class _Snake:
  """A contour being grown: its paddles (stamp, anchor, next pivot, next move weights)."""

  def __init__(self, canvas: _Canvas, contrast: float):
    self.c, self.contrast = canvas, contrast
    self.near = np.zeros_like(canvas.wall)   # its ink (and reserved markers) dilated by bridge
    self.own = np.zeros_like(canvas.wall)    # its older paddles' ink dilated by margin
    # Its origin marker and all but its two newest paddles dilated by bridge: the clearance
    # the other snake keeps from all of it, which its own tip marker keeps too.
    self.far = np.zeros_like(canvas.wall)
    self.paddles: List[tuple] = []
    self._saved: List[Tuple[np.ndarray, ...]] = []   # maps before each paddle

  @property
  def origin(self) -> Tuple[int, int]:
    return self.paddles[0][1]

  @property
  def tip(self) -> Tuple[int, int]:
    return self.paddles[-1][1]

  def seed(self, at, degrees: int, blocked: np.ndarray) -> bool:
    """The first paddle, from `at` in direction `degrees`, if its ink fits."""
    c = self.c
    if not c.clear(c.st.sup[degrees], at, blocked):
      return False
    self._add(degrees, at, np.asarray(at) + c.mv.seed_pivot[degrees], c.mv.seed_weight[degrees])
    return True

  def extend(self, blocked: np.ndarray) -> bool:
    """One more paddle (PADDLE_TRIES draws) avoiding `blocked` and its own older paddles."""
    c, mv = self.c, self.c.mv
    pivot, weight = self.paddles[-1][2:]
    blocked = blocked | self.own
    heads = pivot + mv.head
    weight = weight * ~blocked[heads[:, 0], heads[:, 1]]
    cdf = np.cumsum(weight)
    if cdf[-1] <= 1e-9:
      return False
    for _ in range(PADDLE_TRIES):
      j = min(int(np.searchsorted(cdf, c.rnd.random() * cdf[-1], side='right')), len(cdf) - 1)
      at, k = (int(heads[j, 0]), int(heads[j, 1])), int(mv.stamp[j])
      if c.clear(c.st.sup[k], at, blocked):
        self._add(k, at, heads[j] + mv.pivot[j], mv.weight[j])
        return True
    return False

  def _add(self, k: int, at, pivot, weight) -> None:
    c = self.c
    self._saved.append((self.near.copy(), self.own.copy(), self.far.copy()))
    if self.paddles:     # the previous paddle now joins the self-avoidance map
      pk, pat = self.paddles[-1][:2]
      self.own[c.window(pat)] |= c.st.own[c.margin][pk]
    if len(self.paddles) >= 2:   # and the one before it keeps bridge, as from another snake
      pk, pat = self.paddles[-2][:2]
      self.far[c.window(pat)] |= c.st.near[pk]
    self.near[c.window(at)] |= c.st.near[k]
    self.paddles.append((k, at, pivot, weight))

  def undo(self, n: int) -> None:
    """Takes back the last n paddles (never the seed)."""
    n = min(n, len(self.paddles) - 1)
    if n > 0:
      self.near, self.own, self.far = self._saved[-n]
      del self._saved[-n:], self.paddles[-n:]

  def reserve_marker(self, at, blocked: np.ndarray) -> bool:
    """Keeps other contours clear of a marker on `at` (if the marker itself fits); the
    origin's marker (reserved after the seed) also keeps this snake's own tip marker away."""
    if not self.c.clear(self.c.st.marker_sup, at, blocked):
      return False
    self.near[self.c.window(at)] |= self.c.st.marker_near
    if len(self.paddles) == 1:
      self.far[self.c.window(at)] |= self.c.st.marker_near
    return True

  def draw(self) -> None:
    c = self.c
    for k, at, _, _ in self.paddles:
      win = c.window(at)
      np.maximum(c.value[win], self.contrast * c.st.cov[k], out=c.value[win])


def _two_targets(canvas: _Canvas, contour_length: int) -> Optional[List[_Snake]]:
  """The two target snakes with all four tips' markers reserved, or None (draw again)."""
  c, g, rnd, W = canvas, canvas.g, canvas.rnd, canvas.st.W
  snakes = [_Snake(c, g['target_contrast']), _Snake(c, g['target_contrast'])]
  # The first origin: in the central square 2 * seed_distance from the borders, its seed
  # paddle inside it too (the original dilates that square's border by the paddle).
  lo, hi = W + 2 * g['seed_distance'], W + c.res - 1 - 2 * g['seed_distance']
  degrees = int(rnd.random() * 360)
  a = math.radians(degrees)
  dr, dc = g['paddle_length'] * math.sin(a), g['paddle_length'] * math.cos(a)
  rows = [r for r in range(lo, hi + 1) if lo <= r + dr <= hi]
  cols = [q for q in range(lo, hi + 1) if lo <= q + dc <= hi]
  if not rows or not cols:
    return None
  first = (rows[int(rnd.random() * len(rows))], cols[int(rnd.random() * len(cols))])
  if not (snakes[0].seed(first, degrees, c.wall) and snakes[0].reserve_marker(first, c.wall)):
    return None
  blocked = c.wall | snakes[0].near
  for _ in range(PADDLE_TRIES):
    b = math.radians(int(rnd.random() * 360))
    second = (int(round(first[0] + g['seed_distance'] * math.sin(b))),
              int(round(first[1] + g['seed_distance'] * math.cos(b))))
    if snakes[1].seed(second, int(rnd.random() * 360), blocked):
      break
  else:
    return None
  if not snakes[1].reserve_marker(second, blocked):
    return None
  # Alternate growth. At a dead end a snake takes back the newer half of its paddles (at most
  # UNDO_BUDGET * contour_length paddles in all) instead of redrawing both snakes, as the
  # original does: its rejection rate at 64 px makes that impractical (~1e4 draws per image).
  budget = [UNDO_BUDGET * contour_length] * 2
  for step in range(2, contour_length + 1):
    for i in (0, 1):
      while len(snakes[i].paddles) < step:
        if snakes[i].extend(c.wall | snakes[1 - i].near):
          continue
        n = max(1, (len(snakes[i].paddles) - 1) // 2)
        budget[i] -= n
        if budget[i] < 0 or len(snakes[i].paddles) == 1:
          return None
        snakes[i].undo(n)
  # Each tip's marker keeps the same clearance from its own snake (but the two paddles it
  # ends) as from the other: a positive's markers are never closer than a negative's could be.
  for i in (0, 1):
    if not snakes[i].reserve_marker(snakes[i].tip,
                                    c.wall | snakes[1 - i].near | snakes[i].far):
      return None
  return snakes


def _draw_targets(rnd: random.Random, resolution: int, contour_length: int):
  """A fresh canvas (its margin drawn) and its two target snakes, drawn until they fit."""
  g = geometry(resolution)
  while True:
    canvas = _Canvas(rnd, resolution, g['margins'][int(rnd.random() * len(g['margins']))])
    targets = _two_targets(canvas, contour_length)
    if targets is not None:
      return canvas, targets


def _distractor(canvas: _Canvas, num_paddles: int, targets: List[_Snake]) -> None:
  """One distractor snake kept clear of everything drawn so far, or none if it never fits."""
  c = canvas
  blocked = c.wall | targets[0].near | targets[1].near | c.near_distractors
  for _ in range(DISTRACTOR_TRIES):
    snake = _Snake(c, c.g['distractor_contrast'])
    at = c.random_pixel(~blocked)
    if at is None:
      return
    if not snake.seed(at, int(c.rnd.random() * 360), blocked):
      continue
    if all(snake.extend(blocked) for _ in range(num_paddles - 1)):
      snake.draw()
      c.near_distractors |= snake.near
      return


def generate_image(rnd: random.Random, label: int, resolution: int = 32,
                   contour_length: int = 14) -> Tuple[np.ndarray, np.ndarray]:
  """One Pathfinder image (see the module docstring).

  Returns:
    (image [R, R] uint8, grayscale; markers [2, 2] int32, the (row, col) of the marker on a
    target's origin and of the one on a terminal tip: that target's (label 1) or the other's).
  """
  g = geometry(resolution)
  if contour_length < 3:
    raise ValueError(f'pathfinder contour_length must be >= 3, got {contour_length}')
  while True:   # the targets and their markers, kept so that both classes' distances agree
    canvas, targets = _draw_targets(rnd, resolution, contour_length)
    s = int(rnd.random() * 2)
    markers = [targets[s].origin, targets[s if label else 1 - s].tip]
    keep = keep_probability(resolution, contour_length, label, math.dist(*markers))
    if rnd.random() < keep:
      break
  dlen = contour_length // 3
  for _ in range(g['distractor_budget'] // dlen):
    _distractor(canvas, dlen, targets)
  for t in targets:
    t.draw()
  st = canvas.st
  for at in markers:
    win = canvas.window(at)
    np.maximum(canvas.value[win], st.marker_cov, out=canvas.value[win])
  W = st.W
  value = canvas.value[W:W + resolution, W:W + resolution]
  image = np.rint(value * (255.0 / value.max())).astype(np.uint8)
  image[(value > 0) & (image == 0)] = 1          # every inked pixel shows
  return image, np.asarray(markers, np.int32) - W


SPLITS = {'train': 0, 'validation': 1, 'test': 2}


def example_rng(seed: int, split: str, index: int) -> random.Random:
  # random.Random hashes an int seed exactly; pack (seed, split, index) into one int.
  return random.Random((seed * 3 + SPLITS[split]) * 10**9 + index)


def generate_chunk(seed: int, split: str, start: int, stop: int, resolution: int = 32,
                   contour_length: int = 14) -> list:
  """Images start..stop-1 of a split as (key, tfds example) pairs; label = index % 2."""
  items = []
  for i in range(start, stop):
    image, markers = generate_image(example_rng(seed, split, i), i % 2, resolution,
                                    contour_length)
    items.append((i, {'image': image[..., None], 'markers': markers, 'label': i % 2}))
  return items


def unthinned_distances(resolution: int, contour_length: int, pairs: int, seed: int = 0):
  """Marker distances of `pairs` pairs of targets as drawn, before marker_balance thins them:
  (positives, negatives), each target's origin with its own tip and with the other's."""
  pos, neg = [], []
  for i in range(pairs):
    rnd = random.Random((seed + 1) * 10**12 + i)   # a stream no split uses
    _, targets = _draw_targets(rnd, resolution, contour_length)
    for s in (0, 1):
      pos.append(math.dist(targets[s].origin, targets[s].tip))
      neg.append(math.dist(targets[s].origin, targets[1 - s].tip))
  return pos, neg

