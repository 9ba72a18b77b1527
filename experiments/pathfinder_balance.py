"""Measures the marker-distance tables of ltmjax/tasks/marker_balance.py (see its docstring).

    python experiments/pathfinder_balance.py 64                      # LRA's contour length 14
    python experiments/pathfinder_balance.py 32 64 128 --pairs 3000 --processes 2

Draws `--pairs` pairs of target snakes per resolution as the generator does before thinning,
takes both positives and both negatives of each pair, and prints the table entry to paste into
TABLES, with the classes' mean distances and total-variation distance (the extra target draws
the thinning costs per image: 1 / (1 - TV)).
"""
from __future__ import annotations

import argparse
import multiprocessing
import textwrap
import time

from ltmjax.tasks.contours import unthinned_distances
from ltmjax.tasks.marker_balance import table_from_samples


def _part(args):
  resolution, contour_length, pairs, seed = args
  return unthinned_distances(resolution, contour_length, pairs, seed)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('resolutions', type=int, nargs='+')
  parser.add_argument('--contour-length', type=int, default=14)
  parser.add_argument('--pairs', type=int, default=3000)
  parser.add_argument('--processes', type=int, default=multiprocessing.cpu_count())
  args = parser.parse_args(argv)
  for resolution in args.resolutions:
    start, n = time.time(), args.processes
    parts = [(resolution, args.contour_length, args.pairs // n + (k < args.pairs % n), k)
             for k in range(n)]
    with multiprocessing.Pool(n) as pool:
      results = pool.map(_part, parts)
    pos = [d for p, _ in results for d in p]
    neg = [d for _, q in results for d in q]
    edges, keep_pos, keep_neg, tv = table_from_samples(pos, neg)
    print(f'    # {args.pairs} pairs: mean distance pos {sum(pos) / len(pos):.2f} px, neg '
          f'{sum(neg) / len(neg):.2f} px; TV {tv:.3f} ({1 / (1 - tv):.2f} draws per image)')
    indent = ' ' * 8
    rows = [indent + '(' + ('\n' + indent + ' ').join(
        textwrap.wrap(', '.join(f'{x:.3f}' for x in xs), 90)) + ')'
        for xs in (edges, keep_pos, keep_neg)]
    print(f'    ({resolution}, {args.contour_length}): (\n' + ',\n'.join(rows) + '),')
    print(f'    # ({time.time() - start:.0f} s)', flush=True)


if __name__ == '__main__':
  main()
