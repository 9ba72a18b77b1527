"""The residual recurrent model: a pre-LayerNorm residual stack of a "mixer" cell.

    x = InputEncoder(inputs)                        [B, T, D]
    x = x + dropout(cell(LayerNorm(x)))             per layer (`recurrence.run`)
    y = LayerNorm(x) -> OutputHead

The shape of the xLSTM and Mamba models (Beck et al. 2024, Fig. 1 and Sec. 2.4: residual
pre-LN blocks; Gu & Dao 2023, Sec. 3.4: the Mamba block in a residual stack with a norm
in front). A mixer cell takes input_dim == hidden_dim == D and returns y_BxD: whatever
projections the block has (up/down, gate, convolution) live in the cell. Cells whose
`family` is 'residual' get this model under their own name (ltmjax.models registry).

Parameters: 'layer_{l}' = {'ln': LayerNorm {'scale', 'bias'} [D], 'cell': the cell's params},
'ln_final'. The cell computes in the chunkwise form when `chunk_size` > 0 and it has one
(`Cell.chunk_step`), else step by step: the numbers are the same either way.

Streaming: `apply(v, x_chunk, mask_chunk, carry=c, return_carry=True)` -> (outputs, carry)
with `c = apply(v, B, method='initial_carry')`; the carry is {'cells': [per-layer cell
carry], 'pool': the head's pool state ('sequence' tasks)}, as `RecurrentModel`'s.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import flax.linen as nn

from ltmjax import blocks, cells, recurrence
from ltmjax.models import heads
from ltmjax.models.heads import InputEncoder, OutputHead
from ltmjax.tasks.base import TaskSpec


class ResidualRecurrentModel(nn.Module):
  """Encoder -> `layers` x [x + cell(LayerNorm(x))] -> LayerNorm -> head (module docstring).

  options: the cell's `init` keyword options as (key, value) pairs (hashable; the
  `model.<option>` config keys).
  """
  spec: TaskSpec
  cell: str
  dim: int = 128
  layers: int = 2
  dropout: float = 0.0
  pool: str = 'last'
  chunk_size: int = 0
  remat: bool = False
  options: Tuple[Tuple[str, Any], ...] = ()

  stream_block = 1   # chunks of any length stream exactly (chunk_step pads its own chunks)

  def initial_carry(self, batch_size: int):
    """The carry before the first chunk (call with method='initial_carry' on bound params)."""
    params, cell = self.variables['params'], cells.get(self.cell)
    carry = {'cells': [cell.initial_carry(params[f'layer_{l}']['cell'], (batch_size,))
                       for l in range(self.layers)]}
    if self.spec.output_kind == 'sequence':
      carry['pool'] = heads.pool_init(self.pool, batch_size, self.dim)
    return carry

  @nn.compact
  def __call__(self, inputs, mask=None, *, train: bool = False, carry=None,
               return_carry: bool = False):
    """Args: inputs [B, T] tokens or [B, T, D_in]; mask [B, T] bool or None; carry from
    `initial_carry` or a previous chunk (None: the whole sequence is in `inputs`).

    Returns [B, C] ('sequence') or [B, T, C] ('token'), and with return_carry the carry.
    """
    cell = cells.get(self.cell)
    options = dict(self.options)
    x_BxTxD = InputEncoder(self.spec, self.dim)(inputs)
    drop = nn.Dropout(self.dropout, deterministic=not train)
    x_BxTxD = drop(x_BxTxD)
    finals = []
    for layer in range(self.layers):
      p = self.param(f'layer_{layer}', lambda key: {
          'ln': blocks.layer_norm_init(self.dim),
          'cell': cell.init(key, self.dim, self.dim, **options)})
      c, y_BxTxD = recurrence.run(
          cell, p['cell'], blocks.layer_norm(p['ln'], x_BxTxD), mask_BxT=mask,
          carry=None if carry is None else carry['cells'][layer], chunk_size=self.chunk_size,
          remat=self.remat)
      x_BxTxD = x_BxTxD + drop(y_BxTxD.astype(x_BxTxD.dtype))
      finals.append(c)
    ln_final = self.param('ln_final', lambda _: blocks.layer_norm_init(self.dim))
    ys_BxTxD = blocks.layer_norm(ln_final, x_BxTxD)
    head = OutputHead(self.spec, self.pool)
    if carry is None and not return_carry:
      return head(ys_BxTxD, mask)
    if carry is None:
      carry = self.initial_carry(x_BxTxD.shape[0])
    new_carry, features = {'cells': finals}, None
    if 'pool' in carry:
      new_carry['pool'] = heads.pool_update(carry['pool'], ys_BxTxD, mask, self.pool)
      features = heads.pool_read(new_carry['pool'], self.pool)
    return head(ys_BxTxD, mask, features_BxH=features), new_carry


def default_config(cell_name: str) -> Dict[str, Any]:
  """The `model` group of a residual model of cell `cell_name`: the model's keys and the
  cell's `options` (their defaults). chunk_size: the cell's `Cell.chunk_size` (64 unless
  set) where the cell has a chunkwise form (`Cell.chunk_step`), else 0 (the step scan)."""
  cell = cells.get(cell_name)
  return dict(dim=128, layers=2, dropout=0.0, pool='last',
              chunk_size=cell.chunk_size if cell.chunk_step is not None else 0, remat=False,
              **cell.options)


def build(cfg, spec: TaskSpec) -> nn.Module:
  """The model of config group `cfg` (its name is the cell's) for a task spec."""
  cell = cells.get(cfg.name)
  return ResidualRecurrentModel(
      spec=spec, cell=cfg.name, dim=cfg.dim, layers=cfg.layers, dropout=cfg.dropout,
      pool=cfg.pool, chunk_size=cfg.chunk_size, remat=cfg.remat,
      options=tuple((k, cfg[k]) for k in cell.options))
