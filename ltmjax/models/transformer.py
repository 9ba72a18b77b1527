"""Pre-LayerNorm Transformer: a bidirectional encoder, or a causal decoder for per-token tasks.

The blocks are `ltmjax.blocks` (shared with LTM-T): 'block_{l}' holds the `blocks.block_init`
dict ('ln_attn', 'attention' with 'query', 'key', 'value' {'kernel' [D, N, K], 'bias'} and
'out' {'kernel' [N, K, D], 'bias'}, 'ln_mlp', 'mlp_in' [D, F], 'mlp_out' [F, D]), the
names the sharding rules (ltmjax/parallel.py) match; 'ln_final' is the last LayerNorm.

A causal model (`CausalTransformer`, what `build` gives for a causal task) takes and returns
a carry, its KV cache: {'length': [B] int32 filled positions, 'layers': per block
{'k', 'v': [B, S, N, K]}} of capacity S. Fed a chunk, it writes the chunk's keys and values
after the filled positions, attends over the cache, and places the chunk at positions
length, length + 1, ... so that chunks fed in turn give the logits of the whole text.
"""
from __future__ import annotations

import functools
from typing import Any, Dict, Optional

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

  @property
  def max_positions(self) -> Optional[int]:
    """How many positions the model has (a learned table of task.seq_len), None: unbounded."""
    return self.spec.seq_len if self.positions == 'learned' else None

  def _empty_cache(self, batch: int, capacity: int, dtype=jnp.float32):
    table = self.max_positions
    if table and capacity > table:
      raise ValueError(f'learned positions cover {table} tokens (task.seq_len), a KV cache of '
                       f'{capacity} needs more: use model.positions=sinusoidal or rotary, or '
                       f'at most {table} tokens')
    layer = blocks.empty_cache(batch, capacity, self.heads, self.dim // self.heads, dtype)
    return {'length': layer.pop('length'), 'layers': [dict(layer) for _ in range(self.layers)]}

  @nn.compact
  def __call__(self, inputs, mask=None, *, train: bool = False, carry=None,
               return_carry: bool = False):
    """Args: inputs [B, T] tokens or [B, T, D_in]; mask [B, T] bool or None (with a carry:
    right padding, real tokens first); carry: a KV cache (causal models only; None with
    return_carry: an empty cache of T positions).

    Returns [B, C] ('sequence') or [B, T, C] ('token'); with return_carry also the carry.
    Logits are NaN where the chunk runs past the cache's capacity (never a wrap-around).
    """
    _check('positions', self.positions, POSITIONS)
    _check('pool', self.pool, POOLS)
    _check('attention', self.attention, attn_lib.IMPLEMENTATIONS)
    _check('remat', self.remat, tuple(REMAT_POLICIES))
    causal = self.spec.causal
    use_cls = self.pool == 'cls' and self.spec.output_kind == 'sequence'
    if use_cls and causal:
      raise ValueError("model.pool='cls' prepends a token that a causal model cannot pool "
                       "from; use pool='last' for causal sequence tasks")
    streaming = carry is not None or return_carry
    if streaming and not causal:
      raise ValueError('a bidirectional Transformer has no carry (each token attends to later '
                       'ones); only a causal one keeps a KV cache')
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
    if streaming and carry is None:
      carry = self._empty_cache(batch, length, x_BxTxD.dtype)
    # Token t of the chunk sits at position t, or after the cache's filled positions.
    positions_BxT = jnp.arange(length)[None]   # [1, T] without a cache
    span = length   # positions the encodings must cover
    if streaming:
      positions_BxT = carry['length'][:, None] + positions_BxT
      span = carry['layers'][0]['k'].shape[1] if self.layers else length
    if self.positions == 'sinusoidal':
      enc_SxD = attn_lib.sinusoidal_positions(span, self.dim)
      x_BxTxD = x_BxTxD + enc_SxD[positions_BxT].astype(x_BxTxD.dtype)
    elif self.positions == 'learned':
      table = self.spec.seq_len + int(use_cls)
      if span > table:
        raise ValueError(f'learned positions cover {table} positions, inputs need {span}')
      pos_TxD = self.param('pos_embed', nn.initializers.normal(0.02), (table, self.dim))
      x_BxTxD = x_BxTxD + pos_TxD[positions_BxT].astype(x_BxTxD.dtype)
    x_BxTxD = nn.Dropout(self.dropout, deterministic=not train)(x_BxTxD)
    # With a cache, padding (at the end of each row) is hidden by causality and overwritten
    # by the next chunk, as the filled length counts real tokens only.
    mask_Bx1x1xT = None if mask is None or streaming else attn_lib.padding_mask(mask)
    rotary_BxT = positions_BxT if self.positions == 'rotary' else None

    block = functools.partial(blocks.block, causal=causal, implementation=self.attention,
                              block_size=self.block_size, dropout_rate=self.dropout)
    if self.remat != 'none':
      block = jax.checkpoint(block, policy=REMAT_POLICIES[self.remat])
    new_layers = []
    for layer in range(self.layers):
      p = self.param(f'block_{layer}', blocks.block_init, self.dim, self.heads, self.mlp_dim)
      rng = self.make_rng('dropout') if train and self.dropout > 0 else None
      cache = None if not streaming else dict(carry['layers'][layer], length=carry['length'])
      x_BxTxD = block(p, x_BxTxD, mask_BxNxLxS=mask_Bx1x1xT, positions_BxL=rotary_BxT,
                      rng=rng, cache=cache)
      if streaming:
        x_BxTxD, cache = x_BxTxD
        new_layers.append({'k': cache['k'], 'v': cache['v']})
    ln_final = self.param('ln_final', lambda _: blocks.layer_norm_init(self.dim))
    ys_BxTxD = blocks.layer_norm(ln_final, x_BxTxD)
    self.sow('intermediates', 'features', ys_BxTxD)  # what the head sees (for inspection)
    out = OutputHead(self.spec, 'first' if use_cls else self.pool)(ys_BxTxD, mask)
    if not streaming:
      return out
    fits_B = carry['length'] + length <= span
    out = jnp.where(fits_B[:, None, None], out, jnp.nan)
    real_B = length if mask is None else mask.astype(jnp.int32).sum(-1)
    return out, {'length': carry['length'] + real_B, 'layers': new_layers}


class CausalTransformer(Transformer):
  """The decoder-only Transformer with its KV cache as the carry (see the module doc):
  `apply(v, x_chunk, mask_chunk, carry=c, return_carry=True)` -> (logits, carry) with
  `c = apply(v, B, S, method='initial_carry')`, a cache of S positions (prompt and
  generated tokens together; at most the learned position table). `stream_block` = 1.
  Unlike a recurrent state the cache grows with the text: a token attends over all S
  positions (masked past the filled ones), so its cost is O(S·D) per layer."""
  stream_block = 1
  kv_cache = True   # initial_carry takes the capacity

  def initial_carry(self, batch_size: int, capacity: int = 0):
    """An empty cache of `capacity` positions (0: the task's seq_len)."""
    return self._empty_cache(batch_size, capacity or self.spec.seq_len)


def default_config() -> Dict[str, Any]:
  """The `model` config group of 'transformer'."""
  return dict(dim=128, heads=4, layers=2, mlp_dim=512, dropout=0.1, positions='sinusoidal',
              pool='mean', attention='auto', block_size=512, remat='none')


def build(cfg, spec: TaskSpec) -> nn.Module:
  """A causal task gets the `CausalTransformer` (same parameters, plus the KV cache)."""
  model = CausalTransformer if spec.causal else Transformer
  return model(spec=spec, **{k: cfg[k] for k in default_config()})
