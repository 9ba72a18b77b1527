"""LTM-T's associative memory (memory_mode='associative'): a quasi-linear key-value matrix per
layer with a delta-rule write, after ARMT (Rodkin, Kuratov, Bulatov, Burtsev 2024,
arXiv:2407.04841; reference code RodkinIvan/associative-recurrent-memory-transformer,
`modeling_amt/language_modeling.py`: `DPFP`, `AssociativeLayerWrapper.associate` and
`.update_mem`). Pure functions; `ltmjax.cells.ltmt` calls them once per layer and segment.

State per layer: A [F, D] (keys' features x values) and z [F] (the sum of written keys'
features, the read's normaliser), both zero before the first segment. With
phi(x) = unit(DPFP_nu(x)) (nu = 3, F = 2·nu·E for a key width E):
  read(x):   q = phi(x W_q);  x + (q A) / (q·z + eps)     (added to the token states)
  write(m):  k = phi(m W_k),  v = m W_v,  v_old = (k A) / (k·z + eps),
             beta = sigmoid(m W_b + b_b)                          (a write gate per slot),
             A' = A + sum_slots beta · k ⊗ (v - v_old)           (the delta rule),
             z' = z + sum_slots gamma · k,  gamma = clip(1 - (k·z + eps) / |k|^2, 0, 1)
gamma (ARMT's `correction`, gradient stopped as there) counts a key in z only as far as it
is new. As in ARMT, W_v starts at zero (the memory starts silent), one head, and the
first segment needs no special case: with A = z = 0, v_old = 0 and gamma = 1 - eps.

Parameters: {'query': [D, E], 'key': [D, E], 'value': [D, D], 'gate': dense [D, 1]}.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

NU = 3          # DPFP's number of rolled products (ARMT's default)
EPS = 1e-5      # ARMT's denominator epsilon
Params = Any


def feature_dim(key_dim: int) -> int:
  """F = 2·nu·E: the width of phi's output for keys of width E."""
  return 2 * NU * key_dim


def init(key, dim: int, key_dim: int, dtype=jnp.float32) -> Params:
  """Parameters of one layer's associative memory (D = dim, E = key_dim)."""
  k_q, k_k, k_b = jax.random.split(key, 3)
  normal = jax.nn.initializers.lecun_normal()
  return {'query': normal(k_q, (dim, key_dim), dtype), 'key': normal(k_k, (dim, key_dim), dtype),
          'value': jnp.zeros((dim, dim), dtype),
          'gate': {'kernel': normal(k_b, (dim, 1), dtype), 'bias': jnp.zeros((1,), dtype)}}


def dpfp(x_xE):
  """Deterministic parameter-free projection (Schlag et al. 2021): [..., E] -> [..., 2·nu·E]
  of products of ReLU features with their rolled copies (non-negative)."""
  r = jnp.concatenate([jax.nn.relu(x_xE), jax.nn.relu(-x_xE)], axis=-1)
  rolled = jnp.concatenate([jnp.roll(r, j, axis=-1) for j in range(1, NU + 1)], axis=-1)
  return jnp.tile(r, (1,) * (r.ndim - 1) + (NU,)) * rolled


def features(w_DxE, x_BxTxD):
  """phi(x W): unit-length DPFP features [B, T, F] (the square root's epsilon keeps the
  gradient finite at a zero vector, where ARMT's F.normalize clamps the norm)."""
  f = dpfp(x_BxTxD @ w_DxE.astype(x_BxTxD.dtype))
  return f * jax.lax.rsqrt(jnp.sum(f * f, axis=-1, keepdims=True) + 1e-12)


def read(p, a_BxFxD, z_BxF, x_BxTxD):
  """What the memory returns for each of x's tokens: (q A) / (q·z + eps), [B, T, D]."""
  q = features(p['query'], x_BxTxD)
  num = jnp.einsum('btf,bfd->btd', q, a_BxFxD)
  return num / (jnp.einsum('btf,bf->bt', q, z_BxF) + EPS)[..., None]


def write(p, a_BxFxD, z_BxF, m_BxMxD):
  """The delta-rule write of the slots m (module docstring) -> (A', z', beta_BxMx1)."""
  k = features(p['key'], m_BxMxD)
  v = m_BxMxD @ p['value'].astype(m_BxMxD.dtype)
  denom_BxM = jnp.einsum('bmf,bf->bm', k, z_BxF) + EPS
  v_old = jnp.einsum('bmf,bfd->bmd', k, a_BxFxD) / denom_BxM[..., None]
  gamma = jax.lax.stop_gradient(jnp.clip(1.0 - denom_BxM / jnp.sum(k * k, -1), 0.0, 1.0))
  beta = jax.nn.sigmoid(m_BxMxD @ p['gate']['kernel'].astype(m_BxMxD.dtype)
                        + p['gate']['bias'].astype(m_BxMxD.dtype))
  a_new = a_BxFxD + jnp.einsum('bmf,bmd->bfd', k, beta * (v - v_old))
  z_new = z_BxF + jnp.einsum('bm,bmf->bf', gamma, k)
  return a_new, z_new, beta
