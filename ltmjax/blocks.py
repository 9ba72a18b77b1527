"""Transformer pieces shared by the Transformer and LTM-T: pure functions over parameter dicts.

One implementation of LayerNorm, the multi-head attention projections, the GELU MLP and
the pre-LayerNorm block. The Flax Transformer stores a block's dict with `self.param`;
the LTM-T cell keeps its blocks inside its own parameter dict and calls them from its
pure step (which `ltmjax.recurrence` scans). Every attention goes through
`ltmjax.attention.attention`.

Parameter layout (the names are a contract with the sharding rules in ltmjax/parallel.py):
  LayerNorm  {'scale': [D], 'bias': [D]}
  attention  {'query', 'key', 'value': {'kernel': [D, N, K], 'bias': [N, K]},
              'out': {'kernel': [N, K, D], 'bias': [D]}}
  dense      {'kernel': [D_in, D_out], 'bias': [D_out]}
  block      {'ln_attn', 'attention', 'ln_mlp', 'mlp_in' [D, F], 'mlp_out' [F, D]}
Computations run in the dtype of the activations (parameters are cast to it), except
LayerNorm statistics, which are at least float32 so that bfloat16 stays accurate.
"""
from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from ltmjax import attention as attention_lib

Params = Any
LAYER_NORM_EPS = 1e-6


# ----------------------------------------------------------------------------- init

def layer_norm_init(dim: int, dtype=jnp.float32) -> Params:
  return {'scale': jnp.ones((dim,), dtype), 'bias': jnp.zeros((dim,), dtype)}


def dense_init(key, in_dim: int, out_dim: int, dtype=jnp.float32) -> Params:
  """LeCun-normal kernel [in_dim, out_dim] and zero bias (Flax Dense's defaults)."""
  return {'kernel': jax.nn.initializers.lecun_normal()(key, (in_dim, out_dim), dtype),
          'bias': jnp.zeros((out_dim,), dtype)}


def attention_init(key, dim: int, heads: int, dtype=jnp.float32) -> Params:
  """Projections of D features to N heads of size K = D / N and back (LeCun normal)."""
  if dim % heads:
    raise ValueError(f'width {dim} is not divisible by heads={heads}; pick heads dividing dim')
  head = dim // heads
  k_q, k_k, k_v, k_o = jax.random.split(key, 4)
  into_heads = jax.nn.initializers.lecun_normal(in_axis=0, out_axis=(1, 2))
  from_heads = jax.nn.initializers.lecun_normal(in_axis=(0, 1), out_axis=2)
  params = {name: {'kernel': into_heads(k, (dim, heads, head), dtype),
                   'bias': jnp.zeros((heads, head), dtype)}
            for name, k in (('query', k_q), ('key', k_k), ('value', k_v))}
  params['out'] = {'kernel': from_heads(k_o, (heads, head, dim), dtype),
                   'bias': jnp.zeros((dim,), dtype)}
  return params


def block_init(key, dim: int, heads: int, mlp_dim: int, dtype=jnp.float32) -> Params:
  """A pre-LN block: LayerNorm + attention, LayerNorm + MLP D -> F -> D."""
  k_attn, k_in, k_out = jax.random.split(key, 3)
  return {'ln_attn': layer_norm_init(dim, dtype),
          'attention': attention_init(k_attn, dim, heads, dtype),
          'ln_mlp': layer_norm_init(dim, dtype),
          'mlp_in': dense_init(k_in, dim, mlp_dim, dtype),
          'mlp_out': dense_init(k_out, mlp_dim, dim, dtype)}


# ----------------------------------------------------------------------------- apply

def stats_dtype(dtype):
  """Where precision matters (LayerNorm statistics, gates): float32, or float64 for float64."""
  return jnp.promote_types(dtype, jnp.float32)


def layer_norm(p, x_xD):
  """(x - mean) / sqrt(var + eps) * scale + bias over the last axis, in x's dtype."""
  stats = stats_dtype(x_xD.dtype)
  x32 = x_xD.astype(stats)
  mean = x32.mean(-1, keepdims=True)
  var = jnp.square(x32 - mean).mean(-1, keepdims=True)
  y = (x32 - mean) * jax.lax.rsqrt(var + LAYER_NORM_EPS)
  return (y * p['scale'].astype(stats) + p['bias'].astype(stats)).astype(x_xD.dtype)


