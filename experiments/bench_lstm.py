"""LSTM/GRU speed: ltmjax vs flax vs torch, and the fraction of the matmul-bound limit (CPU).

For each hidden size and cell it times, in one process and interleaved (one call of each
contender per round, median over rounds):
  ours       `recurrence.run` (the fused sequence path of the cell)
  generic    `recurrence.run` on the same cell with its fused path removed (the plain scan
             of `step_projected` differentiated by JAX: the implementation before the fused one)
  flax       `nn.RNN(nn.OptimizedLSTMCell)` / `nn.RNN(nn.GRUCell)`
  torch      `torch.nn.LSTM` / `torch.nn.GRU` (optional; used when importable)
  limit      the step's matmuls alone: the recurrent matmul [B,H]x[H,GH] in a scan, the
             backward one [B,GH]x[GH,H] in a scan, and the large GEMMs done once (input
             projection, its two gradients, and the W_h gradient as ONE [H,TB]x[TB,GH] GEMM)
Training = forward + backward of loss = sum(outputs) w.r.t. the parameters and the inputs;
forward = inference only. Peak memory is XLA's compiled buffer size of the training step
(arguments + outputs + temporaries), ours against generic.

  python experiments/bench_lstm.py                      # batch 32, length 256, input 128
  python experiments/bench_lstm.py --hidden 256 --cells lstm --modes train --rounds 9
  python experiments/bench_lstm.py --profile --hidden 256 --cells lstm --modes train

Other processes on the machine skew every number: the load average is printed; compare
the ratios (measured side by side), not the absolute rates across runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

# Set before jax is imported: XLA reads its flags once.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# torch's OpenMP threads spin while they wait; with one other busy process on the 2 cores,
# torch.nn.LSTM training fell from ~25,000 to ~800 tokens/s (H=256). Passive waiting keeps
# it at 25,000 (load average 4); read when torch is first imported.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')


def _gates(cell_name):
  return 4 if cell_name == 'lstm' else 3


# ----------------------------------------------------------------------------- contenders
# Each builder returns (run, peak_bytes): run() does one call and waits for its result.

def _jax_call(fn, *args):
  import jax
  compiled = jax.jit(fn).lower(*args).compile()
  mem = compiled.memory_analysis()
  peak = None if mem is None else (mem.argument_size_in_bytes + mem.output_size_in_bytes
                                   + mem.temp_size_in_bytes - mem.alias_size_in_bytes)
  return (lambda: jax.block_until_ready(compiled(*args))), peak


def _loss_fn(apply, train):
  import jax

  def loss(params, xs):
    return apply(params, xs).sum()
  return jax.grad(loss, argnums=(0, 1)) if train else apply


def build_ltmjax(cell_name, dims, train, fused=True):
  import jax
  from ltmjax import cells, recurrence
  batch, length, input_dim, hidden = dims
  cell = cells.get(cell_name)
  if not fused:
    cell = dataclasses.replace(cell, fused=None)
  params = cell.init(jax.random.key(0), input_dim, hidden)
  xs = jax.random.normal(jax.random.key(1), (batch, length, input_dim))
  return _jax_call(_loss_fn(lambda p, x: recurrence.run(cell, p, x)[1], train), params, xs)


def build_flax(cell_name, dims, train):
  import flax.linen as nn
  import jax
  batch, length, input_dim, hidden = dims
  cell = nn.OptimizedLSTMCell(hidden) if cell_name == 'lstm' else nn.GRUCell(hidden)
  model = nn.RNN(cell)
  xs = jax.random.normal(jax.random.key(1), (batch, length, input_dim))
  params = model.init(jax.random.key(0), xs)
  return _jax_call(_loss_fn(model.apply, train), params, xs)


def build_torch(cell_name, dims, train):
  try:
    import torch
  except ImportError:
    return None
  batch, length, input_dim, hidden = dims
  torch.set_num_threads(os.cpu_count())
  module = (torch.nn.LSTM if cell_name == 'lstm' else torch.nn.GRU)(
      input_dim, hidden, batch_first=True)
  xs = torch.randn(batch, length, input_dim, requires_grad=train)

  def run():
    if not train:
      with torch.no_grad():
        return module(xs)
    module.zero_grad(set_to_none=True)
    xs.grad = None
    ys, _ = module(xs)
    ys.sum().backward()
  return run, None


def build_limit(cell_name, dims, train):
  """The matmuls of one training (or forward) call and nothing else."""
  import jax
  import jax.numpy as jnp
  batch, length, input_dim, hidden = dims
  gh = _gates(cell_name) * hidden
  k = jax.random.split(jax.random.key(2), 4)
  # Orthogonal blocks keep the carried values' scale constant (no overflow, no denormals).
  w_h = jnp.concatenate([jax.nn.initializers.orthogonal()(kk, (hidden, hidden))
                         for kk in jax.random.split(k[0], gh // hidden)], -1)
  w_x = jax.random.normal(k[1], (input_dim, gh)) / input_dim ** 0.5
  xs_TBxD = jax.random.normal(k[2], (length * batch, input_dim))
  g_TxBxG = jax.random.normal(k[3], (length, batch, gh))
  h0 = jnp.ones((batch, hidden)) / hidden ** 0.5

  def forward(w_h, w_x, xs, g):
    gx = (xs @ w_x).reshape(length, batch, gh)   # input projection: one GEMM

    def body(h, gx_t):                           # the recurrent matmul, T times
      a = gx_t + h @ w_h
      return a[:, :hidden], a[:, :hidden]
    return jax.lax.scan(body, h0, gx)

  def backward(w_h, w_x, xs, g):
    w_hT = w_h.T  # laid out once, as the fused path does: the loop's matmul reads it row-major

    def body(dh, g_t):                           # dh = dGates @ W_h^T, T times
      d = (g_t.at[:, :hidden].add(dh)) @ w_hT
      return d, d
    _, dh = jax.lax.scan(body, h0, g, reverse=True)
    g_TBxG = g.reshape(length * batch, gh)
    h_TBxH = dh.reshape(length * batch, hidden)
    # W_h gradient (one GEMM), W_x gradient and input gradient (one GEMM each).
    return h_TBxH.T @ g_TBxG, xs.T @ g_TBxG, g_TBxG @ w_x.T

  def step(*args):
    out = forward(*args)
    return (out, backward(*args)) if train else out
  return _jax_call(step, w_h, w_x, xs_TBxD, g_TxBxG)


def profile(cell_name, dims, train, calls=5):
  """`profile_call` of our LSTM/GRU call (loss, with its gradient when `train`)."""
  import jax
  from ltmjax import cells, recurrence
  batch, length, input_dim, hidden = dims
  cell = cells.get(cell_name)
  params = cell.init(jax.random.key(0), input_dim, hidden)
  xs = jax.random.normal(jax.random.key(1), (batch, length, input_dim))
  fn = jax.jit(_loss_fn(lambda p, x: recurrence.run(cell, p, x)[1], train))
  return profile_call(fn, (params, xs), calls)


def profile_call(fn, args, calls=5):
  """Per-op time of the jitted `fn(*args)` from XLA:CPU's trace events (jax.profiler; needs
  --xla_cpu_enable_xprof_traceme=true in XLA_FLAGS before jax starts), grouped by where each
  op runs (the forward loop, the backward loop, outside both) and whether it is a matmul.
  Returns:
    ({(where, kind): ms per call}, [(ms per call, calls per call, where, op, shape)] slowest
    first, wall ms per call).
  """
  import collections
  import glob
  import re
  import tempfile
  import jax
  hlo = fn.lower(*args).compile().as_text()
  owner, calls_of, has_dot, comp = {}, {}, set(), None
  for line in hlo.splitlines():
    head = re.match(r'^(?:ENTRY )?%(\S+) ', line)
    if head:
      comp = head.group(1)
      continue
    inst = re.match(r'\s+(?:ROOT )?%(\S+) = (\S+?)(?:\{[^}]*\})? ([a-z-]+)\(', line)
    if inst and comp:
      name, shape, op = inst.groups()
      owner[name] = (comp, op, shape)
      called = re.search(r'calls=%([^,\s]+)', line)
      calls_of[name] = called.group(1) if called else None
      if op == 'dot':
        has_dot.add(comp)
    if ' while(' in line:  # (a tuple shape: the pattern above skips it)
      body = re.search(r'body=%([^,\s]+)', line).group(1)
      owner[body] = ('backward loop' if 'transpose(' in line else 'forward loop',)
  where = lambda comp: owner.get(comp, ('outside loops',))[0] if len(owner.get(comp, ())) == 1 \
      else 'outside loops'
  jax.block_until_ready(fn(*args))
  with tempfile.TemporaryDirectory() as trace_dir:
    start = time.perf_counter()
    with jax.profiler.trace(trace_dir):
      for _ in range(calls):
        jax.block_until_ready(fn(*args))
    wall_ms = (time.perf_counter() - start) / calls * 1e3
    data = jax.profiler.ProfileData.from_file(
        glob.glob(f'{trace_dir}/**/*.xplane.pb', recursive=True)[0])
    per_op, count = collections.defaultdict(float), collections.Counter()
    for plane in data.planes:
      for line in plane.lines:
        for event in line.events:
          if event.name in owner and len(owner[event.name]) == 3:
            per_op[event.name] += event.duration_ns / calls / 1e6
            count[event.name] += 1
  groups = collections.defaultdict(float)
  top = []
  for name, ms in per_op.items():
    comp, op, shape = owner[name]
    kind = 'matmul' if op == 'dot' or calls_of.get(name) in has_dot else 'other'
    groups[(where(comp), kind)] += ms
    top.append((ms, count[name] // calls, where(comp), f'{name} ({op})', shape))
  return dict(groups), sorted(top, reverse=True), wall_ms


def print_profile(cell_name, dims, train, top=12):
  print_groups(f'{cell_name} H={dims[3]} {"train" if train else "forward"}',
               *profile(cell_name, dims, train), top=top)


def print_groups(title, groups, ops, wall_ms, top=12):
  """The tables of `profile_call`'s result: time by (where, kind), then the slowest ops."""
  total = sum(groups.values())
  print(f'\nper-op profile, {title}: ops sum {total:.1f} ms per call, {wall_ms:.1f} ms wall per '
        f'traced call, load average {os.getloadavg()[0]:.2f}')
  print('| where | kind | ms per call | share |\n|---|---|---:|---:|')
  for (where, kind), ms in sorted(groups.items(), key=lambda kv: -kv[1]):
    print(f'| {where} | {kind} | {ms:.1f} | {ms / total:.0%} |')
  print('| ms per call | runs per call | where | op | shape |\n|---:|---:|---|---|---|')
  for ms, n, where, op, shape in ops[:top]:
    print(f'| {ms:.1f} | {n} | {where} | {op} | {shape} |')


