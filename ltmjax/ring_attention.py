"""Sequence-parallel ring attention: the sequence is split over a 'seq' mesh axis.

Each device holds one chunk of the queries and one chunk of the keys/values. In
`ring` rounds it attends its queries to the key/value chunk it holds (online softmax,
float32 statistics, as in `ltmjax.attention`'s blockwise path) and passes that chunk
to the next device with `jax.lax.ppermute`, so after the last round every query has
seen every key while no device ever holds more than one key/value chunk or more than a
[L/ring, S/ring] block of logits. The next chunk's transfer is issued before the
current block is computed, so XLA can overlap communication with compute.

The gradient goes through the same ring (autodiff of ppermute is the reverse
permutation); each round is rematerialised, so the backward pass keeps the
per-round softmax statistics and key/value chunks, never the logits.

Masks: `causal` (L == S, chunks aligned) and/or a key padding mask [B, 1, 1, S]
(e.g. `ltmjax.attention.padding_mask`); a general [B, N, L, S] mask would need its
own ring and is refused. Rows that see no key give 0, as in `ltmjax.attention`.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P


def _key_mask(mask, batch: int, length_k: int):
  """[B, S] bool key padding mask from None or a mask broadcastable as [B, 1, 1, S]."""
  if mask is None:
    return jnp.ones((batch, length_k), bool)
  mask = jnp.asarray(mask)
  if mask.dtype != jnp.bool_:
    raise ValueError(f'attention masks are bool (True = may attend), got {mask.dtype}')
  mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
  if mask.shape[1] != 1 or mask.shape[2] != 1:
    raise ValueError('ring attention takes a key padding mask [B, 1, 1, S] (and causal=True), '
                     f'not a per-query mask of shape {mask.shape}')
  return jnp.broadcast_to(mask[:, 0, 0, :], (batch, length_k))


def _axis_or_none(mesh, name: str, size: int):
  """`name` if the mesh has that axis and it divides `size` (so the dim can be sharded)."""
  if name in mesh.axis_names and mesh.shape[name] > 1 and size % mesh.shape[name] == 0:
    return name
  return None


def _ring_shard(q_BxLxNxK, k_BxSxNxK, v_BxSxNxK, kmask_BxS, *, causal: bool, axis: str,
                ring: int):
  """Per-device body: local chunks in, this device's [B, L/ring, N, K] output out."""
  batch, length_q, heads, head = q_BxLxNxK.shape
  length_k = k_BxSxNxK.shape[1]
  scale = 1.0 / np.sqrt(head)
  me = jax.lax.axis_index(axis)
  q_pos_L = me * length_q + jnp.arange(length_q)
  perm = [(j, (j + 1) % ring) for j in range(ring)]

  def attend(stats, k, v, kmask, src):
    """Online-softmax update with the key chunk that started on device `src`."""
    m_BxNxL, l_BxNxL, acc_BxNxLxK = stats
    s = jnp.einsum('blnk,bsnk->bnls', q_BxLxNxK, k, preferred_element_type=jnp.float32) * scale
    vis = kmask[:, None, None, :]
    if causal:
      k_pos_S = src * length_k + jnp.arange(length_k)
      vis = vis & (k_pos_S[None, :] <= q_pos_L[:, None])[None, None]
    s = jnp.where(vis, s, -jnp.inf)
    m_new = jnp.maximum(m_BxNxL, s.max(-1))
    # A row with nothing visible so far keeps m = -inf; shift by 0 there to avoid inf - inf.
    m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
    p = jnp.exp(s - m_safe[..., None])
    correction = jnp.exp(m_BxNxL - m_safe)
    pv = jnp.einsum('bnls,bsnk->bnlk', p.astype(v.dtype), v, preferred_element_type=jnp.float32)
    return m_new, l_BxNxL * correction + p.sum(-1), acc_BxNxLxK * correction[..., None] + pv

  @jax.checkpoint  # recompute each round's logits in the backward pass instead of saving them
  def round_(carry, r):
    stats, k, v, kmask = carry
    # Send the chunk on before using it: the transfer overlaps this round's compute.
    nxt = tuple(jax.lax.ppermute(x, axis, perm) for x in (k, v, kmask))
    stats = attend(stats, k, v, kmask, (me - r) % ring)
    return (stats, *nxt), None

  stats = (jnp.full((batch, heads, length_q), -jnp.inf, jnp.float32),
           jnp.zeros((batch, heads, length_q), jnp.float32),
           jnp.zeros((batch, heads, length_q, head), jnp.float32))
  carry = (stats, k_BxSxNxK, v_BxSxNxK, kmask_BxS)
  if ring > 1:
    carry, _ = jax.lax.scan(round_, carry, jnp.arange(ring - 1))
  stats, k, v, kmask = carry
  _, l, acc = attend(stats, k, v, kmask, (me - (ring - 1)) % ring)  # the last chunk: no send
  seen = l > 0
  out_BxNxLxK = jnp.where(seen[..., None], acc / jnp.where(seen, l, 1.0)[..., None], 0.0)
  return jnp.swapaxes(out_BxNxLxK, 1, 2).astype(q_BxLxNxK.dtype)


