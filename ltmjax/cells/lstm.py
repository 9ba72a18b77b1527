"""LSTM cell (seeds 001-003) as pure functions; `ltmjax.cells.base` bundles them into `LSTM`.

Parameters: {'w_x': [D, 4H], 'w_h': [H, 4H], 'b': [4H]}, gate order i, f, g, o along the
last axis (PyTorch/cuDNN order: torch's `weight_ih_l0.T` is `w_x`, `bias_ih_l0 + bias_hh_l0`
is `b`). The peephole variant adds diagonal weights 'p_i', 'p_f' (seeing c_{t-1}) and
'p_o' (seeing c_t), each [H].

The plain cell also gives the pieces of `ltmjax.recurrence`'s fused sequence path
(`step_residuals`, `step_tangent`, `tangent_inputs`): the forward step stores, per step,
the coefficients of its own linearisation, so the backward loop holds one matmul
dGates @ W_h^T and a few multiply-adds, and the W_h gradient is one GEMM over all steps.
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
  """x W_x for any leading shape ([B, D] or [B, T, D]) -> [..., 4H].

  The bias is added inside the step, where it fuses into the gate kernel: added here it
  was one more pass over the [T, B, 4H] projection (25 of 530 ms of a training step at
  H=256 in the per-op profile; experiments/bench_lstm.py --profile).
  """
  return x_xD @ params['w_x'].astype(x_xD.dtype)


def _gate_scale(hidden: int, dtype):
  """[4H]: 1/2 on i, f, o and 1 on g, so that one tanh gives all four gates."""
  return jnp.repeat(jnp.asarray([0.5, 0.5, 1.0, 0.5], dtype), hidden)


def _preactivation(params, h_BxH, gx_Bx4H):
  """x W_x + h W_h + b: the gates before their nonlinearities, [B, 4H]."""
  return gx_Bx4H + h_BxH @ params['w_h'].astype(h_BxH.dtype) + params['b'].astype(h_BxH.dtype)


def _activations(params, carry, gx_Bx4H):
  """i, f, g, o, c' and tanh(c') of one plain (non-peephole) step.

  sigmoid(a) = (1 + tanh(a / 2)) / 2, so the four gates are ONE tanh over [B, 4H]: on XLA:CPU
  that is one elementwise kernel instead of four (and tanh is cheaper than the logistic);
  the forward step went from 340 to 260 us at H=256, batch 32 (the matmul alone: 220 us).
  """
  c_BxH, h_BxH = carry
  a_Bx4H = _preactivation(params, h_BxH, gx_Bx4H)
  t_Bx4H = jnp.tanh(a_Bx4H * _gate_scale(h_BxH.shape[-1], a_Bx4H.dtype))
  t_i, t_f, g, t_o = jnp.split(t_Bx4H, 4, axis=-1)
  i, f, o = 0.5 + 0.5 * t_i, 0.5 + 0.5 * t_f, 0.5 + 0.5 * t_o
  c_new = f * c_BxH + i * g
  return i, f, g, o, c_new, jnp.tanh(c_new)


def step_projected(params, carry, gx_Bx4H):
  """One LSTM step from the projected input x W_x (`project`).

  Args:
    params: LSTM parameters.
    carry: (c_BxH, h_BxH).
    gx_Bx4H: x_t W_x.
  Returns:
    ((c', h'), h') with c' = f*c + i*g and h' = o*tanh(c').
  """
  c_BxH, h_BxH = carry
  if 'p_i' not in params:
    _, _, _, o, c_new, tanh_c = _activations(params, carry, gx_Bx4H)
    h_new = o * tanh_c
    return (c_new, h_new), h_new
  # seed 002: i and f look at c_{t-1}, o at c_t.
  gates_Bx4H = _preactivation(params, h_BxH, gx_Bx4H)
  i, f, g, o = jnp.split(gates_Bx4H, 4, axis=-1)
  i = i + params['p_i'] * c_BxH
  f = f + params['p_f'] * c_BxH
  c_new = jax.nn.sigmoid(f) * c_BxH + jax.nn.sigmoid(i) * jnp.tanh(g)
  o = o + params['p_o'] * c_new
  h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
  return (c_new, h_new), h_new


def fusable(params) -> bool:
  """The fused sequence path covers the plain cell (peephole runs the generic scan)."""
  return 'p_i' not in params


def step_residuals(params, carry, gx_Bx4H):
  """`step_projected` that also returns the coefficients of the step's linearisation.

  With da = dgx + dh W_h + h dW_h + db (the gates' pre-activation tangent):
    dc' = f dc + a_i da_i + a_f da_f + a_g da_g,   dh' = a_o da_o + k dc'.
  Returns:
    ((c', h'), h', res): res holds h_prev, f, k, a_i, a_f, a_g, a_o, each [B, H]
    (7H per step; stored as separate arrays, XLA writes each in place, no concat).
  """
  c_BxH, h_BxH = carry
  i, f, g, o, c_new, tanh_c = _activations(params, carry, gx_Bx4H)
  h_new = o * tanh_c
  res = {'h_prev': h_BxH, 'f': f, 'k': o * (1 - tanh_c * tanh_c),
         'a_i': g * i * (1 - i), 'a_f': c_BxH * f * (1 - f), 'a_g': i * (1 - g * g),
         'a_o': tanh_c * o * (1 - o)}
  return (c_new, h_new), h_new, res


def tangent_inputs(params, dparams, dgx_TxBx4H, res):
  """Per-step tangent inputs: dgx + h_prev dW_h + db for every step, ONE matmul (transposed
  by JAX into the single W_h-gradient GEMM h_prev^T @ dGates over all T*B rows)."""
  h_prev = res['h_prev']
  return (dgx_TxBx4H + jnp.einsum('tbh,hg->tbg', h_prev, dparams['w_h'].astype(h_prev.dtype))
          + dparams['b'].astype(h_prev.dtype))


def tangent_params(params):
  """{'w_h_T': [G, H]}, W_h^T laid out once before the loop (`step_tangent` reads it; the
  GRU's too, G = 3H).

  The backward step's dGates @ W_h^T then reads its weight row-major: 22-27% faster than
  the same matmul on W_h transposed in place (a scan of [32, 4H] x [4H, H] alone, H=256 and
  1024, 2 cores).
  """
  return {'w_h_T': params['w_h'].T}


def times_transposed(a_BxH, w_GxH):
  """a @ w.T as one dot_general (no transpose op, which JAX would hoist out of the loop and
  XLA fold back into a transposed read); its transpose, dGates @ w, reads w row-major."""
  return jax.lax.dot_general(a_BxH, w_GxH.astype(a_BxH.dtype), (((1,), (1,)), ((), ())))


def step_tangent(tparams, res, dcarry, dgx_Bx4H):
  """The step's linearisation (linear in dcarry and dgx_Bx4H); see `step_residuals`.

  Its transpose is the backward step: dGates = a * [dc', dc', dc', dh'], dh = dGates W_h^T.
  Args:
    tparams: `tangent_params(params)`.
  """
  dc_BxH, dh_BxH = dcarry
  da = dgx_Bx4H + times_transposed(dh_BxH, tparams['w_h_T'])
  da_i, da_f, da_g, da_o = jnp.split(da, 4, axis=-1)
  dc_new = res['f'] * dc_BxH + res['a_i'] * da_i + res['a_f'] * da_f + res['a_g'] * da_g
  dh_new = res['a_o'] * da_o + res['k'] * dc_new
  return (dc_new, dh_new), dh_new


def step(params, carry, x_BxD):
  """One LSTM step: carry (c_BxH, h_BxH), input x_BxD -> ((c', h'), h'_BxH)."""
  return step_projected(params, carry, project(params, x_BxD))
