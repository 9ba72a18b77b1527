"""LTM-T (seed 004): a recurrent memory Transformer cell, h_t = LTM-T(h_{t-1}, x_t) (pure functions).

One step of the cell reads one *segment* of S tokens. The carry is a memory of M slots
per layer (learned initial value). Per layer:
  (1) read:  a pre-LN block (`ltmjax.blocks.block`): the segment's tokens attend over
             [M ; segment], then a residual MLP; causal inside the segment when
             `causal=True` (every token sees all of M, which holds only earlier segments);
  (2) write: the memory attends over [M ; new token states] and is updated through
             LSTM-style gates, M' = sigmoid(f) * M + sigmoid(i) * tanh(M~), with the
             forget bias starting at +1 (as in the Block-Recurrent Transformer);
  (3) M' is that layer's memory for the next segment.
Cost per segment is O(S·(S + M)), so a sequence of n tokens costs O(n·(S + M)).

'xl' mode (Transformer-XL) replaces the gated write: each layer's keys are
[M ; previous segment's input states of this layer (gradient stopped) ; segment], and
M stays the learned initial memory (persistent slots that are never written).

`ltmjax.cells.make_ltmt` validates the static options once (`check_options`) and binds
them: causal, memory_mode, segment, attention implementation and block size. `init`
takes only shape options; everything else is read from parameter shapes.

Carry (one form in both modes): {'memory': [B, L, M, D]}, plus in 'xl' mode
'states' [B, L, S, D] (the previous segment's input states per layer) and 'states_mask'
[B, S] (False before the first segment). Input: {'x': x_BxSxD, 'mask': mask_BxS}
(bool, True = real token).

Parameters: {'memory': [L, M, D], 'ln_out', 'layer_{l}': {'read': a `blocks.block_init`
dict, 'write' ('gated' only): {'ln', 'attention', 'gates': dense [2D, 3D]}}} (+ 'in_proj'
dense [D_in, D] when the input width differs); the gate columns are candidate, input,
forget.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ltmjax import blocks

MEMORY_MODES = ('gated', 'xl')
Params = Any


def check_options(*, memory_mode: str, segment) -> None:
  """Raises a ValueError naming the bad static option and the fix (the attention
  implementation and block size are checked by `ltmjax.attention.attention`)."""
  if memory_mode not in MEMORY_MODES:
    raise ValueError(f'unknown LTM-T memory_mode {memory_mode!r}; known: {", ".join(MEMORY_MODES)}')
  if memory_mode == 'xl' and not segment:
    raise ValueError("LTM-T memory_mode='xl' keeps the previous segment: set segment=S >= 1")
  if segment is not None and segment < 1:
    raise ValueError(f'LTM-T segment must be >= 1, got {segment}')


# ----------------------------------------------------------------------------- init

def init(key, input_dim: int, hidden_dim: int, *, memory_slots: int = 16, heads: int = 4,
         layers: int = 1, mlp_dim=None, write: bool = True, dtype=jnp.float32) -> Params:
  """LTM-T parameters.

  Args:
    key: PRNG key.
    input_dim: D_in, width of the input tokens (an input projection is added when it
      differs from hidden_dim).
    hidden_dim: D, width of token states and memory slots.
    memory_slots: M.
    heads: N (head size K = D / N).
    layers: L.
    mlp_dim: F (default 4D).
    write: whether the layers have gated-write parameters ('gated' mode; `make_ltmt`
      binds it from memory_mode).
  Returns:
    The parameter dict described in the module docstring.
  """
  if memory_slots < 1 or layers < 1:
    raise ValueError('LTM-T needs memory_slots >= 1 and layers >= 1')
  dim, mlp_dim = hidden_dim, mlp_dim or 4 * hidden_dim
  keys = jax.random.split(key, layers + 2)
  params = {'memory': 0.5 * jax.random.normal(keys[0], (layers, memory_slots, dim), dtype),
            'ln_out': blocks.layer_norm_init(dim, dtype)}
  if input_dim != dim:
    params['in_proj'] = blocks.dense_init(keys[1], input_dim, dim, dtype)
  for layer in range(layers):
    k_read, k_write, k_gate = jax.random.split(keys[layer + 2], 3)
    p = {'read': blocks.block_init(k_read, dim, heads, mlp_dim, dtype)}
    if write:
      gates = blocks.dense_init(k_gate, 2 * dim, 3 * dim, dtype)
      # Forget bias +1: the memory starts out mostly kept (Block-Recurrent Transformer).
      gates['bias'] = gates['bias'].at[2 * dim:].set(1.0)
      p['write'] = {'ln': blocks.layer_norm_init(dim, dtype),
                    'attention': blocks.attention_init(k_write, dim, heads, dtype),
                    'gates': gates}
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
    {'memory': [*batch_shape, L, M, D]}; in 'xl' mode also 'states' [*batch_shape, L, S, D]
    zeros and 'states_mask' [*batch_shape, S] all False (no previous segment yet).
  """
  memory = params['memory']
  carry = {'memory': jnp.broadcast_to(memory, (*batch_shape, *memory.shape))}
  if memory_mode == 'xl':
    layers, _, dim = memory.shape
    carry['states'] = jnp.zeros((*batch_shape, layers, segment, dim), memory.dtype)
    carry['states_mask'] = jnp.zeros((*batch_shape, segment), bool)
  return carry


