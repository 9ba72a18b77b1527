"""LSTM training throughput: ltmjax vs flax's OptimizedLSTMCell vs torch.nn.LSTM (CPU).

Measures forward + backward tokens/second (loss = sum of the outputs, gradients with
respect to the parameters and the inputs), jit-compiled, timed after a warm-up with
`block_until_ready`, median of several runs. torch is optional (not a dependency of
ltmjax): it is used when importable, with as many threads as the machine has cores.

  python experiments/bench_lstm.py                      # batch 32, length 256, input 128
  python experiments/bench_lstm.py --hidden 256 --unroll 1,2,4,8

Other processes on the machine skew every number: run it twice and compare.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

# Set before jax is imported: XLA reads its flags once.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')


def _median_seconds(fn, repeats: int) -> float:
  fn()  # warm-up (compilation, allocator, thread pools)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def bench_ours(batch, length, input_dim, hidden, repeats, unroll):
  import jax
  import jax.numpy as jnp
  from ltmjax import cells, recurrence

  params = cells.LSTM.init(jax.random.key(0), input_dim, hidden)
  xs = jax.random.normal(jax.random.key(1), (batch, length, input_dim))

  def loss(params, xs):
    _, ys = recurrence.run(cells.LSTM, params, xs, unroll=unroll)
    return ys.sum()
  grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
  return _median_seconds(lambda: jax.block_until_ready(grad(params, xs)), repeats)


def bench_flax(batch, length, input_dim, hidden, repeats):
  import flax.linen as nn
  import jax

  model = nn.RNN(nn.OptimizedLSTMCell(hidden))
  xs = jax.random.normal(jax.random.key(1), (batch, length, input_dim))
  params = model.init(jax.random.key(0), xs)

  def loss(params, xs):
    return model.apply(params, xs).sum()
  grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
  return _median_seconds(lambda: jax.block_until_ready(grad(params, xs)), repeats)


def bench_torch(batch, length, input_dim, hidden, repeats):
  try:
    import torch
  except ImportError:
    return None
  torch.set_num_threads(os.cpu_count())
  lstm = torch.nn.LSTM(input_dim, hidden, batch_first=True)
  xs = torch.randn(batch, length, input_dim, requires_grad=True)

  def step():
    lstm.zero_grad(set_to_none=True)
    xs.grad = None
    ys, _ = lstm(xs)
    ys.sum().backward()
  return _median_seconds(step, repeats)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--length', type=int, default=256)
  parser.add_argument('--input', type=int, default=128)
  parser.add_argument('--hidden', default='256,1024', help='comma-separated hidden sizes')
  parser.add_argument('--unroll', default='1', help='comma-separated scan unroll factors (ours)')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--skip', default='', help='comma-separated: flax,torch')
  args = parser.parse_args(argv)

  import jax
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores, '
        f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}')
  tokens = args.batch * args.length
  skip = set(filter(None, args.skip.split(',')))
  for hidden in map(int, args.hidden.split(',')):
    dims = (args.batch, args.length, args.input, hidden)
    rates = {}
    for unroll in map(int, args.unroll.split(',')):
      rates[f'ours(unroll={unroll})'] = tokens / bench_ours(*dims, args.repeats, unroll)
    if 'flax' not in skip:
      rates['flax'] = tokens / bench_flax(*dims, args.repeats)
    if 'torch' not in skip:
      t = bench_torch(*dims, args.repeats)
      if t is not None:
        rates['torch'] = tokens / t
    print(f'B={args.batch} T={args.length} D={args.input} H={hidden}: training tokens/s')
    for name, rate in rates.items():
      print(f'  {name:18s} {rate:12,.0f}')
    best = max((r for n, r in rates.items() if n.startswith('ours')))
    for ref in ('flax', 'torch'):
      if ref in rates:
        print(f'  best ours / {ref}: {best / rates[ref]:.2f}x')


if __name__ == '__main__':
  main()
