"""bf16 vs fp32 training: steps/second and peak memory of the Transformer and the LSTM.

Each (model, dtype) runs the trainer's train step (`ltmjax.train.Trainer`: jit, donated state,
bf16 compute with fp32 parameters and optimizer state when train.dtype=bfloat16) on the
copy task in its own subprocess, so that peak memory is that run's alone. Memory is
reported three ways: XLA's compiled estimate for the step (arguments + outputs +
temporaries - aliased; all backends), the device's peak bytes in use (GPU/TPU), and the
process's peak RSS (CPU).

  python experiments/bench_precision.py                       # moderate size, T=256, batch 32
  python experiments/bench_precision.py --length 1024 --batch 16 --steps 20
  python experiments/bench_precision.py --models transformer --dim 512 --layers 8

CPUs mostly lack bf16 matrix units, so bf16 is often slower there; the gain is on
GPU/TPU. Other processes on the machine skew the timings: compare ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(model_name: str, dtype: str, args) -> dict:
  """Times `args.steps` train steps of one configuration (after two warm-up steps)."""
  import jax
  from ltmjax import config_lib, parallel, train

  c = config_lib.base_config(model=model_name, task='copy')
  c.task.update(length=10, blank_len=args.length - 20, alphabet=8)   # T = args.length
  if model_name == 'transformer':
    c.model.update(dim=args.dim, heads=args.heads, layers=args.layers, mlp_dim=4 * args.dim,
                   dropout=0.0)
  else:
    c.model.update(hidden=args.hidden, embed_dim=args.dim, layers=1)
  c.train.update(steps=1000, batch_size=args.batch, dtype=dtype, progress=False)
  c.parallel.data = 1
  config = config_lib.lock(c)
  task, model = train.build(config)
  trainer = train.Trainer(config, task, model,
                          parallel.make_mesh(config.parallel, jax.devices()[:1]))
  state = trainer.init_state(jax.random.PRNGKey(0))
  stream = task.train_iterator()
  batches = [parallel.global_batch(next(stream), trainer.batch_sharding) for _ in range(4)]
  mem = trainer.lower_train_step(state, batches[0]).compile().memory_analysis()
  estimate = None
  if mem is not None:
    estimate = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                + mem.temp_size_in_bytes - mem.alias_size_in_bytes)
  for i in range(2):
    state, metrics = trainer.train_step(state, batches[i])
  jax.block_until_ready(metrics)
  start, cpu_start = time.perf_counter(), time.process_time()
  for i in range(args.steps):
    state, metrics = trainer.train_step(state, batches[i % len(batches)])
  jax.block_until_ready((state, metrics))
  wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
  stats = jax.devices()[0].memory_stats() or {}
  return {
      'model': model_name, 'dtype': dtype, 'device': jax.devices()[0].device_kind,
      'steps_per_s': round(args.steps / wall, 3),
      'tokens_per_s': round(args.steps * args.batch * args.length / wall),
      'cpu_s_per_step': round(cpu / args.steps, 4),
      'step_memory_estimate_mib': None if estimate is None else round(estimate / 2**20, 1),
      'device_peak_mib': (round(stats['peak_bytes_in_use'] / 2**20, 1)
                          if 'peak_bytes_in_use' in stats else None),
      'peak_rss_mib': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      'final_loss': float(metrics['loss']),
      'params': int(sum(x.size for x in jax.tree.leaves(state['params']))),
  }


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--models', default='transformer,lstm')
  p.add_argument('--dtypes', default='float32,bfloat16')
  p.add_argument('--length', type=int, default=256)
  p.add_argument('--batch', type=int, default=32)
  p.add_argument('--dim', type=int, default=256, help='Transformer width; LSTM embedding')
  p.add_argument('--heads', type=int, default=4)
  p.add_argument('--layers', type=int, default=4)
  p.add_argument('--hidden', type=int, default=512, help='LSTM hidden size')
  p.add_argument('--steps', type=int, default=10)
  p.add_argument('--one', help=argparse.SUPPRESS)   # internal: MODEL,DTYPE in this process
  p.add_argument('--out', help='also write the rows as JSON to this file')
  args = p.parse_args()
  if args.one:
    print(json.dumps(measure(*args.one.split(','), args)))
    return
  rows = []
  passthrough = [f'--{k}={getattr(args, k)}' for k in
                 ('length', 'batch', 'dim', 'heads', 'layers', 'hidden', 'steps')]
  for model_name in args.models.split(','):
    for dtype in args.dtypes.split(','):
      out = subprocess.run([sys.executable, __file__, '--one', f'{model_name},{dtype}',
                            *passthrough], capture_output=True, text=True, cwd=ROOT,
                           env=dict(os.environ, PYTHONPATH=ROOT))
      if out.returncode:
        print(f'{model_name} {dtype}: failed\n{out.stderr[-2000:]}', file=sys.stderr)
        continue
      rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
      r = rows[-1]
      print(f"{r['model']:<12} {r['dtype']:<9} {r['steps_per_s']:>8.2f} steps/s "
            f"{r['tokens_per_s']:>9} tok/s  step memory {r['step_memory_estimate_mib']} MiB  "
            f"device peak {r['device_peak_mib']} MiB  RSS {r['peak_rss_mib']} MiB  "
            f"loss {r['final_loss']:.3f}  ({r['device']}, {r['params']} params)", flush=True)
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(rows, f, indent=2)


if __name__ == '__main__':
  main()
