"""LSTM cell (seeds 001-003) as pure functions; `ltmjax.cells.base` bundles them into `LSTM`.

Parameters: {'w_x': [D, 4H], 'w_h': [H, 4H], 'b': [4H]}, gate order i, f, g, o along the
last axis (PyTorch/cuDNN order: torch's `weight_ih_l0.T` is `w_x`, `bias_ih_l0 + bias_hh_l0`
is `b`). The peephole variant adds diagonal weights 'p_i', 'p_f' (seeing c_{t-1}) and
'p_o' (seeing c_t), each [H].
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ltmjax.cells.initializers import orthogonal_blocks

Params = Any


def init(key, input_dim: int, hidden_dim: int, *, peephole: bool = False,
         forget_bias: float = 1.0, dtype=jnp.float32) -> Params:
  """LSTM parameters; the forget-gate bias starts at `forget_bias` (1 by default).

  Args:
    key: PRNG key.
    input_dim: D, size of x_t.
    hidden_dim: H, size of h_t and c_t.
    peephole: add diagonal peephole weights p_i, p_f (on c_{t-1}) and p_o (on c_t).
  Returns:
    {'w_x': [D, 4H], 'w_h': [H, 4H], 'b': [4H]} (+ 'p_i', 'p_f', 'p_o': [H]).
  """
  k_x, k_h, k_p = jax.random.split(key, 3)
  params = {
      'w_x': jax.nn.initializers.glorot_uniform()(k_x, (input_dim, 4 * hidden_dim), dtype),
      'w_h': orthogonal_blocks(k_h, hidden_dim, 4, dtype),
      'b': jnp.zeros((4 * hidden_dim,), dtype).at[hidden_dim:2 * hidden_dim].set(forget_bias),
  }
  if peephole:
    scale = 1.0 / jnp.sqrt(hidden_dim)
    for name, k in zip(('p_i', 'p_f', 'p_o'), jax.random.split(k_p, 3)):
      params[name] = jax.random.uniform(k, (hidden_dim,), dtype, -scale, scale)
  return params


def hidden_size(params) -> int:
  return params['w_h'].shape[0]


def initial_carry(params, batch_shape: tuple):
  """(c, h), each [*batch_shape, H] of zeros."""
  zeros = jnp.zeros((*batch_shape, hidden_size(params)), params['w_h'].dtype)
  return (zeros, zeros)


def project(params, x_xD):
  """x W_x + b for any leading shape ([B, D] or [B, T, D]) -> [..., 4H]."""
  return x_xD @ params['w_x'].astype(x_xD.dtype) + params['b'].astype(x_xD.dtype)


def step_projected(params, carry, gx_Bx4H):
  """One LSTM step from the projected input x W_x + b.

  Args:
    params: LSTM parameters.
    carry: (c_BxH, h_BxH).
    gx_Bx4H: x_t W_x + b.
  Returns:
    ((c', h'), h') with c' = f*c + i*g and h' = o*tanh(c').
  """
  c_BxH, h_BxH = carry
  gates_Bx4H = gx_Bx4H + h_BxH @ params['w_h'].astype(h_BxH.dtype)
  i, f, g, o = jnp.split(gates_Bx4H, 4, axis=-1)
  if 'p_i' in params:  # seed 002: i and f look at c_{t-1}, o at c_t.
    i = i + params['p_i'] * c_BxH
    f = f + params['p_f'] * c_BxH
  c_new = jax.nn.sigmoid(f) * c_BxH + jax.nn.sigmoid(i) * jnp.tanh(g)
  if 'p_o' in params:
    o = o + params['p_o'] * c_new
  h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
  return (c_new, h_new), h_new


def step(params, carry, x_BxD):
  """One LSTM step: carry (c_BxH, h_BxH), input x_BxD -> ((c', h'), h'_BxH)."""
  return step_projected(params, carry, project(params, x_BxD))
