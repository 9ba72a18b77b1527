"""LTM-T model: input encoder -> segments -> LTM-T cell scanned over segments -> head.

The sequence is padded to whole segments (the padding is masked), cut into G segments
of S tokens, and `ltmjax.recurrence.run` scans the cell over the segment axis, so the
cost is linear in length: O(T·(S + M)) time and, with remat, O(G·M·D + S²) memory.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Dict

import flax.linen as nn
import jax.numpy as jnp

from ltmjax import attention, blocks, cells, recurrence
from ltmjax.cells import ltmt
from ltmjax.models import heads
from ltmjax.models.heads import InputEncoder, OutputHead
from ltmjax.tasks.base import TaskSpec

POSITIONS = ('sinusoidal', 'learned', 'none')
POOLS = ('mean', 'last', 'memory')


def make_cell(*, causal: bool = False, memory_mode: str = 'gated', segment=None,
              memory_norm: str = 'none', attention_impl: str = 'auto', block_size: int = 512):
  """`cells.make_ltmt`'s Cell with the memory bound (`memory_norm`, ltmjax.cells.ltmt) bound
  into its step too (checked here)."""
  ltmt.check_options(memory_mode=memory_mode, segment=segment, memory_norm=memory_norm)
  cell = cells.make_ltmt(causal=causal, memory_mode=memory_mode, segment=segment,
                         attention_impl=attention_impl, block_size=block_size)
  return dataclasses.replace(cell, step=functools.partial(cell.step, memory_norm=memory_norm))


class LTMTModel(nn.Module):
  """LTM-T over segments; the cell's parameters (`ltmjax.cells.ltmt`) are one dict under 'ltmt'.

  Streaming: `apply(v, x_chunk, mask_chunk, carry=c, return_carry=True)` -> (outputs, carry)
  with `c = apply(v, B, method='initial_carry')`; the carry is {'cell': the cell's carry,
  'pool': the head's pool state ('mean'/'last' pooling of 'sequence' tasks)}. Chunks of a
  multiple of `stream_block` (= segment) tokens fed in turn give the outputs of the whole
  sequence (segments line up; a last, shorter chunk is padded to whole segments).
  """
  spec: TaskSpec
  dim: int = 128
  heads: int = 4
  layers: int = 2
  mlp_dim: int = 512
  dropout: float = 0.0
  segment: int = 64
  memory_slots: int = 16
  memory_mode: str = 'gated'
  memory_norm: str = 'none'
  assoc_dim: int = 16
  positions: str = 'sinusoidal'
  pool: str = 'mean'
  attention: str = 'auto'
  block_size: int = 512
  remat: bool = True
  truncate_every: int = 0

  def cell(self):
    return make_cell(causal=self.spec.causal, memory_mode=self.memory_mode,
                     segment=self.segment, memory_norm=self.memory_norm,
                     attention_impl=self.attention, block_size=self.block_size)

  def _check(self):
    if self.positions not in POSITIONS:
      raise ValueError(f'unknown positions {self.positions!r}; known: {", ".join(POSITIONS)}')
    if self.pool not in POOLS:
      raise ValueError(f'unknown pool {self.pool!r}; known: {", ".join(POOLS)}')
    if self.pool == 'memory' and (self.spec.output_kind != 'sequence'
                                  or self.memory_mode == 'xl'):
      raise ValueError("pool='memory' reads the final written memory: it needs a 'sequence' "
                       "task and memory_mode='gated' or 'associative'")

  @property
  def stream_block(self) -> int:
    return self.segment

  def initial_carry(self, batch_size: int):
    """The carry before the first chunk (call with method='initial_carry' on bound params)."""
    carry = {'cell': self.cell().initial_carry(self.variables['params']['ltmt'], (batch_size,))}
    if self.spec.output_kind == 'sequence' and self.pool != 'memory':
      carry['pool'] = heads.pool_init(self.pool, batch_size, self.dim)
    return carry

  @nn.compact
  def __call__(self, inputs, mask=None, *, train: bool = False, carry=None,
               return_carry: bool = False):
    """Args: inputs [B, T] tokens or [B, T, D_in]; mask [B, T] bool or None; carry from
    `initial_carry` or a previous chunk (None: the whole sequence is in `inputs`).

    Returns [B, C] ('sequence') or [B, T, C] ('token'); with return_carry also the carry.
    """
    self._check()
    cell, seg = self.cell(), self.segment
    x_BxTxD = InputEncoder(self.spec, self.dim)(inputs)
    if self.spec.input_kind == 'tokens':
      # Embeddings start at scale 1/sqrt(D); sqrt(D) puts them on the scale of the positions.
      x_BxTxD = x_BxTxD * jnp.sqrt(float(self.dim)).astype(x_BxTxD.dtype)
    batch, length = x_BxTxD.shape[:2]
    mask_BxT = jnp.ones((batch, length), bool) if mask is None else mask.astype(bool)

    # Whole segments, and (for truncated BPTT) a whole number of truncation windows:
    # the extra segments are all padding, so they leave the memory unchanged.
    groups = -(-length // seg)
    if self.truncate_every and groups > self.truncate_every:
      groups = -(-groups // self.truncate_every) * self.truncate_every
    pad = groups * seg - length
    x_BxTxD = jnp.pad(x_BxTxD, ((0, 0), (0, pad), (0, 0)))
    pmask_BxT = jnp.pad(mask_BxT, ((0, 0), (0, pad)))
    x_BxGxSxD = x_BxTxD.reshape(batch, groups, seg, self.dim)
    mask_BxGxS = pmask_BxT.reshape(batch, groups, seg)

    if self.positions == 'sinusoidal':
      x_BxGxSxD = x_BxGxSxD + attention.sinusoidal_positions(seg, self.dim).astype(x_BxTxD.dtype)
    elif self.positions == 'learned':
      pos_SxD = self.param('pos_embed', nn.initializers.normal(0.02), (seg, self.dim))
      x_BxGxSxD = x_BxGxSxD + pos_SxD.astype(x_BxTxD.dtype)
    drop = nn.Dropout(self.dropout, deterministic=not train)
    x_BxGxSxD = drop(x_BxGxSxD)

    # The cell's inputs, for `ltmjax.diagnose` (kept only when 'intermediates' is mutable).
    self.sow('intermediates', 'segment_inputs', (x_BxGxSxD, mask_BxGxS))
    params = self.param('ltmt', lambda k: cell.init(
        k, self.dim, self.dim, memory_slots=self.memory_slots, heads=self.heads,
        layers=self.layers, mlp_dim=self.mlp_dim,
        assoc_dim=self.assoc_dim if self.memory_mode == 'associative' else 0))
    cell_carry, ys_BxGxSxD = recurrence.run(
        cell, params, {'x': x_BxGxSxD, 'mask': mask_BxGxS}, mask_BxT=mask_BxGxS.any(-1),
        carry=None if carry is None else carry['cell'],
        remat=self.remat, truncate_every=self.truncate_every or None)
    ys_BxTxD = drop(ys_BxGxSxD.reshape(batch, groups * seg, self.dim)[:, :length])

    streaming = carry is not None or return_carry
    if streaming and carry is None:
      carry = self.initial_carry(batch)
    new_carry = {'cell': cell_carry}
    if self.pool == 'memory':
      memory_ln = self.param('memory_ln', lambda _: blocks.layer_norm_init(self.dim))
      memory_BxMxD = blocks.layer_norm(memory_ln, ltmt.final_memory(cell_carry))
      out = OutputHead(self.spec, 'mean')(memory_BxMxD)
    elif streaming and 'pool' in carry:
      new_carry['pool'] = heads.pool_update(carry['pool'], ys_BxTxD, mask_BxT, self.pool)
      out = OutputHead(self.spec, self.pool)(
          ys_BxTxD, mask, features_BxH=heads.pool_read(new_carry['pool'], self.pool))
    else:
      out = OutputHead(self.spec, self.pool)(ys_BxTxD, mask)
    return (out, new_carry) if streaming else out


def default_config() -> Dict[str, Any]:
  """The `model` config group of 'ltmt'."""
  return dict(dim=128, heads=4, layers=2, mlp_dim=512, dropout=0.0, segment=64,
              memory_slots=16, memory_mode='gated', memory_norm='none', assoc_dim=16,
              positions='sinusoidal', pool='mean',
              attention='auto', block_size=512, remat=True, truncate_every=0)


def build(cfg, spec: TaskSpec) -> nn.Module:
  return LTMTModel(spec=spec, **{k: cfg[k] for k in default_config()})
