"""LTM-T vs Transformer: training speed and peak memory as the sequence grows.

    python experiments/bench_ltmt.py                               # 1K, 4K, 16K (+ LTM-T at 64K)
    python experiments/bench_ltmt.py --lengths 1024,4096 --ltmt-only-lengths 16384 --steps 3
    python experiments/bench_ltmt.py --profile --lengths 4096      # where LTM-T's step spends time

Each point is `experiments/efficiency.py`'s measurement: the trainer's jit-compiled
training step (`ltmjax.train.make_train_step`: forward, backward, Adam update) on a
synthetic token-classification task (vocabulary 256, 10 classes), timed over `--steps`
steps after one warm-up step with `block_until_ready`; peak memory is the compiled step's
`memory_analysis()` (arguments + outputs + temporaries - donated). Both models use
the same small width; the Transformer uses attention='auto' (blockwise above 2048²
logits, so its memory stays linear but its time is quadratic), LTM-T its registry
defaults (segment 64, 16 memory slots, remat per segment) unless --set changes them.
Prints one row per length: steps/s of each, the LTM-T/Transformer speed ratio, LTM-T's
time per token relative to the shortest length, and peak memory.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, Optional

if '--profile' in sys.argv:  # XLA:CPU writes per-op trace events only with this flag, read at start
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                             + ' --xla_cpu_enable_xprof_traceme=true').strip()
import jax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_lstm  # noqa: E402  (its per-op profile of a jitted call)
import efficiency  # noqa: E402  (one measurement for every benchmark: the trainer's step)


def settings(args) -> Dict[str, str]:
  """The model keys both models get: the common small width, no dropout, then --set."""
  common = dict(dim=args.dim, heads=args.heads, layers=args.layers, mlp_dim=4 * args.dim,
                dropout=0.0)
  return dict({k: str(v) for k, v in common.items()}, **dict(s.split('=', 1) for s in args.set))


def measure(name: str, length: int, args) -> Optional[Dict[str, float]]:
  """Steps/s and peak MiB of one training step, or None when it does not fit."""
  record = efficiency.benchmark(name, length, batch=args.batch, steps=args.steps, warmup=1,
                                settings=settings(args))
  if record['status'] == 'oom':
    print(f'{name} at {length}: out of memory')
    return None
  if record['status'] != 'complete':
    raise RuntimeError(f'{name} at {length}: {record["error"]}')
  return {'steps_per_s': record['steps_per_second'],
          'peak_mb': record['peak_memory_bytes'] / 2 ** 20}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--lengths', default='1024,4096,16384', help='lengths run by both models')
  parser.add_argument('--ltmt-only-lengths', default='65536', help='lengths run by LTM-T only')
  parser.add_argument('--batch', type=int, default=2)
  parser.add_argument('--dim', type=int, default=64)
  parser.add_argument('--heads', type=int, default=4)
  parser.add_argument('--layers', type=int, default=1)
  parser.add_argument('--steps', type=int, default=5, help='timed steps per measurement')
  parser.add_argument('--set', action='append', default=[],
                      help='key=value for a model config key (e.g. segment=128), repeatable')
  parser.add_argument('--profile', action='store_true',
                      help="per-op profile of LTM-T's training step at each of --lengths instead")
  args = parser.parse_args(argv)
  if args.profile:
    for length in [int(t) for t in args.lengths.split(',') if t]:
      cfg = efficiency.model_config('ltmt', settings(args))
      step, state, data = efficiency.train_step(cfg, length, batch=args.batch)
      bench_lstm.print_groups(f'LTM-T training step, T={length}, batch {args.batch}',
                              *bench_lstm.profile_call(jax.jit(step), (state, data), args.steps))
    return
  both = [int(t) for t in args.lengths.split(',') if t]
  only = [int(t) for t in args.ltmt_only_lengths.split(',') if t]
  print(f'device: {jax.devices()[0].device_kind} x{jax.device_count()}; batch {args.batch}, '
        f'dim {args.dim}, heads {args.heads}, layers {args.layers}, {args.steps} timed steps')

  rows = []
  for length in sorted(set(both + only)):
    ltm = measure('ltmt', length, args)
    tfm = measure('transformer', length, args) if length in both else None
    rows.append((length, ltm, tfm))
    print(f'  measured T={length}: ltmt={ltm} transformer={tfm}', flush=True)

  base = next(((t, r) for t, r, _ in rows if r), None)
  header = ('| T | LTM-T steps/s | Transformer steps/s | LTM-T / Transformer | '
            'LTM-T time/token vs first | LTM-T peak MB | Transformer peak MB |')
  print('\n' + header + '\n|' + '---|' * 7)
  fmt = lambda v, spec: '—' if v is None else format(v, spec)
  for length, ltm, tfm in rows:
    ratio = ltm['steps_per_s'] / tfm['steps_per_s'] if ltm and tfm else None
    per_token = None
    if ltm and base:
      per_token = (1 / (ltm['steps_per_s'] * length)) / (1 / (base[1]['steps_per_s'] * base[0]))
    print(f'| {length} | {fmt(ltm and ltm["steps_per_s"], ".3f")} | '
          f'{fmt(tfm and tfm["steps_per_s"], ".3f")} | {fmt(ratio, ".2f")}x | '
          f'{fmt(per_token, ".2f")}x | {fmt(ltm and ltm["peak_mb"], ".1f")} | '
          f'{fmt(tfm and tfm["peak_mb"], ".1f")} |')


if __name__ == '__main__':
  main()
