"""Pieces every model shares: input encoders, pooling, output heads."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from ltmjax.tasks.base import TaskSpec


class InputEncoder(nn.Module):
  """Tokens through an embedding table, real-valued features through a linear map."""
  spec: TaskSpec
  dim: int

  @nn.compact
  def __call__(self, inputs):
    if self.spec.input_kind == 'tokens':
      return nn.Embed(self.spec.input_dim, self.dim, name='embed')(inputs)
    if self.spec.input_kind == 'real':
      x = inputs if jnp.issubdtype(inputs.dtype, jnp.floating) else inputs.astype(jnp.float32)
      return nn.Dense(self.dim, name='input_proj')(x)
    raise ValueError(f'unknown input kind {self.spec.input_kind!r}; known: tokens, real')


def last_valid_index(mask_BxT, length: int):
  """Index of each row's last real position ([B] int32); T-1 when there is no mask."""
  if mask_BxT is None:
    return None
  return jnp.maximum(mask_BxT.sum(-1).astype(jnp.int32) - 1, 0)


def pool(ys_BxTxH, mask_BxT, how: str, *, bidirectional: bool = False):
  """Sequence features [B, H] from per-position features.

  how: 'last' (the last real position; for a bidirectional encoder the forward half at
  the last position and the backward half at the first), 'mean' (masked mean), or
  'first' (position 0, a CLS token).
  """
  batch, length, _ = ys_BxTxH.shape
  if how == 'mean':
    if mask_BxT is None:
      return ys_BxTxH.mean(axis=1)
    m = mask_BxT[..., None].astype(ys_BxTxH.dtype)
    return (ys_BxTxH * m).sum(1) / jnp.maximum(m.sum(1), 1.0)
  if how == 'first':
    return ys_BxTxH[:, 0]
  if how == 'last':
    last_B = last_valid_index(mask_BxT, length)
    at_last = ys_BxTxH[:, -1] if last_B is None else ys_BxTxH[jnp.arange(batch), last_B]
    if not bidirectional:
      return at_last
    half = ys_BxTxH.shape[-1] // 2
    return jnp.concatenate([at_last[:, :half], ys_BxTxH[:, 0, half:]], axis=-1)
  raise ValueError(f'unknown pooling {how!r}; known: last, mean, first')


# ----------------------------------------------------------------------------- streaming pool
# A sequence read chunk by chunk pools as it goes: the pool state is part of a model's carry,
# so the head sees the same features as `pool` over the whole sequence.

def pool_init(how: str, batch: int, dim: int, dtype=jnp.float32):
  """The pool state before any chunk: {'sum' [B, H], 'count' [B]} for 'mean', else
  {'features' [B, H], 'seen' [B] bool} ('last': at the latest real position; 'first')."""
  if how == 'mean':
    return {'sum': jnp.zeros((batch, dim), dtype), 'count': jnp.zeros((batch,), dtype)}
  if how in ('last', 'first'):
    return {'features': jnp.zeros((batch, dim), dtype), 'seen': jnp.zeros((batch,), bool)}
  raise ValueError(f'unknown pooling {how!r}; known: last, mean, first')


def pool_update(state, ys_BxTxH, mask_BxT, how: str):
  """The pool state after one more chunk of features (padded positions masked out)."""
  batch, length, _ = ys_BxTxH.shape
  mask_BxT = jnp.ones((batch, length), bool) if mask_BxT is None else mask_BxT.astype(bool)
  if how == 'mean':
    m = mask_BxT[..., None].astype(ys_BxTxH.dtype)
    return {'sum': state['sum'] + (ys_BxTxH * m).sum(1),
            'count': state['count'] + m[..., 0].sum(1)}
  any_B = mask_BxT.any(-1)
  if how == 'last':
    at_B = ys_BxTxH[jnp.arange(batch), last_valid_index(mask_BxT, length)]
    take_B = any_B
  else:   # 'first': position 0 of the sequence, as `pool`
    at_B, take_B = ys_BxTxH[:, 0], ~state['seen']
  return {'features': jnp.where(take_B[:, None], at_B.astype(state['features'].dtype),
                                state['features']),
          'seen': state['seen'] | any_B | (how == 'first')}


def pool_read(state, how: str):
  """Features [B, H] of a pool state."""
  if how == 'mean':
    return state['sum'] / jnp.maximum(state['count'], 1.0)[:, None]
  return state['features']


class OutputHead(nn.Module):
  """Per-example ('sequence') or per-position ('token') outputs of size spec.num_outputs."""
  spec: TaskSpec
  pool: str = 'last'
  bidirectional: bool = False

  @nn.compact
  def __call__(self, ys_BxTxH, mask_BxT=None, *, features_BxH=None):
    """features_BxH: already pooled features ('sequence' outputs of a streamed sequence)."""
    if self.spec.output_kind == 'sequence':
      feats_BxH = features_BxH
      if feats_BxH is None:
        feats_BxH = pool(ys_BxTxH, mask_BxT, self.pool, bidirectional=self.bidirectional)
      return nn.Dense(self.spec.num_outputs, name='head')(feats_BxH)
    if self.spec.output_kind == 'token':
      return nn.Dense(self.spec.num_outputs, name='head')(ys_BxTxH)
    raise ValueError(f'unknown output kind {self.spec.output_kind!r}; known: sequence, token')
