"""Pre-LayerNorm Transformer: a bidirectional encoder, or a causal decoder for per-token tasks.

The blocks are `ltmjax.blocks` (shared with LTM-T): 'block_{l}' holds the `blocks.block_init`
dict ('ln_attn', 'attention' with 'query', 'key', 'value' {'kernel' [D, N, K], 'bias'} and
'out' {'kernel' [N, K, D], 'bias'}, 'ln_mlp', 'mlp_in' [D, F], 'mlp_out' [F, D]), the
names the sharding rules (ltmjax/parallel.py) match; 'ln_final' is the last LayerNorm.
"""
from __future__ import annotations

import functools
from typing import Any, Dict

import flax.linen as nn
import jax
import jax.numpy as jnp

from ltmjax import attention as attn_lib
from ltmjax import blocks
from ltmjax.models.heads import InputEncoder, OutputHead
from ltmjax.tasks.base import TaskSpec

POSITIONS = ('sinusoidal', 'learned', 'rotary', 'none')
POOLS = ('mean', 'cls', 'last')
# remat of each block: 'full' recomputes everything in the backward pass; 'dots' keeps the
# matmuls without batch dimensions (the weight projections), never the [L, S] logits.
REMAT_POLICIES = {
    'none': None,
    'full': jax.checkpoint_policies.nothing_saveable,
    'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _check(name: str, value, valid):
  if value not in valid:
    raise ValueError(f'unknown model.{name} {value!r}; valid: {", ".join(valid)}')


class Transformer(nn.Module):
  """Encoder -> positions -> L pre-LN blocks -> final LayerNorm -> head.

  spec.causal gives a decoder-only model (causal attention, per-token outputs); otherwise a
  bidirectional encoder whose padded keys are masked out and whose features are pooled
  ('mean' over real tokens, 'cls' from a prepended learned token, or 'last' real token).
  """
  spec: TaskSpec
  dim: int = 128
  heads: int = 4
  layers: int = 2
  mlp_dim: int = 512
  dropout: float = 0.1
  positions: str = 'sinusoidal'
  pool: str = 'mean'
  attention: str = 'auto'
  block_size: int = 512
  remat: str = 'none'

  @nn.compact
  def __call__(self, inputs, mask=None, *, train: bool = False):
    _check('positions', self.positions, POSITIONS)
    _check('pool', self.pool, POOLS)
    _check('attention', self.attention, attn_lib.IMPLEMENTATIONS)
    _check('remat', self.remat, tuple(REMAT_POLICIES))
    causal = self.spec.causal
    use_cls = self.pool == 'cls' and self.spec.output_kind == 'sequence'
    if use_cls and causal:
      raise ValueError("model.pool='cls' prepends a token that a causal model cannot pool "
                       "from; use pool='last' for causal sequence tasks")
    x_BxTxD = InputEncoder(self.spec, self.dim)(inputs)
    if self.spec.input_kind == 'tokens':
      # Embeddings start at scale 1/sqrt(D); sqrt(D) puts them on the scale of the positions.
      x_BxTxD = x_BxTxD * jnp.sqrt(float(self.dim)).astype(x_BxTxD.dtype)
    batch = x_BxTxD.shape[0]
    if use_cls:
      cls_D = self.param('cls', nn.initializers.normal(0.02), (self.dim,))
      x_BxTxD = jnp.concatenate(
          [jnp.broadcast_to(cls_D.astype(x_BxTxD.dtype), (batch, 1, self.dim)), x_BxTxD], axis=1)
      if mask is not None:
        mask = jnp.concatenate([jnp.ones((batch, 1), bool), mask.astype(bool)], axis=1)
    length = x_BxTxD.shape[1]
    if self.positions == 'sinusoidal':
      x_BxTxD = x_BxTxD + attn_lib.sinusoidal_positions(length, self.dim).astype(x_BxTxD.dtype)
    elif self.positions == 'learned':
      table = self.spec.seq_len + int(use_cls)
      if length > table:
        raise ValueError(f'learned positions cover {table} positions, inputs have {length}')
      pos_TxD = self.param('pos_embed', nn.initializers.normal(0.02), (table, self.dim))
      x_BxTxD = x_BxTxD + pos_TxD[:length].astype(x_BxTxD.dtype)
    positions_BxT = None
    if self.positions == 'rotary':
      positions_BxT = jnp.broadcast_to(jnp.arange(length), (batch, length))
    x_BxTxD = nn.Dropout(self.dropout, deterministic=not train)(x_BxTxD)
    mask_Bx1x1xT = None if mask is None else attn_lib.padding_mask(mask)

    block = functools.partial(blocks.block, causal=causal, implementation=self.attention,
                              block_size=self.block_size, dropout_rate=self.dropout)
    if self.remat != 'none':
      block = jax.checkpoint(block, policy=REMAT_POLICIES[self.remat])
    for layer in range(self.layers):
      p = self.param(f'block_{layer}', blocks.block_init, self.dim, self.heads, self.mlp_dim)
      rng = self.make_rng('dropout') if train and self.dropout > 0 else None
      x_BxTxD = block(p, x_BxTxD, mask_BxNxLxS=mask_Bx1x1xT, positions_BxL=positions_BxT,
                      rng=rng)
    ln_final = self.param('ln_final', lambda _: blocks.layer_norm_init(self.dim))
    ys_BxTxD = blocks.layer_norm(ln_final, x_BxTxD)
    self.sow('intermediates', 'features', ys_BxTxD)  # what the head sees (for inspection)
    return OutputHead(self.spec, 'first' if use_cls else self.pool)(ys_BxTxD, mask)


def default_config() -> Dict[str, Any]:
  """The `model` config group of 'transformer'."""
  return dict(dim=128, heads=4, layers=2, mlp_dim=512, dropout=0.1, positions='sinusoidal',
              pool='mean', attention='auto', block_size=512, remat='none')


def build(cfg, spec: TaskSpec) -> nn.Module:
  return Transformer(spec=spec, **{k: cfg[k] for k in default_config()})
