"""LSTM and GRU encoders (stacked, optionally bidirectional) built on the pure cells."""
from __future__ import annotations

from typing import Any, Dict

import flax.linen as nn
import jax

from ltmjax import cells, recurrence
from ltmjax.models.heads import InputEncoder, OutputHead
from ltmjax.tasks.base import TaskSpec


class RecurrentModel(nn.Module):
  """Encoder -> L recurrent layers (lax.scan over time) -> head.

  The cell parameters are the plain dicts of `ltmjax.cells` (PyTorch gate layout),
  stored under 'layer_{l}' (with 'fw'/'bw' when bidirectional).
  """
  spec: TaskSpec
  cell: str = 'lstm'
  hidden: int = 128
  layers: int = 1
  embed_dim: int = 64
  bidirectional: bool = False
  peephole: bool = False
  dropout: float = 0.0
  pool: str = 'last'
  unroll: int = 1
  remat: bool = False

  @nn.compact
  def __call__(self, inputs, mask=None, *, train: bool = False):
    if self.bidirectional and self.spec.causal:
      raise ValueError('a bidirectional encoder sees the future; set model.bidirectional=False '
                       'for causal (per-token/language-model) tasks')
    cell = cells.get(self.cell)
    opts = {'peephole': True} if self.peephole else {}
    if self.peephole and self.cell != 'lstm':
      raise ValueError(f'model.peephole applies to the lstm cell only, not {self.cell!r}')
    x_BxTxE = InputEncoder(self.spec, self.embed_dim)(inputs)
    layer_params = []
    for layer in range(self.layers):
      in_dim = self.embed_dim if layer == 0 else self.hidden * (2 if self.bidirectional else 1)

      def init(key, in_dim=in_dim):
        if not self.bidirectional:
          return cell.init(key, in_dim, self.hidden, **opts)
        k_fw, k_bw = jax.random.split(key)
        return {'fw': cell.init(k_fw, in_dim, self.hidden, **opts),
                'bw': cell.init(k_bw, in_dim, self.hidden, **opts)}
      layer_params.append(self.param(f'layer_{layer}', init))
    drop = nn.Dropout(self.dropout, deterministic=not train)
    _, ys_BxTxH = recurrence.run_stack(
        cell, layer_params, drop(x_BxTxE), mask_BxT=mask, bidirectional=self.bidirectional,
        between=lambda _, ys: drop(ys), unroll=self.unroll, remat=self.remat)
    return OutputHead(self.spec, self.pool, self.bidirectional)(drop(ys_BxTxH), mask)


def default_config() -> Dict[str, Any]:
  """The `model` config group of 'lstm' and 'gru' (the cell is the model's name)."""
  return dict(hidden=128, layers=1, embed_dim=64, bidirectional=False,
              peephole=False, dropout=0.0, pool='last', unroll=1, remat=False)


def build(cfg, spec: TaskSpec) -> nn.Module:
  return RecurrentModel(spec=spec, cell=cfg.name, **{k: cfg[k] for k in default_config()})