def measure(builders, rounds):
  """Median wall-clock and process-CPU seconds per call of each builder's run, interleaved
  over `rounds` rounds. CPU time is robust to other processes taking the cores (it is the
  work done); it compares XLA programs with each other, not with torch (whose OpenMP
  threads spin while waiting, which counts as CPU time)."""
  runs = {name: b for name, b in builders.items() if b is not None}
  for run, _ in runs.values():
    run(); run()  # warm-up: thread pools, allocator, caches
  wall = {name: [] for name in runs}
  cpu = {name: [] for name in runs}
  for _ in range(rounds):
    for name, (run, _) in runs.items():
      start, start_cpu = time.perf_counter(), time.process_time()
      run()
      wall[name].append(time.perf_counter() - start)
      cpu[name].append(time.process_time() - start_cpu)
  return ({name: statistics.median(t) for name, t in wall.items()},
          {name: statistics.median(t) for name, t in cpu.items()})


def bench(cell_name, dims, train, rounds, skip):
  builders = {'ours': build_ltmjax(cell_name, dims, train),
              'generic': build_ltmjax(cell_name, dims, train, fused=False),
              'limit': build_limit(cell_name, dims, train)}
  if 'flax' not in skip:
    builders['flax'] = build_flax(cell_name, dims, train)
  if 'torch' not in skip:
    builders['torch'] = build_torch(cell_name, dims, train)
  seconds, cpu_seconds = measure(builders, rounds)
  peaks = {name: b[1] for name, b in builders.items() if b is not None}
  return seconds, cpu_seconds, peaks


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--length', type=int, default=256)
  parser.add_argument('--input', type=int, default=128)
  parser.add_argument('--hidden', default='256,1024', help='comma-separated hidden sizes')
  parser.add_argument('--cells', default='lstm,gru', help='comma-separated: lstm,gru')
  parser.add_argument('--modes', default='train,forward', help='comma-separated: train,forward')
  parser.add_argument('--rounds', type=int, default=7, help='interleaved timing rounds (median)')
  parser.add_argument('--skip', default='', help='comma-separated: flax,torch')
  parser.add_argument('--profile', action='store_true',
                      help='print the per-op profile of our call (instead of the timing table)')
  args = parser.parse_args(argv)
  if args.profile:  # XLA:CPU writes per-op trace events only with this flag, read at import
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                               + ' --xla_cpu_enable_xprof_traceme=true').strip()

  import jax
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores, '
        f'load average {os.getloadavg()[0]:.2f}, XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}, '
        f'OMP_WAIT_POLICY={os.environ["OMP_WAIT_POLICY"]}')
  tokens = args.batch * args.length
  skip = set(filter(None, args.skip.split(',')))
  if args.profile:
    for cell_name in args.cells.split(','):
      for mode in args.modes.split(','):
        for hidden in map(int, args.hidden.split(',')):
          print_profile(cell_name, (args.batch, args.length, args.input, hidden), mode == 'train')
    return
  print('| cell | mode | H | ours tok/s | generic | flax | torch | limit | ours/torch | '
        'ours/flax | ours/limit | ours/limit (CPU time) | ours/generic (CPU time) | '
        'peak MiB ours / generic |')
  print('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for cell_name in args.cells.split(','):
    for mode in args.modes.split(','):
      for hidden in map(int, args.hidden.split(',')):
        dims = (args.batch, args.length, args.input, hidden)
        seconds, cpu_seconds, peaks = bench(cell_name, dims, mode == 'train', args.rounds, skip)
        rate = {name: tokens / s for name, s in seconds.items()}
        fmt = lambda name: f'{rate[name]:,.0f}' if name in rate else '—'
        ratio = lambda name: f'{rate["ours"] / rate[name]:.2f}' if name in rate else '—'
        mib = lambda name: f'{peaks[name] / 2**20:.1f}' if peaks.get(name) else '—'
        print(f'| {cell_name} | {mode} | {hidden} | {fmt("ours")} | {fmt("generic")} | '
              f'{fmt("flax")} | {fmt("torch")} | {fmt("limit")} | {ratio("torch")}× | '
              f'{ratio("flax")}× | {rate["ours"] / rate["limit"]:.0%} | '
              f'{cpu_seconds["limit"] / cpu_seconds["ours"]:.0%} | '
              f'{cpu_seconds["generic"] / cpu_seconds["ours"]:.2f}× | '
              f'{mib("ours")} / {mib("generic")} |', flush=True)
  print(f'load average after: {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
  main()
