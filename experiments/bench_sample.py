"""Sampling speed: tokens/s after prompts of 100 and 10,000 tokens (stateful vs window).

    python experiments/bench_sample.py                      # LSTM, LTM-T, Transformer on CPU
    python experiments/bench_sample.py --prompts 100,10000 --tokens 256 --models lstm,ltmt

Each model is a CPU-sized causal byte LM (vocabulary 257) with random parameters (the
speed does not depend on their values). LSTM and LTM-T sample from their carry
(`ltmjax.sample.prefill` feeds the prompt once, `decode` then makes one call per token
on a block of `stream_block` tokens; only `decode` is timed); the Transformer has no
carry, so it re-runs its window per token (`ltmjax.sample.generate`) with the window =
the whole text (full context: the cost of a model without a KV cache). Each call runs
once to compile and is then timed (the least of 3 runs, for a shared machine):
tokens/s = N / (time to generate N tokens).
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


def measure(name: str, prompt_len: int, tokens: int):
  """(generated tokens/s, mode) of one model at one prompt length (the prompt not timed
  for carry models; the window sampler re-reads it for every token by construction)."""
  prompt = np.random.default_rng(1).integers(1, 257, prompt_len).astype(np.int32)
  model, params = build(name, prompt_len + tokens)
  if hasattr(model, 'initial_carry'):
    state = jax.block_until_ready(sample.prefill(model, params, prompt))
    run = lambda n: sample.decode(model, params, state, length=n,  # noqa: E731
                                  temperature=0.0)
    mode = 'carry'
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
  p.add_argument('--tokens', type=int, default=2048, help='N for carry models')
  p.add_argument('--window_tokens', type=int, default=8,
                 help='N for models without a carry (each token re-runs the text)')
  args = p.parse_args()
  print('| model | mode | prompt | generated | tokens/s |\n|:--|:--|--:|--:|--:|')
  for name in args.models.split(','):
    for prompt_len in (int(x) for x in args.prompts.split(',')):
      n = args.tokens if name != 'transformer' else args.window_tokens
      rate, mode = measure(name, prompt_len, n)
      print(f'| {name} | {mode} | {prompt_len} | {n} | {rate:.1f} |', flush=True)


if __name__ == '__main__':
  main()
