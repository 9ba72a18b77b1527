"""Pathfinder's classes drawn at the same marker distances (rejection on the distance).

A positive marks a target's origin and its own tip; a negative, the origin and the other
target's tip. Nothing in the construction makes those two distances alike, and at 64 px they
are not: the first target starts in the central square and the second seed_distance away,
nearer the border, and the second runs ~7 px further from its origin, so positives lie
~1.5 px further apart on average (two-sample KS p = 0.003 on 2,000 images; Snakes2 has the
same construction and no rule against it). The second snake's seed direction, the growth order
and origins placed symmetrically about a central point were each tried and do not remove it
(symmetric origins make it worse: each snake's own tip ends further from its origin than the
other's).

So the generator thins by distance. With p_pos and p_neg the two classes' distance densities
of the unthinned construction, an image of class y is kept with probability
min(1, p_other(d) / p_y(d)); both classes are then distributed as min(p_pos, p_neg), exactly,
up to the bins below, whatever the construction's asymmetry. Only the distance enters, so
nothing else is selected for beyond what goes with it (tests/test_pathfinder.py holds the
other one-feature classifiers, ink and each marker's distance from the centre, to the same
bound). The densities are histograms over BINS quantile bins of both classes' pooled
distances, measured once per (resolution, contour_length) by

    python experiments/pathfinder_balance.py 32 64 128 --contour-length 14 --pairs 4000

(every pair of targets gives both of its positives and both of its negatives), and kept in
TABLES; rerun it when the construction changes. Each value costs, on average, 1 / (1 - TV)
target draws, TV being the total-variation distance between the classes (printed by the
calibration). A (resolution, contour_length) without a table is not thinned.
"""
from __future__ import annotations

import bisect
from typing import Dict, Sequence, Tuple

import numpy as np

BINS = 16

# (resolution, contour_length): (inner bin edges in px, keep probability of a positive per
# bin, of a negative per bin); printed by experiments/pathfinder_balance.py (~9 min, 2 cores).
TABLES: Dict[Tuple[int, int], Tuple[Tuple[float, ...], Tuple[float, ...], Tuple[float, ...]]] = {
    # 4000 pairs: mean distance pos 13.84 px, neg 13.65 px; TV 0.039 (1.04 draws per image)
    (32, 14): (
        (7.000, 8.246, 9.487, 10.630, 11.402, 12.207, 13.000, 13.601, 14.213, 15.000, 15.652,
         16.553, 17.692, 18.974, 21.095),
        (1.000, 1.000, 1.000, 1.000, 1.000, 0.890, 0.891, 1.000, 1.000, 0.915, 0.910, 0.912, 0.906,
         1.000, 0.992, 1.000),
        (0.845, 0.895, 0.904, 0.897, 0.955, 1.000, 1.000, 0.962, 0.970, 1.000, 1.000, 1.000, 1.000,
         0.987, 1.000, 0.984)),
    # 4000 pairs: mean distance pos 30.00 px, neg 28.22 px; TV 0.064 (1.07 draws per image)
    (64, 14): (
        (13.928, 17.493, 20.125, 22.136, 24.070, 25.710, 27.295, 29.069, 30.594, 32.202, 34.000,
         35.735, 38.013, 40.706, 44.598),
        (1.000, 1.000, 1.000, 1.000, 1.000, 0.978, 0.970, 1.000, 0.986, 1.000, 0.959, 0.942, 1.000,
         0.982, 0.884, 0.480),
        (0.752, 0.762, 0.846, 0.980, 0.893, 1.000, 1.000, 0.907, 1.000, 0.996, 1.000, 1.000, 0.934,
         1.000, 1.000, 1.000)),
    # 4000 pairs: mean distance pos 70.83 px, neg 70.15 px; TV 0.074 (1.08 draws per image)
    (128, 14): (
        (40.012, 47.539, 53.075, 57.385, 61.074, 64.444, 67.683, 70.838, 74.061, 77.201, 80.498,
         84.015, 88.000, 92.698, 99.765),
        (1.000, 1.000, 1.000, 0.872, 1.000, 0.889, 0.867, 0.974, 0.965, 0.957, 0.862, 0.762, 0.850,
         0.912, 0.988, 1.000),
        (0.691, 0.821, 0.850, 1.000, 0.959, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000, 1.000,
         1.000, 1.000, 0.652)),
}


def table_from_samples(pos: Sequence[float], neg: Sequence[float], bins: int = BINS):
  """(inner edges, keep probability of a positive per bin, of a negative per bin) from the
  two classes' unthinned distances; also the total-variation distance between the binned
  classes."""
  pos, neg = np.asarray(pos, float), np.asarray(neg, float)
  if min(len(pos), len(neg)) < 10 * bins:
    raise ValueError(f'calibration needs >= {10 * bins} distances per class, got '
                     f'{len(pos)} positives and {len(neg)} negatives')
  edges = np.unique(np.quantile(np.concatenate([pos, neg]), np.arange(1, bins) / bins))
  p_pos = np.bincount(np.searchsorted(edges, pos, side='right'), minlength=len(edges) + 1)
  p_neg = np.bincount(np.searchsorted(edges, neg, side='right'), minlength=len(edges) + 1)
  p_pos, p_neg = p_pos / len(pos), p_neg / len(neg)
  keep_pos = np.where(p_pos > 0, np.minimum(1.0, p_neg / np.maximum(p_pos, 1e-12)), 1.0)
  keep_neg = np.where(p_neg > 0, np.minimum(1.0, p_pos / np.maximum(p_neg, 1e-12)), 1.0)
  tv = 0.5 * float(np.abs(p_pos - p_neg).sum())
  return tuple(edges.tolist()), tuple(keep_pos.tolist()), tuple(keep_neg.tolist()), tv


def keep_probability(resolution: int, contour_length: int, label: int, distance: float) -> float:
  """How likely an image of class `label` whose markers lie `distance` px apart is kept."""
  table = TABLES.get((resolution, contour_length))
  if table is None:
    return 1.0
  edges, keep_pos, keep_neg = table
  return (keep_pos if label else keep_neg)[bisect.bisect_right(edges, distance)]
