"""GRU cell as pure functions; `ltmjax.cells.base` bundles them into `GRU`.

Parameters: {'w_x': [D, 3H], 'w_h': [H, 3H], 'b_x': [3H], 'b_h': [3H]}, gate order r, z, n
as in PyTorch/cuDNN: n = tanh(x W_in + b_in + r * (h W_hn + b_hn)).

Like the LSTM, the GRU gives the pieces of `ltmjax.recurrence`'s fused sequence path
(`step_residuals`, `step_tangent`, `tangent_inputs`; see ltmjax/cells/lstm.py).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ltmjax.cells.initializers import orthogonal_blocks
from ltmjax.cells.lstm import times_transposed

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
  """x W_x for any leading shape -> [..., 3H]; b_x is added inside the step, where it fuses
  into the gate kernel (as the LSTM's bias: no pass over the [T, B, 3H] projection)."""
  return x_xD @ params['w_x'].astype(x_xD.dtype)


def _activations(params, h_BxH, gx_Bx3H):
  """r, z, n and h W_hn + b_hn of one step; r and z are one tanh over [B, 2H]
  (sigmoid(a) = (1 + tanh(a / 2)) / 2: one XLA:CPU kernel instead of two logistics)."""
  gh_Bx3H = h_BxH @ params['w_h'].astype(h_BxH.dtype) + params['b_h'].astype(h_BxH.dtype)
  gx_Bx3H = gx_Bx3H + params['b_x'].astype(h_BxH.dtype)
  hidden = h_BxH.shape[-1]
  t_Bx2H = jnp.tanh(0.5 * (gx_Bx3H[..., :2 * hidden] + gh_Bx3H[..., :2 * hidden]))
  r, z = jnp.split(0.5 + 0.5 * t_Bx2H, 2, axis=-1)
  hn_BxH = gh_Bx3H[..., 2 * hidden:]
  n = jnp.tanh(gx_Bx3H[..., 2 * hidden:] + r * hn_BxH)
  return r, z, n, hn_BxH


def step_projected(params, h_BxH, gx_Bx3H):
  """One GRU step from x W_x (`project`).

  Args:
    params: GRU parameters.
    h_BxH: previous hidden state.
    gx_Bx3H: projected input, x_t W_x.
  Returns:
    (h', h'), h' = (1 - z) * n + z * h.
  """
  _, z, n, _ = _activations(params, h_BxH, gx_Bx3H)
  h_new = n + z * (h_BxH - n)
  return h_new, h_new


def fusable(params) -> bool:
  """Every GRU runs the fused sequence path."""
  del params
  return True


def step_residuals(params, h_BxH, gx_Bx3H):
  """`step_projected` that also returns the coefficients of the step's linearisation.

  With dgx = (the input tangent) + db_x and dgh = dh W_h + h dW_h + db_h:
    dh' = z dh + b_r (dgx_r + dgh_r) + a_z (dgx_z + dgh_z) + b_n dgx_n + b_nr dgh_n.
  Returns:
    (h', h', res): res holds h_prev, z, b_r, a_z, b_n, b_nr, each [B, H].
  """
  r, z, n, hn_BxH = _activations(params, h_BxH, gx_Bx3H)
  h_new = n + z * (h_BxH - n)
  b_n = (1 - z) * (1 - n * n)
  res = {'h_prev': h_BxH, 'z': z, 'b_r': b_n * hn_BxH * r * (1 - r),
         'a_z': (h_BxH - n) * z * (1 - z), 'b_n': b_n, 'b_nr': b_n * r}
  return h_new, h_new, res


def tangent_inputs(params, dparams, dgx_TxBx3H, res):
  """Per-step tangent inputs (dgx + db_x, h_prev dW_h + db_h) for all steps, one matmul
  (transposed by JAX into the single W_h-gradient GEMM over all T*B rows)."""
  h_prev = res['h_prev']
  dgh = (jnp.einsum('tbh,hg->tbg', h_prev, dparams['w_h'].astype(h_prev.dtype))
         + dparams['b_h'].astype(h_prev.dtype))
  return dgx_TxBx3H + dparams['b_x'].astype(h_prev.dtype), dgh


def step_tangent(tparams, res, dh_BxH, tangent_in):
  """The step's linearisation (linear in dh_BxH and tangent_in); see `step_residuals`.
  tparams is `lstm.tangent_params(params)` (W_h^T, shared with the LSTM)."""
  dgx_Bx3H, dgh_out_Bx3H = tangent_in
  dgh_Bx3H = dgh_out_Bx3H + times_transposed(dh_BxH, tparams['w_h_T'])   # dh @ W_h
  hidden = dh_BxH.shape[-1]
  drz_Bx2H = dgx_Bx3H[..., :2 * hidden] + dgh_Bx3H[..., :2 * hidden]
  dh_new = (res['z'] * dh_BxH + res['b_r'] * drz_Bx2H[..., :hidden]
            + res['a_z'] * drz_Bx2H[..., hidden:] + res['b_n'] * dgx_Bx3H[..., 2 * hidden:]
            + res['b_nr'] * dgh_Bx3H[..., 2 * hidden:])
  return dh_new, dh_new


def step(params, h_BxH, x_BxD):
  """One GRU step: h_BxH, x_BxD -> (h', h'_BxH)."""
  return step_projected(params, h_BxH, project(params, x_BxD))
