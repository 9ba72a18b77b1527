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

'associative' mode (after ARMT; `ltmjax.cells.associative`): each layer keeps a
quasi-linear key-value matrix A (and its normaliser z). Per layer: every token and the
layer's learned memory slots first add what A returns for them (read); the tokens then
attend over [slots ; segment] as in 'gated'; the slots attend over [slots ; new token
states] (the write attention, residual), and those slot states are written into A with
the delta rule and a write gate. A, not the slots, carries the past; carry['memory']
holds the last segment's slot states (what pool='memory' reads).

Bounded memory (`memory_norm`, a static option of `step`): after each write every slot
is rescaled, so the memory stays in the range it was trained in however many segments
follow ('gated' memory drifts: its RMS grew 0.6 -> 4.5 over 64 segments untreated):
  'none'     as written;
  'rms_cap'  slot / max(1, RMS(slot)) (RMS over D): slots inside the unit RMS ball pass;
  'unit'     slot / RMS(slot): every slot on the RMS-1 sphere.

`ltmjax.cells.make_ltmt` validates the static options once (`check_options`) and binds
them: causal, memory_mode, segment, attention implementation and block size. `init`
takes only shape options; everything else is read from parameter shapes.

Carry (one form in every mode): {'memory': [B, L, M, D]}, plus in 'xl' mode
'states' [B, L, S, D] (the previous segment's input states per layer) and 'states_mask'
[B, S] (False before the first segment), in 'associative' mode 'assoc' [B, L, F, D] and
'assoc_norm' [B, L, F] (A and z). Input: {'x': x_BxSxD, 'mask': mask_BxS}
(bool, True = real token).

Parameters: {'memory': [L, M, D], 'ln_out', 'layer_{l}': {'read': a `blocks.block_init`
dict, 'write' ('gated' only): {'ln', 'attention', 'gates': dense [2D, 3D]} or
('associative') {'ln', 'attention', 'assoc': `associative.init`}}} (+ 'in_proj' dense
[D_in, D] when the input width differs); the gate columns are candidate, input, forget.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ltmjax import blocks
from ltmjax.cells import associative

MEMORY_MODES = ('gated', 'xl', 'associative')
MEMORY_NORMS = ('none', 'rms_cap', 'unit')
Params = Any


def check_options(*, memory_mode: str, segment, memory_norm: str = 'none') -> None:
  """Raises a ValueError naming the bad static option and the fix (the attention
  implementation and block size are checked by `ltmjax.attention.attention`)."""
  if memory_mode not in MEMORY_MODES:
    raise ValueError(f'unknown LTM-T memory_mode {memory_mode!r}; known: {", ".join(MEMORY_MODES)}')
  if memory_norm not in MEMORY_NORMS:
    raise ValueError(f'unknown LTM-T memory_norm {memory_norm!r}; known: {", ".join(MEMORY_NORMS)}')
  if memory_mode == 'xl' and not segment:
    raise ValueError("LTM-T memory_mode='xl' keeps the previous segment: set segment=S >= 1")
  if segment is not None and segment < 1:
    raise ValueError(f'LTM-T segment must be >= 1, got {segment}')


# ----------------------------------------------------------------------------- init

def init(key, input_dim: int, hidden_dim: int, *, memory_slots: int = 16, heads: int = 4,
         layers: int = 1, mlp_dim=None, write: bool = True, assoc_dim: int = 0,
         dtype=jnp.float32) -> Params:
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
    assoc_dim: E > 0: the layers have associative-memory parameters instead (keys of
      width E; 'associative' mode, whatever `write` says).
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
    if assoc_dim:
      p['write'] = {'ln': blocks.layer_norm_init(dim, dtype),
                    'attention': blocks.attention_init(k_write, dim, heads, dtype),
                    'assoc': associative.init(k_gate, dim, assoc_dim, dtype)}
    elif write:
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
  layers, _, dim = memory.shape
  if memory_mode == 'xl':
    carry['states'] = jnp.zeros((*batch_shape, layers, segment, dim), memory.dtype)
    carry['states_mask'] = jnp.zeros((*batch_shape, segment), bool)
  if memory_mode == 'associative':
    feats = associative.feature_dim(params['layer_0']['write']['assoc']['key'].shape[1])
    carry['assoc'] = jnp.zeros((*batch_shape, layers, feats, dim), memory.dtype)
    carry['assoc_norm'] = jnp.zeros((*batch_shape, layers, feats), memory.dtype)
  return carry


def final_memory(carry):
  """The last layer's memory slots [B, M, D]."""
  return carry['memory'][:, -1]


# ----------------------------------------------------------------------------- step

BOUND_EPS = 1e-6   # inside the RMS's square root: a zero slot stays finite, with gradient


def bound(memory_xMxD, memory_norm: str):
  """Each slot (last axis D) rescaled by `memory_norm`: 'none' | 'rms_cap' (slot /
  max(1, RMS)) | 'unit' (slot / RMS); statistics in at least float32."""
  if memory_norm == 'none':
    return memory_xMxD
  m = memory_xMxD.astype(blocks.stats_dtype(memory_xMxD.dtype))
  rms = jnp.sqrt(jnp.mean(m * m, axis=-1, keepdims=True) + BOUND_EPS)
  scale = 1.0 / (jnp.maximum(rms, 1.0) if memory_norm == 'rms_cap' else rms)
  return (m * scale).astype(memory_xMxD.dtype)


def _slots_attend(p, memory_BxMxD, h_BxSxD, token_mask_BxS, attention_impl, block_size):
  """The slots' attention over LN([M ; h]) (padded tokens masked) -> (read_BxMxD, LN(M))."""
  batch, slots = memory_BxMxD.shape[:2]
  m_ln = blocks.layer_norm(p['ln'], memory_BxMxD)
  kv_BxKxD = jnp.concatenate([m_ln, blocks.layer_norm(p['ln'], h_BxSxD.astype(m_ln.dtype))],
                             axis=1)
  key_mask = jnp.concatenate([jnp.ones((batch, slots), bool), token_mask_BxS], axis=1)
  read_BxMxD = blocks.multi_head_attention(
      p['attention'], m_ln, kv_BxKxD, mask_BxNxLxS=key_mask[:, None, None, :],
      implementation=attention_impl, block_size=block_size)
  return read_BxMxD, m_ln


def write(p, memory_BxMxD, h_BxSxD, token_mask_BxS, *, memory_norm: str = 'none',
          attention_impl: str = 'auto', block_size: int = 512):
  """Gated memory update: M' = bound(sigmoid(f) * M + sigmoid(i) * tanh(M~)).

  The memory attends over LN([M ; h]); the gates see what was read and the normalised
  current slot, so a slot can keep itself even when the segment offers something new.
  Returns:
    (M'_BxMxD, {'forget': sigmoid(f), 'input': sigmoid(i)}, each [B, M, D]).
  """
  dt = memory_BxMxD.dtype
  read_BxMxD, m_ln = _slots_attend(p, memory_BxMxD, h_BxSxD, token_mask_BxS, attention_impl,
                                   block_size)
  gates = blocks.dense(p['gates'], jnp.concatenate([read_BxMxD, m_ln], axis=-1))
  stats = blocks.stats_dtype(dt)
  cand, inp, forget = jnp.split(gates.astype(stats), 3, axis=-1)
  forget, inp = jax.nn.sigmoid(forget), jax.nn.sigmoid(inp)
  new = forget * memory_BxMxD.astype(stats) + inp * jnp.tanh(cand)
  return bound(new, memory_norm).astype(dt), {'forget': forget, 'input': inp}


def _rms(x):
  """RMS over the last axis, averaged over the axes after the batch: [B, ...] -> [B]."""
  x = x.astype(jnp.float32)
  return jnp.sqrt(jnp.mean(x * x, axis=-1)).reshape(x.shape[0], -1).mean(-1)


def step(params, carry, x, *, causal: bool = False, memory_mode: str = 'gated',
         memory_norm: str = 'none', attention_impl: str = 'auto', block_size: int = 512,
         with_stats: bool = False):
  """One segment through all layers.

  Args:
    params: LTM-T parameters.
    carry: the dict of `initial_carry`.
    x: {'x': x_BxSxD, 'mask': mask_BxS (bool, True = real token)}.
    memory_norm: the bound on the written slots (module docstring).
    with_stats: also return the memory's statistics (diagnostics).
  Returns:
    (carry', y_BxSxD), and with `with_stats` a dict of [B, L] arrays: 'memory_rms' (the new
    slots' RMS), 'forget_mean', 'forget_above_095' (the fraction of forget gates > 0.95) and
    'input_mean' ('gated'), 'write_gate_mean' and 'assoc_rms' (A's) ('associative').
    A row whose segment is all padding keeps its carry unchanged.
  """
  x_BxSxD, mask_BxS = x['x'], x['mask'].astype(bool)
  if 'in_proj' in params:
    x_BxSxD = blocks.dense(params['in_proj'], x_BxSxD)
  batch, length = x_BxSxD.shape[:2]
  xl, assoc = memory_mode == 'xl', memory_mode == 'associative'
  if xl and length != carry['states'].shape[2]:
    raise ValueError(f"memory_mode='xl' segments must have {carry['states'].shape[2]} tokens, "
                     f'got {length}')
  h = x_BxSxD
  new = {'memory': [], 'states': [], 'assoc': [], 'assoc_norm': []}
  stats = {}
  for layer in range(num_layers(params)):  # a loop over layers, not over time
    p = params[f'layer_{layer}']
    if assoc:
      ap, a_BxFxD, z_BxF = p['write']['assoc'], carry['assoc'][:, layer], carry['assoc_norm'][:, layer]
      slots = params['memory'][layer].astype(h.dtype)
      m_BxMxD = jnp.broadcast_to(slots, (batch,) + slots.shape)
      m_BxMxD = m_BxMxD + associative.read(ap, a_BxFxD, z_BxF, m_BxMxD).astype(h.dtype)
      h = h + associative.read(ap, a_BxFxD, z_BxF, h).astype(h.dtype)
    else:
      m_BxMxD = carry['memory'][:, layer]
    context, context_mask = [m_BxMxD], [jnp.ones((batch, m_BxMxD.shape[1]), bool)]
    if xl:
      context.append(jax.lax.stop_gradient(carry['states'][:, layer]))
      context_mask.append(carry['states_mask'])
      new['states'].append(h)
    key_mask_BxK = jnp.concatenate(context_mask + [mask_BxS], axis=1)
    # Bottom-right-aligned causality: every token sees all of [M ; previous states] and
    # the segment up to itself.
    h = blocks.block(p['read'], h, context_BxCxD=jnp.concatenate(context, 1).astype(h.dtype),
                     mask_BxNxLxS=key_mask_BxK[:, None, None, :], causal=causal,
                     implementation=attention_impl, block_size=block_size)
    if memory_mode == 'gated':
      m_new, gates = write(p['write'], m_BxMxD, h, mask_BxS, memory_norm=memory_norm,
                           attention_impl=attention_impl, block_size=block_size)
      new['memory'].append(m_new)
      stats.setdefault('forget_mean', []).append(gates['forget'].mean((1, 2)))
      stats.setdefault('forget_above_095', []).append((gates['forget'] > 0.95).mean((1, 2)))
      stats.setdefault('input_mean', []).append(gates['input'].mean((1, 2)))
    elif assoc:
      read_BxMxD, _ = _slots_attend(p['write'], m_BxMxD, h, mask_BxS, attention_impl,
                                    block_size)
      m_new = bound(m_BxMxD + read_BxMxD.astype(m_BxMxD.dtype), memory_norm)
      a_new, z_new, beta = associative.write(ap, a_BxFxD, z_BxF, m_new.astype(a_BxFxD.dtype))
      new['memory'].append(m_new)
      new['assoc'].append(a_new)
      new['assoc_norm'].append(z_new)
      stats.setdefault('write_gate_mean', []).append(beta.mean((1, 2)))
      stats.setdefault('assoc_rms', []).append(_rms(a_new))
    if new['memory']:
      stats.setdefault('memory_rms', []).append(_rms(new['memory'][-1]))
  y_BxSxD = blocks.layer_norm(params['ln_out'], h)

  any_real_B = mask_BxS.any(-1)
  keep = lambda new, old: jnp.where(any_real_B.reshape((batch,) + (1,) * (old.ndim - 1)),
                                    new.astype(old.dtype), old)
  if xl:
    new_carry = {'memory': carry['memory'],
                 'states': keep(jax.lax.stop_gradient(jnp.stack(new['states'], axis=1)),
                                carry['states']),
                 'states_mask': keep(mask_BxS, carry['states_mask'])}
  else:
    new_carry = {name: keep(jnp.stack(new[name], axis=1), old) for name, old in carry.items()}
  if with_stats:
    return new_carry, y_BxSxD, {k: jnp.stack(v, axis=1) for k, v in stats.items()}
  return new_carry, y_BxSxD