def final_memory(carry):
  """The last layer's memory slots [B, M, D]."""
  return carry['memory'][:, -1]


# ----------------------------------------------------------------------------- step

def write(p, memory_BxMxD, h_BxSxD, token_mask_BxS, *, attention_impl: str = 'auto',
          block_size: int = 512):
  """Gated memory update: M' = sigmoid(f) * M + sigmoid(i) * tanh(M~).

  The memory attends over LN([M ; h]) (padded tokens masked); the gates see what was read
  and the normalised current slot, so a slot can keep itself even when the segment offers
  something new.
  """
  dt = memory_BxMxD.dtype
  batch, slots = memory_BxMxD.shape[:2]
  m_ln = blocks.layer_norm(p['ln'], memory_BxMxD)
  kv_BxKxD = jnp.concatenate([m_ln, blocks.layer_norm(p['ln'], h_BxSxD.astype(dt))], axis=1)
  key_mask = jnp.concatenate([jnp.ones((batch, slots), bool), token_mask_BxS], axis=1)
  read_BxMxD = blocks.multi_head_attention(
      p['attention'], m_ln, kv_BxKxD, mask_BxNxLxS=key_mask[:, None, None, :],
      implementation=attention_impl, block_size=block_size)
  gates = blocks.dense(p['gates'], jnp.concatenate([read_BxMxD, m_ln], axis=-1))
  stats = blocks.stats_dtype(dt)
  cand, inp, forget = jnp.split(gates.astype(stats), 3, axis=-1)
  new = (jax.nn.sigmoid(forget) * memory_BxMxD.astype(stats)
         + jax.nn.sigmoid(inp) * jnp.tanh(cand))
  return new.astype(dt)


def step(params, carry, x, *, causal: bool = False, memory_mode: str = 'gated',
         attention_impl: str = 'auto', block_size: int = 512):
  """One segment through all layers.

  Args:
    params: LTM-T parameters.
    carry: the dict of `initial_carry`.
    x: {'x': x_BxSxD, 'mask': mask_BxS (bool, True = real token)}.
  Returns:
    (carry', y_BxSxD). A row whose segment is all padding keeps its carry unchanged.
  """
  x_BxSxD, mask_BxS = x['x'], x['mask'].astype(bool)
  if 'in_proj' in params:
    x_BxSxD = blocks.dense(params['in_proj'], x_BxSxD)
  batch, length = x_BxSxD.shape[:2]
  xl = memory_mode == 'xl'
  if xl and length != carry['states'].shape[2]:
    raise ValueError(f"memory_mode='xl' segments must have {carry['states'].shape[2]} tokens, "
                     f'got {length}')
  h = x_BxSxD
  new_memory, new_states = [], []
  for layer in range(num_layers(params)):  # a loop over layers, not over time
    p = params[f'layer_{layer}']
    m_BxMxD = carry['memory'][:, layer]
    context, context_mask = [m_BxMxD], [jnp.ones((batch, m_BxMxD.shape[1]), bool)]
    if xl:
      context.append(jax.lax.stop_gradient(carry['states'][:, layer]))
      context_mask.append(carry['states_mask'])
      new_states.append(h)
    key_mask_BxK = jnp.concatenate(context_mask + [mask_BxS], axis=1)
    # Bottom-right-aligned causality: every token sees all of [M ; previous states] and
    # the segment up to itself.
    h = blocks.block(p['read'], h, context_BxCxD=jnp.concatenate(context, 1).astype(h.dtype),
                     mask_BxNxLxS=key_mask_BxK[:, None, None, :], causal=causal,
                     implementation=attention_impl, block_size=block_size)
    if not xl:
      new_memory.append(write(p['write'], m_BxMxD, h, mask_BxS, attention_impl=attention_impl,
                              block_size=block_size))
  y_BxSxD = blocks.layer_norm(params['ln_out'], h)

  any_real_B = mask_BxS.any(-1)
  keep = lambda new, old: jnp.where(any_real_B.reshape((batch,) + (1,) * (old.ndim - 1)),
                                    new.astype(old.dtype), old)
  if xl:
    new_carry = {'memory': carry['memory'],
                 'states': keep(jax.lax.stop_gradient(jnp.stack(new_states, axis=1)),
                                carry['states']),
                 'states_mask': keep(mask_BxS, carry['states_mask'])}
  else:
    new_carry = {'memory': keep(jnp.stack(new_memory, axis=1), carry['memory'])}
  return new_carry, y_BxSxD
