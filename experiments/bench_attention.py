"""Dense vs blockwise attention: compiled peak temp memory and time per call.

    python experiments/bench_attention.py [--lengths 1024,2048,4096,8192,16384] [--forward-only]
        [--batch 1] [--heads 8] [--head-size 64] [--block-size 512] [--dtype float32]
        [--causal] [--max-dense-time-length 8192]

Memory comes from `jax.jit(f).lower(...).compile().memory_analysis()` (nothing is run for
it); time is the median of a few calls after a warm-up. By default f is forward + backward
(the gradient of sum(o * w) with respect to q, k and v). Dense cases above
--max-dense-time-length are compiled but not timed on CPU (they take minutes and GiBs).
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from ltmjax import attention as attn_lib


def make_fn(impl, causal, block_size, backward):
  def forward(q, k, v):
    return attn_lib.attention(q, k, v, causal=causal, implementation=impl,
                              block_size=block_size)
  if not backward:
    return forward

  def loss(q, k, v, w):
    return (forward(q, k, v).astype(jnp.float32) * w).sum()
  return jax.grad(loss, argnums=(0, 1, 2))


def measure(impl, length, args, time_it):
  shape = (args.batch, length, args.heads, args.head_size)
  dtype = jnp.dtype(args.dtype)
  fn = jax.jit(make_fn(impl, args.causal, args.block_size, not args.forward_only))
  specs = [jax.ShapeDtypeStruct(shape, dtype)] * 3
  if not args.forward_only:
    specs.append(jax.ShapeDtypeStruct(shape, jnp.float32))
  compiled = fn.lower(*specs).compile()
  mem = compiled.memory_analysis()
  temp = mem.temp_size_in_bytes if mem is not None else float('nan')
  seconds = float('nan')
  if time_it:
    keys = jax.random.split(jax.random.key(0), len(specs))
    arrays = [jax.random.normal(key, s.shape, s.dtype) for key, s in zip(keys, specs)]
    jax.block_until_ready(compiled(*arrays))  # warm-up
    times = []
    for _ in range(args.repeats):
      start = time.perf_counter()
      jax.block_until_ready(compiled(*arrays))
      times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
  return temp, seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--lengths', default='1024,2048,4096,8192,16384')
  parser.add_argument('--forward-only', action='store_true',
                      help='time the forward pass only (default: forward + backward)')
  parser.add_argument('--backward', action='store_true',
                      help='forward + backward (the default; kept for explicit scripts)')
  parser.add_argument('--batch', type=int, default=1)
  parser.add_argument('--heads', type=int, default=8)
  parser.add_argument('--head-size', type=int, default=64)
  parser.add_argument('--block-size', type=int, default=512)
  parser.add_argument('--dtype', default='float32', choices=['float32', 'bfloat16'])
  parser.add_argument('--causal', action='store_true')
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--max-dense-time-length', type=int, default=None,
                      help='longest dense case to time (default: 8192 on CPU, all on GPU/TPU)')
  args = parser.parse_args()
  if args.backward and args.forward_only:
    parser.error('--backward and --forward-only exclude each other')
  lengths = [int(x) for x in args.lengths.split(',')]
  on_cpu = jax.default_backend() == 'cpu'
  max_dense = args.max_dense_time_length or (8192 if on_cpu else max(lengths))

  mode = 'forward' if args.forward_only else 'forward+backward'
  print(f'# attention {mode}, batch {args.batch}, {args.heads} heads of {args.head_size}, '
        f'{args.dtype}, causal={args.causal}, block {args.block_size}, '
        f'{jax.devices()[0].device_kind} ({jax.default_backend()})')
  print('| length | dense temp MiB | blockwise temp MiB | mem dense/blockwise '
        '| dense ms | blockwise ms | time dense/blockwise |')
  print('|---:|---:|---:|---:|---:|---:|---:|')
  notes = []
  for length in lengths:
    time_dense = length <= max_dense
    if not time_dense:
      notes.append(f'dense at {length} compiled for memory only (not timed: '
                   f'--max-dense-time-length {max_dense})')
    mem_d, t_d = measure('dense', length, args, time_dense)
    mem_b, t_b = measure('blockwise', length, args, True)
    print(f'| {length} | {mem_d / 2**20:.1f} | {mem_b / 2**20:.1f} | {mem_d / mem_b:.1f}x '
          f'| {t_d * 1e3:.1f} | {t_b * 1e3:.1f} | {t_d / t_b:.2f} |', flush=True)
  for note in notes:
    print(f'note: {note}')


if __name__ == '__main__':
  main()
