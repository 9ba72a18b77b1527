"""LTM-T (seed 004): a recurrent memory Transformer cell, h_t = LTM-T(h_{t-1}, x_t).

One step of the cell reads one *segment* of S tokens. The carry is a memory of M slots
per layer (learned initial value). Per layer:
  (1) read:  the segment's tokens attend over [M ; segment] (pre-LayerNorm, residual),
             then a residual MLP; causal inside the segment when `causal=True` (every
             token sees all of M, which holds only earlier segments);
  (2) write: the memory attends over [M ; new token states] and is updated through
             LSTM-style gates, M' = sigmoid(f) * M + sigmoid(i) * tanh(M~), with the
             forget bias starting at +1 (as in the Block-Recurrent Transformer);
  (3) M' is that layer's memory for the next segment.
Cost per segment is O(S·(S + M)), so a sequence of n tokens costs O(n·(S + M)).

'xl' mode (Transformer-XL) replaces the gated write: each layer's keys are
[M ; previous segment's input states of this layer (gradient stopped) ; segment], and
M stays the learned initial memory (persistent slots that are never written).

Static options that change the computation (causal, memory_mode, segment, attention
implementation) are bound by `ltmjax.cells.make_ltmt`; everything else is read from parameter
shapes (layers, heads, head size, slots, MLP width).

Parameters ({'memory': [L, M, D], 'layer_{l}': ..., 'ln_out': ...}); each attention is
{'ln', 'query' [D, N, K], 'key' [D, N, K], 'value' [D, N, K], 'out' [N, K, D]}, the MLP
{'ln', 'mlp_in' [D, F], 'bias_in' [F], 'mlp_out' [F, D], 'bias_out' [D]}, the write
gates 'gates' [2D, 3D] and 'gates_bias' [3D] (candidate, input, forget).
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from ltmjax import attention as attention_lib

MEMORY_MODES = ('gated', 'xl')
Params = Any


# ----------------------------------------------------------------------------- init

def _layer_norm_init(dim, dtype):
  return {'scale': jnp.ones((dim,), dtype), 'bias': jnp.zeros((dim,), dtype)}


def _attention_init(key, dim, heads, dtype):
  if dim % heads:
    raise ValueError(f'LTM-T width {dim} is not divisible by heads={heads}')
  head = dim // heads
  kq, kk, kv, ko = jax.random.split(key, 4)
  normal = jax.nn.initializers.normal(dim ** -0.5)
  return {'ln': _layer_norm_init(dim, dtype),
          'query': normal(kq, (dim, heads, head), dtype),
          'key': normal(kk, (dim, heads, head), dtype),
          'value': normal(kv, (dim, heads, head), dtype),
          'out': normal(ko, (heads, head, dim), dtype)}


def init(key, input_dim: int, hidden_dim: int, *, segment: int, memory_slots: int = 16,
         heads: int = 4, layers: int = 1, mlp_dim=None, memory_mode: str = 'gated',
         causal: bool = False, dtype=jnp.float32) -> Params:
  """LTM-T parameters.

  Args:
    key: PRNG key.
    input_dim: D_in, width of the input tokens (an input projection is added when it
      differs from hidden_dim).
    hidden_dim: D, width of token states and memory slots.
    segment: S, tokens per step (checked here; bound into the Cell by `make_ltmt`).
    memory_slots: M.
    heads: N (head size K = D / N).
    layers: L.
    mlp_dim: F (default 4D).
    memory_mode: 'gated' (gated write) or 'xl' (no write parameters).
    causal: accepted for a uniform signature; causality adds no parameters.
  Returns:
    The parameter dict described in the module docstring.
  """
  del causal  # static: bound into step by make_ltmt, never stored in params
  if memory_mode not in MEMORY_MODES:
    raise ValueError(f'unknown memory_mode {memory_mode!r}; known: {", ".join(MEMORY_MODES)}')
  if segment < 1 or memory_slots < 1 or layers < 1:
    raise ValueError('LTM-T needs segment >= 1, memory_slots >= 1 and layers >= 1')
  dim, mlp_dim = hidden_dim, mlp_dim or 4 * hidden_dim
  keys = jax.random.split(key, layers + 2)
  params = {'memory': 0.5 * jax.random.normal(keys[0], (layers, memory_slots, dim), dtype),
            'ln_out': _layer_norm_init(dim, dtype)}
  if input_dim != dim:
    params['in_proj'] = jax.nn.initializers.lecun_normal()(keys[1], (input_dim, dim), dtype)
  for layer in range(layers):
    k_read, k_in, k_out, k_write, k_gate = jax.random.split(keys[layer + 2], 5)
    p = {'read': _attention_init(k_read, dim, heads, dtype),
         'mlp': {'ln': _layer_norm_init(dim, dtype),
                 'mlp_in': jax.nn.initializers.lecun_normal()(k_in, (dim, mlp_dim), dtype),
                 'bias_in': jnp.zeros((mlp_dim,), dtype),
                 'mlp_out': jax.nn.initializers.lecun_normal()(k_out, (mlp_dim, dim), dtype),
                 'bias_out': jnp.zeros((dim,), dtype)}}
    if memory_mode == 'gated':
      p['write'] = _attention_init(k_write, dim, heads, dtype)
      p['write']['gates'] = jax.nn.initializers.lecun_normal()(k_gate, (2 * dim, 3 * dim), dtype)
      # Forget bias +1: the memory starts out mostly kept (Block-Recurrent Transformer).
      p['write']['gates_bias'] = jnp.zeros((3 * dim,), dtype).at[2 * dim:].set(1.0)
    params[f'layer_{layer}'] = p
  return params


def num_layers(params) -> int:
  return params['memory'].shape[0]


def hidden_size(params) -> int:
  return params['memory'].shape[-1]


# ----------------------------------------------------------------------------- carry

def initial_carry(params, batch_shape: tuple, *, memory_mode: str = 'gated', segment=None):
  """The learned initial memory broadcast over the batch.

  Returns:
    'gated': M, [*batch_shape, L, M, D].
    'xl': {'memory': M, 'states': [*batch_shape, L, S, D] zeros,
           'states_mask': [*batch_shape, S] all False (no previous segment yet)}.
  """
  memory = params['memory']
  memory_BxLxMxD = jnp.broadcast_to(memory, (*batch_shape, *memory.shape))
  if memory_mode == 'gated':
    return memory_BxLxMxD
  if memory_mode != 'xl':
    raise ValueError(f'unknown memory_mode {memory_mode!r}; known: {", ".join(MEMORY_MODES)}')
  if not segment:
    raise ValueError("memory_mode='xl' needs the segment length (make_ltmt(segment=...))")
  layers, _, dim = memory.shape
  return {'memory': memory_BxLxMxD,
          'states': jnp.zeros((*batch_shape, layers, segment, dim), memory.dtype),
          'states_mask': jnp.zeros((*batch_shape, segment), bool)}


# ----------------------------------------------------------------------------- step

def _layer_norm(p, x, eps=1e-6):
  # Statistics in float32 so that a bfloat16 forward pass stays accurate.
  x32 = x.astype(jnp.float32)
  mean = x32.mean(-1, keepdims=True)
  var = jnp.square(x32 - mean).mean(-1, keepdims=True)
  y = (x32 - mean) * jax.lax.rsqrt(var + eps)
  return (y * p['scale'].astype(jnp.float32) + p['bias'].astype(jnp.float32)).astype(x.dtype)


def _attend(p, queries_BxLxD, keys_BxSxD, key_mask_BxS, *, causal, impl, block_size):
  """Pre-LN multi-head attention of `queries` over `keys`; returns [B, L, D] (no residual)."""
  dt = queries_BxLxD.dtype
  q_in, kv_in = _layer_norm(p['ln'], queries_BxLxD), _layer_norm(p['ln'], keys_BxSxD)
  q = jnp.einsum('bld,dnk->blnk', q_in, p['query'].astype(dt))
  k = jnp.einsum('bsd,dnk->bsnk', kv_in, p['key'].astype(dt))
  v = jnp.einsum('bsd,dnk->bsnk', kv_in, p['value'].astype(dt))
  o = attention_lib.attention(q, k, v, mask_BxNxLxS=key_mask_BxS[:, None, None, :],
                              causal=causal, implementation=impl, block_size=block_size)
  return jnp.einsum('blnk,nkd->bld', o.astype(dt), p['out'].astype(dt))


def _mlp(p, h_BxSxD):
  dt = h_BxSxD.dtype
  u = _layer_norm(p['ln'], h_BxSxD) @ p['mlp_in'].astype(dt) + p['bias_in'].astype(dt)
  return jax.nn.gelu(u) @ p['mlp_out'].astype(dt) + p['bias_out'].astype(dt)


def _write(p, memory_BxMxD, h_BxSxD, token_mask_BxS, *, impl, block_size):
  """Gated memory update: M' = sigmoid(f) * M + sigmoid(i) * tanh(M~)."""
  dt = memory_BxMxD.dtype
  batch, slots = memory_BxMxD.shape[:2]
  keys_BxKxD = jnp.concatenate([memory_BxMxD, h_BxSxD.astype(dt)], axis=1)
  key_mask = jnp.concatenate([jnp.ones((batch, slots), bool), token_mask_BxS], axis=1)
  read_BxMxD = _attend(p, memory_BxMxD, keys_BxKxD, key_mask, causal=False, impl=impl,
                       block_size=block_size)
  # Gates see what was read and the (normalised) current slot, so a slot can decide to
  # keep itself even when the segment offers something new.
  gate_in = jnp.concatenate([read_BxMxD, _layer_norm(p['ln'], memory_BxMxD)], axis=-1)
  gates = (gate_in @ p['gates'].astype(dt) + p['gates_bias'].astype(dt)).astype(jnp.float32)
  cand, inp, forget = jnp.split(gates, 3, axis=-1)
  new = (jax.nn.sigmoid(forget) * memory_BxMxD.astype(jnp.float32)
         + jax.nn.sigmoid(inp) * jnp.tanh(cand))
  return new.astype(dt)


