"""GRU cell as pure functions; `ltmjax.cells.base` bundles them into `GRU`.

Parameters: {'w_x': [D, 3H], 'w_h': [H, 3H], 'b_x': [3H], 'b_h': [3H]}, gate order r, z, n
as in PyTorch/cuDNN: n = tanh(x W_in + b_in + r * (h W_hn + b_hn)).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ltmjax.cells.initializers import orthogonal_blocks

Params = Any


def init(key, input_dim: int, hidden_dim: int, *, dtype=jnp.float32) -> Params:
  """GRU parameters in PyTorch/cuDNN layout.

  Returns:
    {'w_x': [D, 3H], 'w_h': [H, 3H], 'b_x': [3H], 'b_h': [3H]}, gate order r, z, n.
  """
  k_x, k_h = jax.random.split(key)
  return {
      'w_x': jax.nn.initializers.glorot_uniform()(k_x, (input_dim, 3 * hidden_dim), dtype),
      'w_h': orthogonal_blocks(k_h, hidden_dim, 3, dtype),
      'b_x': jnp.zeros((3 * hidden_dim,), dtype),
      'b_h': jnp.zeros((3 * hidden_dim,), dtype),
  }


def hidden_size(params) -> int:
  return params['w_h'].shape[0]


def initial_carry(params, batch_shape: tuple):
  """h, [*batch_shape, H] of zeros."""
  return jnp.zeros((*batch_shape, hidden_size(params)), params['w_h'].dtype)


def project(params, x_xD):
  """x W_x + b_x for any leading shape -> [..., 3H]."""
  return x_xD @ params['w_x'].astype(x_xD.dtype) + params['b_x'].astype(x_xD.dtype)


def step_projected(params, h_BxH, gx_Bx3H):
  """One GRU step from x W_x + b_x.

  Args:
    params: GRU parameters.
    h_BxH: previous hidden state.
    gx_Bx3H: projected input.
  Returns:
    (h', h'), h' = (1 - z) * n + z * h.
  """
  gh_Bx3H = h_BxH @ params['w_h'].astype(h_BxH.dtype) + params['b_h'].astype(h_BxH.dtype)
  xr, xz, xn = jnp.split(gx_Bx3H, 3, axis=-1)
  hr, hz, hn = jnp.split(gh_Bx3H, 3, axis=-1)
  r = jax.nn.sigmoid(xr + hr)
  z = jax.nn.sigmoid(xz + hz)
  n = jnp.tanh(xn + r * hn)
  h_new = (1.0 - z) * n + z * h_BxH
  return h_new, h_new


def step(params, h_BxH, x_BxD):
  """One GRU step: h_BxH, x_BxD -> (h', h'_BxH)."""
  return step_projected(params, h_BxH, project(params, x_BxD))
