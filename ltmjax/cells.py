"""Recurrent cells as pure step functions.

A cell is a value with pure functions (DESIGN.md contract):
  init(key, input_dim, hidden_dim, **options) -> params
  initial_carry(params, batch_shape) -> carry
  step(params, carry, x_BxD) -> (carry, y_BxH)
Cells that can hoist their input projection out of the time loop also give
  project(params, xs_BxTxD) -> xs_proj       (one matmul for every step)
  step_projected(params, carry, x_proj) -> (carry, y_BxH)
so that `step(p, c, x) == step_projected(p, c, project(p, x))`. Only
`ltmjax.recurrence` runs a cell over time.

LSTM parameters: {'w_x': [D, 4H], 'w_h': [H, 4H], 'b': [4H]}, gate order i, f, g, o
along the last axis (PyTorch/cuDNN order: torch's `weight_ih_l0.T` is `w_x`,
`bias_ih_l0 + bias_hh_l0` is `b`). The peephole variant adds diagonal weights
'p_i', 'p_f' (seeing c_{t-1}) and 'p_o' (seeing c_t), each [H].
GRU parameters: {'w_x': [D, 3H], 'w_h': [H, 3H], 'b_x': [3H], 'b_h': [3H]}, gate order
r, z, n as in PyTorch/cuDNN: n = tanh(x W_in + b_in + r * (h W_hn + b_hn)).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

Params = Any
Carry = Any


@dataclasses.dataclass(frozen=True)
class Cell:
  """A recurrent cell: a bundle of pure functions (see module docstring)."""
  name: str
  init: Callable[..., Params]
  initial_carry: Callable[[Params, tuple], Carry]
  step: Callable[[Params, Carry, Any], tuple]
  project: Optional[Callable[[Params, Any], Any]] = None
  step_projected: Optional[Callable[[Params, Carry, Any], tuple]] = None
  hidden_size: Optional[Callable[[Params], int]] = None


def _uniform(key, shape, scale, dtype):
  return jax.random.uniform(key, shape, dtype, -scale, scale)


def _orthogonal_blocks(key, hidden_dim, num_gates, dtype):
  """Recurrent weights [H, G*H] with each gate's block orthogonal (stable long-range gradients)."""
  keys = jax.random.split(key, num_gates)
  init = jax.nn.initializers.orthogonal()
  return jnp.concatenate([init(k, (hidden_dim, hidden_dim), dtype) for k in keys], axis=-1)


# ----------------------------------------------------------------------------- LSTM

def lstm_init(key, input_dim: int, hidden_dim: int, *, peephole: bool = False,
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
      'w_h': _orthogonal_blocks(k_h, hidden_dim, 4, dtype),
      'b': jnp.zeros((4 * hidden_dim,), dtype).at[hidden_dim:2 * hidden_dim].set(forget_bias),
  }
  if peephole:
    scale = 1.0 / jnp.sqrt(hidden_dim)
    for name, k in zip(('p_i', 'p_f', 'p_o'), jax.random.split(k_p, 3)):
      params[name] = _uniform(k, (hidden_dim,), scale, dtype)
  return params


def _lstm_hidden(params) -> int:
  return params['w_h'].shape[0]


def lstm_initial_carry(params, batch_shape: tuple):
  """(c, h), each [*batch_shape, H] of zeros."""
  h = _lstm_hidden(params)
  zeros = jnp.zeros((*batch_shape, h), params['w_h'].dtype)
  return (zeros, zeros)


def lstm_project(params, x_xD):
  """x W_x + b for any leading shape ([B, D] or [B, T, D]) -> [..., 4H]."""
  return x_xD @ params['w_x'].astype(x_xD.dtype) + params['b'].astype(x_xD.dtype)


def lstm_step_projected(params, carry, gx_Bx4H):
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


def lstm_step(params, carry, x_BxD):
  """One LSTM step: carry (c_BxH, h_BxH), input x_BxD -> ((c', h'), h'_BxH)."""
  return lstm_step_projected(params, carry, lstm_project(params, x_BxD))


LSTM = Cell('lstm', lstm_init, lstm_initial_carry, lstm_step, lstm_project,
            lstm_step_projected, _lstm_hidden)


# ----------------------------------------------------------------------------- GRU

def gru_init(key, input_dim: int, hidden_dim: int, *, dtype=jnp.float32) -> Params:
  """GRU parameters in PyTorch/cuDNN layout.

  Returns:
    {'w_x': [D, 3H], 'w_h': [H, 3H], 'b_x': [3H], 'b_h': [3H]}, gate order r, z, n.
  """
  k_x, k_h = jax.random.split(key)
  return {
      'w_x': jax.nn.initializers.glorot_uniform()(k_x, (input_dim, 3 * hidden_dim), dtype),
      'w_h': _orthogonal_blocks(k_h, hidden_dim, 3, dtype),
      'b_x': jnp.zeros((3 * hidden_dim,), dtype),
      'b_h': jnp.zeros((3 * hidden_dim,), dtype),
  }


def _gru_hidden(params) -> int:
  return params['w_h'].shape[0]


def gru_initial_carry(params, batch_shape: tuple):
  """h, [*batch_shape, H] of zeros."""
  return jnp.zeros((*batch_shape, _gru_hidden(params)), params['w_h'].dtype)


def gru_project(params, x_xD):
  """x W_x + b_x for any leading shape -> [..., 3H]."""
  return x_xD @ params['w_x'].astype(x_xD.dtype) + params['b_x'].astype(x_xD.dtype)


def gru_step_projected(params, h_BxH, gx_Bx3H):
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


def gru_step(params, h_BxH, x_BxD):
  """One GRU step: h_BxH, x_BxD -> (h', h'_BxH)."""
  return gru_step_projected(params, h_BxH, gru_project(params, x_BxD))


GRU = Cell('gru', gru_init, gru_initial_carry, gru_step, gru_project, gru_step_projected,
           _gru_hidden)

CELLS = {'lstm': LSTM, 'gru': GRU}


def get(name: str) -> Cell:
  """A cell by name; unknown names raise a ValueError listing the known ones."""
  if name not in CELLS:
    raise ValueError(f'unknown cell {name!r}; known cells: {", ".join(sorted(CELLS))}')
  return CELLS[name]


def __getattr__(name):
  # cells.LTMT lives in ltmjax.ltmt (it is built on attention); loaded on first use.
  if name == 'LTMT':
    from ltmjax import ltmt
    return ltmt.LTMT
  raise AttributeError(name)
