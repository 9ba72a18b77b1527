"""Sampling speed: tokens/s after prompts of 100 and 10,000 tokens (stateful vs window).

    python experiments/bench_sample.py                      # LSTM, LTM-T, Transformer on CPU
    python experiments/bench_sample.py --prompts 100,10000 --tokens 256 --models lstm,ltmt

    python experiments/bench_sample.py --models transformer --window   # + the window sampler

Each model is a CPU-sized causal byte LM (vocabulary 257) with random parameters (the
speed does not depend on their values). All three sample from their carry
(`ltmjax.sample.prefill` feeds the prompt once, `decode` then makes one call per token
on a block of `stream_block` tokens; only `decode` is timed): LSTM and LTM-T from their
state, the Transformer from its KV cache, sized for prompt + N tokens, over which every
token attends (so its cost grows with the prompt). `--window` adds the Transformer's
window sampler (`ltmjax.sample.generate`, window = the whole text: each token re-runs
the text, the cost of a model without a KV cache). Each call runs once to compile and is
then timed (the least of 3 runs, for a shared machine): tokens/s = N / (time for N tokens).
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltmjax import models, sample
from ltmjax.tasks.base import TaskSpec

SIZES = {'lstm': dict(hidden=128, embed_dim=64),
         'ltmt': dict(dim=64, heads=4, layers=2, mlp_dim=128, segment=64, memory_slots=8,
                      remat=False),
         'transformer': dict(dim=64, heads=4, layers=2, mlp_dim=128, dropout=0.0)}


def build(name: str, seq_len: int):
  spec = TaskSpec('tokens', 257, 'token', 257, seq_len, causal=True)
  cfg = dict(models.get(name).default_config(), name=name, **SIZES[name])
  model = models.build(ml_collections.ConfigDict(cfg), spec)
  abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                            jnp.zeros((1, min(seq_len, 64)), jnp.int32))['params']
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda a: jnp.asarray(rng.normal(0.0, 0.1, a.shape), a.dtype), abstract)
  return model, params


def _timed(fn, *args) -> float:
  t0 = time.perf_counter()
  fn(*args)
  return time.perf_counter() - t0


def measure(name: str, prompt_len: int, tokens: int, window: bool = False):
  """(generated tokens/s, mode) of one model at one prompt length (the prompt not timed
  from the carry; the window sampler re-reads it for every token by construction)."""
  prompt = np.random.default_rng(1).integers(1, 257, prompt_len).astype(np.int32)
  model, params = build(name, prompt_len + tokens)
  if not window:
    state = jax.block_until_ready(sample.prefill(model, params, prompt, length=tokens))
    run = lambda n: sample.decode(model, params, state, length=n,  # noqa: E731
                                  temperature=0.0)
    mode = 'KV cache' if getattr(model, 'kv_cache', False) else 'carry'
  else:
    apply_fn = lambda p, x: model.apply({'params': p}, x, None, train=False)  # noqa: E731
    run = lambda n: sample.generate(apply_fn, params, prompt, length=n,  # noqa: E731
                                    window=prompt_len + tokens, temperature=0.0)
    mode = 'window (no KV cache)'
  run(tokens)   # compile
  return tokens / min(_timed(run, tokens) for _ in range(3)), mode   # least disturbed of 3


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--models', default='lstm,ltmt,transformer')
  p.add_argument('--prompts', default='100,10000')
  p.add_argument('--tokens', type=int, default=2048, help='N from the carry')
  p.add_argument('--window', action='store_true',
                 help='also the Transformer\'s window sampler (each token re-runs the text)')
  p.add_argument('--window_tokens', type=int, default=8, help='N for the window sampler')
  args = p.parse_args()
  print('| model | mode | prompt | generated | tokens/s |\n|:--|:--|--:|--:|--:|')
  runs = [(name, False) for name in args.models.split(',')]
  runs += [('transformer', True)] if args.window and 'transformer' in args.models else []
  for name, window in runs:
    for prompt_len in (int(x) for x in args.prompts.split(',')):
      n = args.window_tokens if window else args.tokens
      rate, mode = measure(name, prompt_len, n, window)
      print(f'| {name} | {mode} | {prompt_len} | {n} | {rate:.1f} |', flush=True)


if __name__ == '__main__':
  main()