def ring_attention(q_BxLxNxK, k_BxSxNxK, v_BxSxNxK, *, mask_BxNxLxS=None, causal: bool = False,
                   mesh=None, axis: str = 'seq'):
  """softmax(q k^T / sqrt(K)) v with the sequence sharded over the mesh axis `axis`.

  Call it inside or outside `jax.jit`; the batch is also split over 'data' and the heads
  over 'model' when the mesh has those axes and they divide B and N.
  Args:
    q_BxLxNxK: queries; L must divide by the size of `axis`.
    k_BxSxNxK, v_BxSxNxK: keys and values; S must divide by the size of `axis`.
    mask_BxNxLxS: None or a bool key padding mask broadcastable as [B, 1, 1, S].
    causal: query i sees key j iff j <= i (needs L == S).
    mesh: a Mesh with `axis`; default: the mesh set by `jax.set_mesh`.
    axis: the mesh axis the sequence is split over.
  Returns:
    [B, L, N, K] in q's dtype, equal to `ltmjax.attention.attention` up to float error.
  """
  mesh = jax.sharding.get_abstract_mesh() if mesh is None else mesh
  if mesh is None or mesh.empty or axis not in mesh.axis_names:
    raise ValueError(f"ring attention needs a mesh with a {axis!r} axis (parallel.seq > 1), "
                     'passed as mesh= or set with jax.set_mesh')
  ring = mesh.shape[axis]
  batch, length_q, heads, _ = q_BxLxNxK.shape
  length_k = k_BxSxNxK.shape[1]
  if length_q % ring or length_k % ring:
    raise ValueError(f'ring attention splits the sequence over {ring} devices: lengths '
                     f'{length_q} and {length_k} must be multiples of {ring}')
  if causal and length_q != length_k:
    raise ValueError('causal ring attention needs queries and keys of the same length')
  kmask_BxS = _key_mask(mask_BxNxLxS, batch, length_k)
  b = _axis_or_none(mesh, 'data', batch)
  n = _axis_or_none(mesh, 'model', heads)
  qkv_spec, mask_spec = P(b, axis, n, None), P(b, axis)
  body = functools.partial(_ring_shard, causal=causal, axis=axis, ring=ring)
  # check_vma=False: the scan carry starts replicated and becomes device-varying.
  return jax.shard_map(body, mesh=mesh, in_specs=(qkv_spec, qkv_spec, qkv_spec, mask_spec),
                       out_specs=qkv_spec, check_vma=False)(
                           q_BxLxNxK, k_BxSxNxK, v_BxSxNxK, kmask_BxS)
