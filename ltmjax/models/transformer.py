"""Pre-LayerNorm Transformer: a bidirectional encoder, or a causal decoder for per-token tasks.

Parameter names are a contract with the sharding rules (ltmjax/parallel.py): every block
'block_{l}' holds 'attention' with DenseGeneral kernels 'query', 'key', 'value' [D, N, K]
and 'out' [N, K, D], and the MLP Denses 'mlp_in' [D, F] and 'mlp_out' [F, D].
"""
from __future__ import annotations

import functools
from typing import Any, Dict

import flax.linen as nn
import jax
import jax.numpy as jnp

from ltmjax import attention as attn_lib
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


class MultiHeadAttention(nn.Module):
  """Projections to N heads of size K, `ltmjax.attention.attention`, and back to D."""
  heads: int
  implementation: str = 'auto'
  block_size: int = 512
  rotary: bool = False
  causal: bool = False

  @nn.compact
  def __call__(self, x_BxLxD, kv_BxSxD, mask_BxNxLxS=None, positions_BxL=None,
               key_positions_BxS=None):
    dim = x_BxLxD.shape[-1]
    if dim % self.heads:
      raise ValueError(f'model.dim {dim} is not divisible by model.heads {self.heads}')
    proj = functools.partial(nn.DenseGeneral, features=(self.heads, dim // self.heads), axis=-1)
    q_BxLxNxK = proj(name='query')(x_BxLxD)
    k_BxSxNxK = proj(name='key')(kv_BxSxD)
    v_BxSxNxK = proj(name='value')(kv_BxSxD)
    if self.rotary:
      q_BxLxNxK = attn_lib.apply_rotary(q_BxLxNxK, positions_BxL)
      k_BxSxNxK = attn_lib.apply_rotary(k_BxSxNxK, key_positions_BxS)
    o_BxLxNxK = attn_lib.attention(q_BxLxNxK, k_BxSxNxK, v_BxSxNxK, mask_BxNxLxS=mask_BxNxLxS,
                                   causal=self.causal, implementation=self.implementation,
                                   block_size=self.block_size)
    return nn.DenseGeneral(dim, axis=(-2, -1), name='out')(o_BxLxNxK)


class TransformerBlock(nn.Module):
  """x + Drop(MHA(LN(x))), then x + Drop(MLP(LN(x))) with a GELU MLP.

  Call as block(x_BxLxD, mask_BxNxLxS, positions_BxL, prefix_BxMxD, prefix_positions_BxM);
  all but x may be None. With a prefix (e.g. memory slots) the queries of x attend over
  LN([prefix ; x]) and, when causal, see the whole prefix and x causally. Positions are
  needed only with rotary=True (prefix positions then too, if there is a prefix).
  Options are fields rather than call arguments so that `nn.remat` needs no static args.
  """
  dim: int
  heads: int
  mlp_dim: int
  dropout: float = 0.0
  attention: str = 'auto'
  block_size: int = 512
  rotary: bool = False
  causal: bool = False
  deterministic: bool = True

  @nn.compact
  def __call__(self, x_BxLxD, mask_BxNxLxS=None, positions_BxL=None, prefix_BxMxD=None,
               prefix_positions_BxM=None):
    drop = nn.Dropout(self.dropout, deterministic=self.deterministic)
    ln_attn = nn.LayerNorm(name='ln_attn')
    h_BxLxD = ln_attn(x_BxLxD)
    kv_BxSxD, key_positions_BxS = h_BxLxD, positions_BxL
    if prefix_BxMxD is not None:
      kv_BxSxD = jnp.concatenate([ln_attn(prefix_BxMxD).astype(h_BxLxD.dtype), h_BxLxD], axis=1)
      if self.rotary:
        key_positions_BxS = jnp.concatenate([prefix_positions_BxM, positions_BxL], axis=1)
    if self.rotary and positions_BxL is None:
      raise ValueError('a rotary TransformerBlock needs positions_BxL')
    a_BxLxD = MultiHeadAttention(self.heads, self.attention, self.block_size, self.rotary,
                                 self.causal, name='attention')(
                                     h_BxLxD, kv_BxSxD, mask_BxNxLxS, positions_BxL,
                                     key_positions_BxS)
    x_BxLxD = x_BxLxD + drop(a_BxLxD)
    h_BxLxF = nn.gelu(nn.Dense(self.mlp_dim, name='mlp_in')(nn.LayerNorm(name='ln_mlp')(x_BxLxD)))
    return x_BxLxD + drop(nn.Dense(self.dim, name='mlp_out')(drop(h_BxLxF)))


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

    block_cls = TransformerBlock
    if self.remat != 'none':
      block_cls = nn.remat(TransformerBlock, policy=REMAT_POLICIES[self.remat])
    for layer in range(self.layers):
      x_BxTxD = block_cls(self.dim, self.heads, self.mlp_dim, self.dropout, self.attention,
                          self.block_size, rotary=self.positions == 'rotary', causal=causal,
                          deterministic=not train, name=f'block_{layer}')(
                              x_BxTxD, mask_Bx1x1xT, positions_BxT)
    ys_BxTxD = nn.LayerNorm(name='ln_final')(x_BxTxD)
    return OutputHead(self.spec, 'first' if use_cls else self.pool)(ys_BxTxD, mask)


def default_config() -> Dict[str, Any]:
  """The `model` config group of 'transformer'."""
  return dict(dim=128, heads=4, layers=2, mlp_dim=512, dropout=0.1, positions='sinusoidal',
              pool='mean', attention='auto', block_size=512, remat='none')


def build(cfg, spec: TaskSpec) -> nn.Module:
  return Transformer(spec=spec, **{k: cfg[k] for k in default_config()})
