"""LTM-T vs Transformer: training speed and peak memory as the sequence grows.

    python experiments/bench_ltmt.py                               # 1K, 4K, 16K (+ LTM-T at 64K)
    python experiments/bench_ltmt.py --lengths 1024,4096 --ltmt-only-lengths 16384 --steps 3

One jit-compiled training step (forward, backward, Adam update) on a synthetic
token-classification task (vocabulary 256, 10 classes, mean pooling), timed over
`--steps` steps after one warm-up step with `block_until_ready`; peak memory is the
compiled step's `memory_analysis()` (arguments + outputs + temporaries). Both models use
the same small width; the Transformer uses attention='auto' (blockwise above 2048²
logits, so its memory stays linear but its time is quadratic), LTM-T its registry
defaults (segment 64, 16 memory slots, remat per segment) unless --set changes them.
Prints one row per length: steps/s of each, the LTM-T/Transformer speed ratio, LTM-T's
time per token relative to the shortest length, and peak memory.
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, Optional

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ltmjax.models import ltmt as ltmt_model
from ltmjax.models import transformer as transformer_model
from ltmjax.tasks.base import TaskSpec

VOCAB, CLASSES = 256, 10
BUILDERS = {'ltmt': ltmt_model, 'transformer': transformer_model}


def model_config(name: str, args) -> ml_collections.ConfigDict:
  cfg = BUILDERS[name].default_config()
  cfg.update(dim=args.dim, heads=args.heads, layers=args.layers, mlp_dim=4 * args.dim,
             dropout=0.0)
  for item in args.set:
    key, text = item.split('=', 1)
    if key in cfg:
      cfg[key] = text.lower() == 'true' if isinstance(cfg[key], bool) else type(cfg[key])(text)
  return ml_collections.ConfigDict(cfg)


def measure(name: str, length: int, args) -> Optional[Dict[str, float]]:
  """Steps/s and peak bytes of one training step, or None when it does not fit."""
  spec = TaskSpec('tokens', VOCAB, 'sequence', CLASSES, length)
  model = BUILDERS[name].build(model_config(name, args), spec)
  key = jax.random.PRNGKey(0)
  inputs = jax.random.randint(key, (args.batch, length), 0, VOCAB)
  labels = jax.random.randint(key, (args.batch,), 0, CLASSES)
  params = model.init(key, inputs[:, :min(length, 64)])['params']
  tx = optax.adam(1e-4)
  opt_state = tx.init(params)

  def train_step(params, opt_state, inputs, labels):
    def loss_fn(p):
      logits = model.apply({'params': p}, inputs, train=True)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  try:
    compiled = jax.jit(train_step, donate_argnums=(0, 1)).lower(
        params, opt_state, inputs, labels).compile()
    stats = compiled.memory_analysis()
    peak = None if stats is None else (stats.argument_size_in_bytes + stats.output_size_in_bytes
                                       + stats.temp_size_in_bytes - stats.alias_size_in_bytes)
    params, opt_state, loss = compiled(params, opt_state, inputs, labels)  # warm-up
    jax.block_until_ready(loss)
    start = time.perf_counter()
    for _ in range(args.steps):
      params, opt_state, loss = compiled(params, opt_state, inputs, labels)
    jax.block_until_ready(loss)
    elapsed = time.perf_counter() - start
  except Exception as err:  # noqa: BLE001 - out of memory is a result, not a crash
    if 'RESOURCE_EXHAUSTED' in str(err) or 'out of memory' in str(err).lower():
      print(f'{name} at {length}: out of memory')
      return None
    raise
  return {'steps_per_s': args.steps / elapsed, 'peak_mb': (peak or 0) / 2 ** 20}


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
  args = parser.parse_args(argv)
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
