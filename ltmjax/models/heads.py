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


class OutputHead(nn.Module):
  """Per-example ('sequence') or per-position ('token') outputs of size spec.num_outputs."""
  spec: TaskSpec
  pool: str = 'last'
  bidirectional: bool = False

  @nn.compact
  def __call__(self, ys_BxTxH, mask_BxT=None):
    if self.spec.output_kind == 'sequence':
      feats_BxH = pool(ys_BxTxH, mask_BxT, self.pool, bidirectional=self.bidirectional)
      return nn.Dense(self.spec.num_outputs, name='head')(feats_BxH)
    if self.spec.output_kind == 'token':
      return nn.Dense(self.spec.num_outputs, name='head')(ys_BxTxH)
    raise ValueError(f'unknown output kind {self.spec.output_kind!r}; known: sequence, token')