def dense(p, x_xD):
  dt = x_xD.dtype
  return x_xD @ p['kernel'].astype(dt) + p['bias'].astype(dt)


def dropout(x, rate: float, rng):
  """Inverted dropout; the identity when rate is 0 or rng is None (evaluation)."""
  if rate == 0.0 or rng is None:
    return x
  keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def empty_cache(batch: int, capacity: int, heads: int, head: int, dtype=jnp.float32):
  """A KV cache of `capacity` positions with none filled: {'k', 'v': [B, S, N, K] zeros,
  'length': [B] int32 zeros} (S = capacity; the layout `attention` takes)."""
  zeros_BxSxNxK = jnp.zeros((batch, capacity, heads, head), dtype)
  return {'k': zeros_BxSxNxK, 'v': zeros_BxSxNxK, 'length': jnp.zeros((batch,), jnp.int32)}


def _cached(cache, k_BxLxNxK, v_BxLxNxK, mask_BxNxLxS, causal: bool):
  """Writes the new keys/values at positions length..length+L-1 of each row, and the mask of
  the cached keys each new query sees: the filled ones (j < length + L), or with `causal`
  those up to its own position (j <= length + i), and-ed with mask_BxNxLxS."""
  length_B = cache['length']
  zero = jnp.zeros((), length_B.dtype)   # start indices of one dtype (also under x64)
  write = lambda c_SxNxK, new_LxNxK, start: jax.lax.dynamic_update_slice(  # noqa: E731
      c_SxNxK, new_LxNxK.astype(c_SxNxK.dtype), (start, zero, zero))
  k_BxSxNxK = jax.vmap(write)(cache['k'], k_BxLxNxK, length_B)
  v_BxSxNxK = jax.vmap(write)(cache['v'], v_BxLxNxK, length_B)
  length_q, capacity = k_BxLxNxK.shape[1], k_BxSxNxK.shape[1]
  # the last cached position each query sees ([B, L], or [B, 1] for all of them)
  last_BxL = length_B[:, None] + (jnp.arange(length_q) if causal else length_q - 1)
  visible_Bx1xLxS = jnp.arange(capacity) <= last_BxL[:, None, :, None]
  if mask_BxNxLxS is not None:
    visible_Bx1xLxS = jnp.logical_and(visible_Bx1xLxS, mask_BxNxLxS)
  new_cache = {'k': k_BxSxNxK, 'v': v_BxSxNxK, 'length': length_B + length_q}
  return new_cache, visible_Bx1xLxS


def multi_head_attention(p, x_BxLxD, kv_BxSxD, *, mask_BxNxLxS=None, causal: bool = False,
                         implementation: str = 'auto', block_size: int = 512,
                         positions_BxL=None, cache=None):
  """Queries from x, keys and values from kv, `ltmjax.attention.attention`, back to D.

  Args:
    p: attention parameters.
    x_BxLxD: query features (already normalised).
    kv_BxSxD: key/value features (already normalised).
    mask_BxNxLxS: bool, True = may attend (broadcastable); None = all keys.
    causal: bottom-right-aligned causal mask (with S > L every query sees the first S - L
      keys, e.g. memory slots, and the last L causally).
    positions_BxL: rotary positions of queries and keys (self-attention only: L == S).
    cache: a KV cache (`empty_cache`; self-attention, kv is x): the new keys and values are
      written after the `length` filled positions of each row and the queries attend over
      all of them (with `causal`, each up to its own position; mask_BxNxLxS is then over
      the cache's positions). The caller keeps length + L <= capacity (past it the write
      would be clamped) and gives the rotary positions (length + i).
  Returns:
    [B, L, D] in x's dtype; with a cache, ([B, L, D], the cache with length + L filled).
  """
  dt = x_BxLxD.dtype
  proj = lambda name, h: (jnp.einsum('bld,dnk->blnk', h, p[name]['kernel'].astype(dt))
                          + p[name]['bias'].astype(dt))
  q_BxLxNxK, k_BxSxNxK, v_BxSxNxK = (proj('query', x_BxLxD), proj('key', kv_BxSxD),
                                     proj('value', kv_BxSxD))
  if positions_BxL is not None:
    if x_BxLxD.shape[1] != kv_BxSxD.shape[1]:
      raise ValueError('rotary positions apply to self-attention only (as many keys as queries)')
    q_BxLxNxK = attention_lib.apply_rotary(q_BxLxNxK, positions_BxL)
    k_BxSxNxK = attention_lib.apply_rotary(k_BxSxNxK, positions_BxL)
  if cache is not None:
    if x_BxLxD.shape[1] != kv_BxSxD.shape[1]:
      raise ValueError('a KV cache is for self-attention only (as many keys as queries)')
    cache, mask_BxNxLxS = _cached(cache, k_BxSxNxK, v_BxSxNxK, mask_BxNxLxS, causal)
    k_BxSxNxK, v_BxSxNxK, causal = cache['k'], cache['v'], False
  o_BxLxNxK = attention_lib.attention(q_BxLxNxK, k_BxSxNxK, v_BxSxNxK, mask_BxNxLxS=mask_BxNxLxS,
                                      causal=causal, implementation=implementation,
                                      block_size=block_size)
  out_BxLxD = (jnp.einsum('blnk,nkd->bld', o_BxLxNxK.astype(dt), p['out']['kernel'].astype(dt))
               + p['out']['bias'].astype(dt))
  return out_BxLxD if cache is None else (out_BxLxD, cache)


