"""Attention: the one function every attention in ltmjax goes through, and its masks.

`attention` has implementations that give the same numbers:
  'dense'      `jax.nn.dot_product_attention` (cuDNN flash attention on GPU when the dtype,
               head size and mask allow it, XLA otherwise). XLA materialises the [B, N, L, S]
               logits, so memory is quadratic in length.
  'blockwise'  online softmax over key/value blocks with `jax.lax.scan` and a custom VJP
               that saves only the output and the log-sum-exp and recomputes each block in
               the backward pass, so memory is O(B·N·L·block) in training too.
  'ring'       the sequence split over the mesh's 'seq' axis (`ring_attention`): each device
               folds the key/value chunks passed round the ring into the same accumulator.
  'auto'       'dense' while L·S <= AUTO_BLOCKWISE_MIN_AREA (2048²) or when cuDNN takes
               the call (it is already memory-linear), 'blockwise' above.

Masks are bool, True = may attend. A query row that may see no key gets a zero output
(and zero gradients) in every implementation.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from ltmjax.positions import apply_rotary, sinusoidal_positions  # noqa: F401  (re-exported)

IMPLEMENTATIONS = ('auto', 'dense', 'blockwise', 'ring')
# Above this many logits per (batch, head), 'auto' goes blockwise: at 2048² the fp32 logits
# of one head are 16 MiB, and the XLA backward keeps several such arrays alive.
AUTO_BLOCKWISE_MIN_AREA = 2048 * 2048


def causal_mask(length_q: int, length_k: int):
  """[L, S] bool, bottom-right aligned: query i sees key j iff j <= i + (S - L).

  With L == S this is the usual lower triangle; with S > L (queries of a segment over
  [memory ; segment]) every query sees the first S - L keys and the segment causally.
  """
  i = jnp.arange(length_q)[:, None]
  j = jnp.arange(length_k)[None, :]
  return j <= i + (length_k - length_q)


def padding_mask(mask_BxT):
  """[B, 1, 1, T] key mask from a [B, T] token mask (True = real token)."""
  return mask_BxT[:, None, None, :].astype(bool)


def segment_mask(segment_ids_q_BxL, segment_ids_k_BxS=None):
  """[B, 1, L, S] mask letting each token attend only within its own segment (packed rows)."""
  if segment_ids_k_BxS is None:
    segment_ids_k_BxS = segment_ids_q_BxL
  return (segment_ids_q_BxL[:, None, :, None] == segment_ids_k_BxS[:, None, None, :])


def _as_4d(mask):
  if mask is None:
    return None
  mask = jnp.asarray(mask)
  if mask.dtype != jnp.bool_:
    raise ValueError(f'attention masks are bool (True = may attend), got {mask.dtype}')
  if mask.ndim > 4:
    raise ValueError(f'mask must broadcast to [B, N, L, S], got shape {mask.shape}')
  return mask.reshape((1,) * (4 - mask.ndim) + mask.shape)


def _cudnn_ok(q, mask, causal, length_q, length_k) -> bool:
  """Whether cuDNN flash attention can take the call (GPU, half precision, no explicit mask)."""
  return (jax.default_backend() == 'gpu' and q.dtype in (jnp.bfloat16, jnp.float16)
          and q.shape[-1] <= 128 and q.shape[-1] % 8 == 0 and mask is None
          and (not causal or length_q == length_k))


def _dense(q, k, v, mask, causal):
  length_q, length_k = q.shape[1], k.shape[1]
  k, v = k.astype(q.dtype), v.astype(q.dtype)
  if _cudnn_ok(q, mask, causal, length_q, length_k):
    try:
      return jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation='cudnn')
    except (NotImplementedError, RuntimeError, ValueError):
      pass  # this cuDNN build or shape is unsupported: the XLA path gives the same numbers
  if mask is None and (not causal or length_q == length_k):
    return jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation='xla')
  # jax's is_causal is top-left aligned, so causality for L != S goes through the mask; an
  # explicit mask can empty a row, whose output the XLA softmax would make a uniform average.
  if causal:
    cm = causal_mask(length_q, length_k)[None, None]
    mask = cm if mask is None else jnp.logical_and(mask, cm)
  out = jax.nn.dot_product_attention(q, k, v, mask=mask, implementation='xla')
  row_seen_BxNxL = jnp.broadcast_to(mask, mask.shape[:3] + (length_k,)).any(-1)
  return out * jnp.swapaxes(row_seen_BxNxL, 1, 2)[..., None].astype(out.dtype)


# ---------------------------------------------------------------- key blocks

def _split_blocks(x_BxSx___, block: int):
  """[B, S, ...] -> [G, B, block, ...] with S zero-padded to G whole blocks."""
  num_blocks = -(-x_BxSx___.shape[1] // block)
  pad = num_blocks * block - x_BxSx___.shape[1]
  x_BxSx___ = jnp.pad(x_BxSx___, [(0, 0), (0, pad)] + [(0, 0)] * (x_BxSx___.ndim - 2))
  x = x_BxSx___.reshape(x_BxSx___.shape[:1] + (num_blocks, block) + x_BxSx___.shape[2:])
  return jnp.moveaxis(x, 1, 0)


def _key_blocks(k, v, mask, block):
  """Scan inputs: key/value blocks, the matching mask blocks (or None) and block starts."""
  k_GxBxSxNxK, v_GxBxSxNxK = _split_blocks(k, block), _split_blocks(v, block)
  mask_blocks = None
  if mask is not None and mask.shape[-1] != 1:
    # [b, n, l, S] -> [G, b, n, l, block]: keep broadcast dims at size 1 so a [B,1,1,S]
    # padding mask stays O(B·S).
    m = jnp.moveaxis(mask, 3, 1)
    mask_blocks = jnp.moveaxis(_split_blocks(m, block), 2, -1)
  starts_G = jnp.arange(k_GxBxSxNxK.shape[0]) * block
  return k_GxBxSxNxK, v_GxBxSxNxK, mask_blocks, starts_G


def _visible(start, block, length_q, length_k, mask, mask_block, causal):
  """[b, n, L, block] bool: which (query, key-in-block) pairs may attend."""
  j_S = start + jnp.arange(block)
  vis = (j_S < length_k)[None, None, None, :]  # padding keys of the last block
  if causal:
    i_L = jnp.arange(length_q)
    vis = vis & (j_S[None, :] <= i_L[:, None] + (length_k - length_q))[None, None]
  if mask_block is not None:
    vis = vis & mask_block
  elif mask is not None:  # mask broadcast over keys
    vis = vis & mask
  return vis


def _acc_dtype(dtype):
  """Statistics and accumulators: float32, or float64 for float64 inputs (gradient checks)."""
  return jnp.promote_types(dtype, jnp.float32)


def _logits(q, k_blk, scale):
  """[B, N, L, block] logits of one key block, in `_acc_dtype` (float32 for bf16/f32)."""
  acc = _acc_dtype(q.dtype)
  return jnp.einsum('blnk,bsnk->bnls', q, k_blk, preferred_element_type=acc) * scale


# ---------------------------------------------------------------- the online-softmax accumulator
# Blockwise and ring attention fold key blocks one at a time into running float32 statistics
# (Milakov & Gimelshein 2018): row max m, l = sum exp(s - m), acc = sum exp(s - m) v.

class SoftmaxStats(NamedTuple):
  m_BxNxL: jax.Array
  l_BxNxL: jax.Array
  acc_BxNxLxK: jax.Array


def softmax_init(batch: int, heads: int, length_q: int, head: int,
                 dtype=jnp.float32) -> SoftmaxStats:
  """The statistics of rows that have seen no key yet (float32 unless dtype is float64)."""
  dtype = _acc_dtype(dtype)
  return SoftmaxStats(jnp.full((batch, heads, length_q), -jnp.inf, dtype),
                      jnp.zeros((batch, heads, length_q), dtype),
                      jnp.zeros((batch, heads, length_q, head), dtype))


def softmax_update(stats: SoftmaxStats, q_BxLxNxK, k_BxSxNxK, v_BxSxNxK, visible_BxNxLxS,
                   scale: float) -> SoftmaxStats:
  """Fold one block of keys/values (pairs where `visible` is False are skipped) into `stats`."""
  s = jnp.where(visible_BxNxLxS, _logits(q_BxLxNxK, k_BxSxNxK, scale), -jnp.inf)
  m_new = jnp.maximum(stats.m_BxNxL, s.max(-1))
  # A row with nothing visible so far keeps m = -inf; shift by 0 there to avoid inf - inf.
  m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
  p = jnp.exp(s - m_safe[..., None])
  correction = jnp.exp(stats.m_BxNxL - m_safe)
  pv = jnp.einsum('bnls,bsnk->bnlk', p.astype(v_BxSxNxK.dtype), v_BxSxNxK,
                  preferred_element_type=stats.acc_BxNxLxK.dtype)
  return SoftmaxStats(m_new, stats.l_BxNxL * correction + p.sum(-1),
                      stats.acc_BxNxLxK * correction[..., None] + pv)


def softmax_finalize(stats: SoftmaxStats, dtype):
  """(out_BxLxNxK in `dtype`, lse_BxNxL float32); a row that saw no key gives 0 and lse = +inf."""
  m, l, acc = stats
  seen = l > 0
  out_BxNxLxK = jnp.where(seen[..., None], acc / jnp.where(seen, l, 1.0)[..., None], 0.0)
  # +inf for empty rows makes exp(s - lse) = 0 in the backward pass.
  lse_BxNxL = jnp.where(seen, m + jnp.log(jnp.where(seen, l, 1.0)), jnp.inf)
  return jnp.swapaxes(out_BxNxLxK, 1, 2).astype(dtype), lse_BxNxL


# ---------------------------------------------------------------- blockwise (flash-style)

def _blockwise_fwd_impl(q, k, v, mask, causal, block):
  batch, length_q, heads, head = q.shape
  length_k = k.shape[1]
  scale = 1.0 / np.sqrt(head)
  k_blocks, v_blocks, mask_blocks, starts = _key_blocks(k, v, mask, block)

  def body(stats, xs):
    k_blk, v_blk, mask_blk, start = xs
    vis = _visible(start, block, length_q, length_k, mask, mask_blk, causal)
    return softmax_update(stats, q, k_blk, v_blk, vis, scale), None

  stats, _ = jax.lax.scan(body, softmax_init(batch, heads, length_q, head, q.dtype),
                          (k_blocks, v_blocks, mask_blocks, starts))
  return softmax_finalize(stats, q.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _blockwise(q, k, v, mask, causal, block):
  return _blockwise_fwd_impl(q, k, v, mask, causal, block)[0]


def _blockwise_fwd(q, k, v, mask, causal, block):
  out, lse = _blockwise_fwd_impl(q, k, v, mask, causal, block)
  return out, (q, k, v, mask, out, lse)


def _blockwise_bwd(causal, block, res, g_BxLxNxK):
  q, k, v, mask, out, lse_BxNxL = res
  length_q, head = q.shape[1], q.shape[-1]
  length_k = k.shape[1]
  scale = 1.0 / np.sqrt(head)
  k_blocks, v_blocks, mask_blocks, starts = _key_blocks(k, v, mask, block)
  acc = _acc_dtype(q.dtype)
  g32 = g_BxLxNxK.astype(acc)
  # D_i = sum_k dO_ik O_ik: the softmax Jacobian's row term (FlashAttention-2, eq. in §3.1).
  delta_BxNxL = jnp.einsum('blnk,blnk->bnl', g32, out.astype(acc))

  def body(dq_BxLxNxK, xs):
    k_blk, v_blk, mask_blk, start = xs
    s = _logits(q, k_blk, scale)
    vis = _visible(start, block, length_q, length_k, mask, mask_blk, causal)
    p = jnp.where(vis, jnp.exp(s - lse_BxNxL[..., None]), 0.0)
    dv_blk = jnp.einsum('bnls,blnk->bsnk', p, g32)
    dp = jnp.einsum('blnk,bsnk->bnls', g32, v_blk.astype(acc))
    ds = p * (dp - delta_BxNxL[..., None]) * scale
    dq_BxLxNxK = dq_BxLxNxK + jnp.einsum('bnls,bsnk->blnk', ds, k_blk.astype(acc))
    dk_blk = jnp.einsum('bnls,blnk->bsnk', ds, q.astype(acc))
    return dq_BxLxNxK, (dk_blk, dv_blk)

  dq, (dk_blocks, dv_blocks) = jax.lax.scan(
      body, jnp.zeros(q.shape, acc), (k_blocks, v_blocks, mask_blocks, starts))

  def merge(x_GxBxSxNxK):
    x = jnp.moveaxis(x_GxBxSxNxK, 0, 1)
    return x.reshape((x.shape[0], -1) + x.shape[3:])[:, :length_k]
  dmask = None if mask is None else np.zeros(mask.shape, jax.dtypes.float0)
  return (dq.astype(q.dtype), merge(dk_blocks).astype(k.dtype),
          merge(dv_blocks).astype(v.dtype), dmask)


_blockwise.defvjp(_blockwise_fwd, _blockwise_bwd)


def attention(q_BxLxNxK, k_BxSxNxK, v_BxSxNxK, *, mask_BxNxLxS=None, causal: bool = False,
              implementation: str = 'auto', block_size: int = 512):
  """Multi-head scaled dot-product attention, softmax(q k^T / sqrt(K)) v.

  Args:
    q_BxLxNxK: queries (N heads of size K).
    k_BxSxNxK, v_BxSxNxK: keys and values.
    mask_BxNxLxS: optional bool mask broadcastable to [B, N, L, S], True = may attend
      (e.g. `padding_mask(mask_BxS)` of shape [B, 1, 1, S]).
    causal: bottom-right aligned causality: query i sees key j iff j <= i + (S - L).
    implementation: 'auto' | 'dense' | 'blockwise' (see the module docstring) | 'ring' (sequence
      split over the mesh's 'seq' axis; see `ring_attention`).
    block_size: keys per block of the blockwise implementation.
  Returns:
    [B, L, N, K] in q's dtype; logits and softmax are float32. Rows that see no key are 0.
  """
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f'unknown attention implementation {implementation!r}; '
                     f'valid: {", ".join(IMPLEMENTATIONS)}')
  if block_size < 1:
    raise ValueError(f'block_size must be positive, got {block_size}')
  if implementation == 'ring':  # the sequence is split over the mesh's 'seq' axis (parallel.seq)
    return ring_attention(q_BxLxNxK, k_BxSxNxK, v_BxSxNxK, mask_BxNxLxS=mask_BxNxLxS,
                          causal=causal)
  mask = _as_4d(mask_BxNxLxS)
  length_q, length_k = q_BxLxNxK.shape[1], k_BxSxNxK.shape[1]
  if implementation == 'auto':
    dense = (length_q * length_k <= AUTO_BLOCKWISE_MIN_AREA
             or _cudnn_ok(q_BxLxNxK, mask, causal, length_q, length_k))
    implementation = 'dense' if dense else 'blockwise'
  if implementation == 'dense':
    return _dense(q_BxLxNxK, k_BxSxNxK, v_BxSxNxK, mask, causal)
  return _blockwise(q_BxLxNxK, k_BxSxNxK, v_BxSxNxK, mask, causal, min(block_size, length_k))


# ---------------------------------------------------------------- ring (sequence-parallel)

def _key_mask(mask, batch: int, length_k: int):
  """[B, S] bool key padding mask from None or a mask broadcastable as [B, 1, 1, S]."""
  mask = jnp.ones((1, 1, 1, length_k), bool) if mask is None else _as_4d(mask)
  if mask.shape[1] != 1 or mask.shape[2] != 1:
    raise ValueError('ring attention takes a key padding mask [B, 1, 1, S] (and causal=True), '
                     f'not a per-query mask of shape {mask.shape}')
  return jnp.broadcast_to(mask[:, 0, 0, :], (batch, length_k))


def _axis_or_none(mesh, name: str, size: int):
  """`name` if the mesh has that axis and it divides `size` (so the dim can be sharded)."""
  shardable = name in mesh.axis_names and mesh.shape[name] > 1 and size % mesh.shape[name] == 0
  return name if shardable else None


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
    """Fold in the key chunk that started on device `src`."""
    vis = kmask[:, None, None, :]
    if causal:
      k_pos_S = src * length_k + jnp.arange(length_k)
      vis = vis & (k_pos_S[None, :] <= q_pos_L[:, None])[None, None]
    return softmax_update(stats, q_BxLxNxK, k, v, vis, scale)

  @jax.checkpoint  # recompute each round's logits in the backward pass instead of saving them
  def round_(carry, r):
    stats, k, v, kmask = carry
    # Send the chunk on before using it: the transfer overlaps this round's compute.
    nxt = tuple(jax.lax.ppermute(x, axis, perm) for x in (k, v, kmask))
    stats = attend(stats, k, v, kmask, (me - r) % ring)
    return (stats, *nxt), None

  carry = (softmax_init(batch, heads, length_q, head), k_BxSxNxK, v_BxSxNxK, kmask_BxS)
  if ring > 1:
    carry, _ = jax.lax.scan(round_, carry, jnp.arange(ring - 1))
  stats, k, v, kmask = carry
  stats = attend(stats, k, v, kmask, (me - (ring - 1)) % ring)  # the last chunk: no send
  return softmax_finalize(stats, q_BxLxNxK.dtype)[0]


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
    [B, L, N, K] in q's dtype, equal to the dense implementation up to float error.
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
  b, n = _axis_or_none(mesh, 'data', batch), _axis_or_none(mesh, 'model', heads)
  qkv_spec, mask_spec = P(b, axis, n, None), P(b, axis)
  body = functools.partial(_ring_shard, causal=causal, axis=axis, ring=ring)
  # check_vma=False: the scan carry starts replicated and becomes device-varying.
  return jax.shard_map(body, mesh=mesh, in_specs=(qkv_spec, qkv_spec, qkv_spec, mask_spec),
                       out_specs=qkv_spec, check_vma=False)(
                           q_BxLxNxK, k_BxSxNxK, v_BxSxNxK, kmask_BxS)