def _split_input(x):
  if isinstance(x, dict):
    x_BxSxD, mask_BxS = x['x'], x.get('mask')
  else:
    x_BxSxD, mask_BxS = x, None
  if mask_BxS is None:
    mask_BxS = jnp.ones(x_BxSxD.shape[:2], bool)
  return x_BxSxD, mask_BxS.astype(bool)


def step(params, carry, x, *, causal: bool = False, memory_mode: str = 'gated',
         attention_impl: str = 'auto', block_size: int = 512):
  """One segment through all layers.

  Args:
    params: LTM-T parameters.
    carry: memory M_BxLxMxD ('gated') or the 'xl' dict of `initial_carry`.
    x: a segment x_BxSxD, or {'x': x_BxSxD, 'mask': mask_BxS (bool, True = real token)}.
  Returns:
    (carry', y_BxSxD). A row whose segment is all padding keeps its carry unchanged.
  """
  x_BxSxD, mask_BxS = _split_input(x)
  if 'in_proj' in params:
    x_BxSxD = x_BxSxD @ params['in_proj'].astype(x_BxSxD.dtype)
  memory = carry if memory_mode == 'gated' else carry['memory']
  batch, length = x_BxSxD.shape[:2]
  h = x_BxSxD
  attend = functools.partial(_attend, impl=attention_impl, block_size=block_size)
  new_memory, new_states = [], []
  for layer in range(num_layers(params)):  # a loop over layers, not over time
    p = params[f'layer_{layer}']
    m_BxMxD = memory[:, layer]
    slots_mask = jnp.ones((batch, m_BxMxD.shape[1]), bool)
    if memory_mode == 'xl':
      prev_BxSxD = jax.lax.stop_gradient(carry['states'][:, layer]).astype(h.dtype)
      context = [m_BxMxD.astype(h.dtype), prev_BxSxD, h]
      context_mask = [slots_mask, carry['states_mask'], mask_BxS]
      new_states.append(h)
    else:
      context, context_mask = [m_BxMxD.astype(h.dtype), h], [slots_mask, mask_BxS]
    # Bottom-right-aligned causality: every token sees all of [M ; previous states] and
    # the segment up to itself.
    h = h + attend(p['read'], h, jnp.concatenate(context, 1), jnp.concatenate(context_mask, 1),
                   causal=causal)
    h = h + _mlp(p['mlp'], h)
    if memory_mode == 'gated':
      new_memory.append(_write(p['write'], m_BxMxD, h, mask_BxS, impl=attention_impl,
                               block_size=block_size))
  y_BxSxD = _layer_norm(params['ln_out'], h)

  any_real_B = mask_BxS.any(-1)
  keep = lambda new, old: jnp.where(any_real_B.reshape((batch,) + (1,) * (old.ndim - 1)),
                                    new.astype(old.dtype), old)
  if memory_mode == 'gated':
    new_carry = keep(jnp.stack(new_memory, axis=1), carry)
  else:
    if length != carry['states'].shape[2]:
      raise ValueError(f"memory_mode='xl' segments must have {carry['states'].shape[2]} tokens, "
                       f'got {length}')
    new_carry = {'memory': carry['memory'],
                 'states': keep(jax.lax.stop_gradient(jnp.stack(new_states, axis=1)),
                                carry['states']),
                 'states_mask': keep(mask_BxS, carry['states_mask'])}
  return new_carry, y_BxSxD


def final_memory(carry):
  """The last layer's memory slots [B, M, D] from a carry of either mode."""
  memory = carry if not isinstance(carry, dict) else carry['memory']
  return memory[:, -1]