def mlp(p, h_BxLxD, *, dropout_rate: float = 0.0, rng=None):
  """GELU MLP D -> F -> D (dropout on the hidden units when training)."""
  return dense(p['mlp_out'], dropout(jax.nn.gelu(dense(p['mlp_in'], h_BxLxD)), dropout_rate, rng))


def block(p, x_BxLxD, *, context_BxCxD=None, mask_BxNxLxS=None, causal: bool = False,
          implementation: str = 'auto', block_size: int = 512, positions_BxL=None,
          dropout_rate: float = 0.0, rng: Optional[jax.Array] = None, cache=None):
  """Pre-LN block: x + Drop(MHA(LN(x))), then x + Drop(MLP(LN(x))).

  Args:
    p: block parameters (`block_init`).
    x_BxLxD: token states.
    context_BxCxD: extra keys placed before x (LTM-T's memory slots and previous states);
      the queries of x attend over LN([context ; x]). None for self-attention.
    mask_BxNxLxS: key mask over [context ; x] (S = C + L), True = may attend.
    causal: x attends causally to itself and to all of the context.
    positions_BxL: rotary positions (no context).
    dropout_rate, rng: dropout on the attention output, the MLP hidden units and the MLP
      output; rng None = no dropout (evaluation).
    cache: this block's KV cache (no context; see `multi_head_attention`).
  Returns:
    [B, L, D]; with a cache, ([B, L, D], the updated cache).
  """
  rngs = [None] * 3 if rng is None else list(jax.random.split(rng, 3))
  h_BxLxD = layer_norm(p['ln_attn'], x_BxLxD)
  kv_BxSxD = h_BxLxD
  if context_BxCxD is not None:
    context_BxCxD = layer_norm(p['ln_attn'], context_BxCxD.astype(x_BxLxD.dtype))
    kv_BxSxD = jnp.concatenate([context_BxCxD, h_BxLxD], axis=1)
  a_BxLxD = multi_head_attention(p['attention'], h_BxLxD, kv_BxSxD, mask_BxNxLxS=mask_BxNxLxS,
                                 causal=causal, implementation=implementation,
                                 block_size=block_size, positions_BxL=positions_BxL, cache=cache)
  if cache is not None:
    a_BxLxD, cache = a_BxLxD
  x_BxLxD = x_BxLxD + dropout(a_BxLxD, dropout_rate, rngs[0])
  m_BxLxD = mlp(p, layer_norm(p['ln_mlp'], x_BxLxD), dropout_rate=dropout_rate, rng=rngs[1])
  x_BxLxD = x_BxLxD + dropout(m_BxLxD, dropout_rate, rngs[2])
  return x_BxLxD if cache is None else (x_BxLxD, cache)
