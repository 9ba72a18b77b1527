"""Mamba (S6 selective state space) mixer as pure functions; `ltmjax.cells.base` bundles them.

The mixer of the Mamba block (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with
Selective State Spaces", Sec. 3 and Alg. 2), one token per step, E = expand * H channels:

  [x | z] = x_t W_in                                   (no bias)
  u   = SiLU(depthwise causal conv_K(x)_t + b_conv)    (window: the last K inputs x)
  [δ | B | C] = u W_x,   Δ = softplus(δ W_dt + b_dt)   (Δ: [E], low-rank dt_rank; B, C: [N])
  h_t = exp(Δ A) ⊙ h_{t-1} + (Δ ⊙ u) B^T               (h: [E, N]; A = -exp(a_log), diagonal)
  y_t = (h_t C + D ⊙ u) ⊙ SiLU(z) W_out

The discretisation (zero-order hold on A, Euler on B), the parameter shapes and the
initialisation follow state-spaces/mamba, mamba_ssm/modules/mamba_simple.py (`Mamba.__init__`,
`Mamba.step`) and mamba_ssm/ops/selective_scan_interface.py (`selective_scan_ref`):
S4D-real A = -(1..N) per channel, D = 1, Δ's bias the inverse softplus of
exp(U(log dt_min, log dt_max)) clamped at 1e-4, W_dt ~ U(±dt_rank^-1/2), PyTorch's default
Linear/Conv1d init U(±1/sqrt(fan_in)) elsewhere. dt_rank = ceil(H / 16) as the reference's 'auto'.

Carry: {'conv': [*B, K-1, E] (the last K-1 conv inputs, oldest first), 'ssm': [*B, E, N]}.
`chunk_step` runs C steps at once: the conv as K shifted products (a gather of the previous
real inputs under a mask), the linear recurrence of h as one `jax.lax.associative_scan`.
The SSM (Δ, exp(ΔA), h) computes in at least float32, as the reference keeps its scan in fp32.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

Params = Any


def _uniform(key, shape, bound, dtype):
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def init(key, input_dim: int, hidden_dim: int, *, d_state: int = 16, d_conv: int = 4,
         expand: int = 2, dt_min: float = 1e-3, dt_max: float = 1e-1,
         dtype=jnp.float32) -> Params:
  """Mamba mixer parameters (the residual model uses input_dim == hidden_dim == dim).

  Args:
    key: PRNG key.
    input_dim: D, the width of x_t.
    hidden_dim: H, the width of the output y_t (the model width).
    d_state: N, the SSM state size per channel.
    d_conv: K, the causal depthwise convolution's width.
    expand: E = expand * H inner channels.
    dt_min, dt_max: the range of Δ at initialisation.
  Returns:
    {'in_proj': [D, 2E], 'conv_w': [K, E], 'conv_b': [E], 'x_proj': [E, R + 2N],
     'dt_proj': [R, E], 'dt_bias': [E], 'a_log': [E, N], 'd_skip': [E], 'out_proj': [E, H]}
    with R = dt_rank = ceil(H / 16).
  """
  inner, rank = expand * hidden_dim, math.ceil(hidden_dim / 16)
  keys = jax.random.split(key, 7)
  dt = jnp.exp(jax.random.uniform(keys[5], (inner,), dtype) * (math.log(dt_max) - math.log(dt_min))
               + math.log(dt_min))
  dt = jnp.maximum(dt, 1e-4)
  return {
      'in_proj': _uniform(keys[0], (input_dim, 2 * inner), input_dim ** -0.5, dtype),
      'conv_w': _uniform(keys[1], (d_conv, inner), d_conv ** -0.5, dtype),
      'conv_b': _uniform(keys[2], (inner,), d_conv ** -0.5, dtype),
      'x_proj': _uniform(keys[3], (inner, rank + 2 * d_state), inner ** -0.5, dtype),
      'dt_proj': _uniform(keys[4], (rank, inner), rank ** -0.5, dtype),
      'dt_bias': dt + jnp.log(-jnp.expm1(-dt)),   # softplus(dt_bias) == dt
      'a_log': jnp.log(jnp.broadcast_to(jnp.arange(1, d_state + 1, dtype=dtype), (inner, d_state))),
      'd_skip': jnp.ones((inner,), dtype),
      'out_proj': _uniform(keys[6], (inner, hidden_dim), inner ** -0.5, dtype),
  }


def hidden_size(params) -> int:
  return params['out_proj'].shape[-1]


def initial_carry(params, batch_shape: tuple):
  """{'conv': [*batch_shape, K-1, E], 'ssm': [*batch_shape, E, N]} of zeros."""
  (kernel, inner), state = params['conv_w'].shape, params['a_log'].shape[-1]
  dtype = params['in_proj'].dtype
  return {'conv': jnp.zeros((*batch_shape, kernel - 1, inner), dtype),
          'ssm': jnp.zeros((*batch_shape, inner, state), dtype)}


def project(params, x_xD):
  """x W_in for any leading shape -> [..., 2E] ([x | z]): one matmul for every step."""
  return x_xD @ params['in_proj'].astype(x_xD.dtype)


def _ssm_dtype(dtype):
  return jnp.promote_types(dtype, jnp.float32)


def _conv(params, window_xKxE):
  """SiLU of the depthwise causal convolution over a window of K inputs (oldest first)."""
  dtype = window_xKxE.dtype
  pre = (jnp.einsum('...ke,ke->...e', window_xKxE, params['conv_w'].astype(dtype))
         + params['conv_b'].astype(dtype))
  return jax.nn.silu(pre)


def _selection(params, u_xE):
  """The input-dependent Δ [..., E], B [..., N], C [..., N] in the SSM's precision."""
  rank, state = params['dt_proj'].shape[0], params['a_log'].shape[-1]
  dbc = u_xE @ params['x_proj'].astype(u_xE.dtype)
  dtype = _ssm_dtype(u_xE.dtype)
  dbc = dbc.astype(dtype)
  delta = jax.nn.softplus(dbc[..., :rank] @ params['dt_proj'].astype(dtype)
                          + params['dt_bias'].astype(dtype))
  return delta, dbc[..., rank:rank + state], dbc[..., rank + state:]


def _discretise(params, delta_xE, b_xN, u_xE):
  """exp(Δ A) and (Δ u) B^T, both [..., E, N]."""
  a_ExN = -jnp.exp(params['a_log'].astype(delta_xE.dtype))
  decay = jnp.exp(delta_xE[..., None] * a_ExN)
  drive = (delta_xE * u_xE.astype(delta_xE.dtype))[..., None] * b_xN[..., None, :]
  return decay, drive


def _output(params, h_xExN, c_xN, u_xE, z_xE):
  """(h C + D u) ⊙ SiLU(z) W_out -> [..., H], in u's dtype."""
  dtype = u_xE.dtype
  y = (jnp.einsum('...en,...n->...e', h_xExN, c_xN).astype(dtype)
       + params['d_skip'].astype(dtype) * u_xE)
  return (y * jax.nn.silu(z_xE)) @ params['out_proj'].astype(dtype)


def step_projected(params, carry, xz_Bx2E):
  """One Mamba step from x W_in (`project`).

  Args:
    params: Mamba parameters.
    carry: {'conv': [B, K-1, E], 'ssm': [B, E, N]}.
    xz_Bx2E: projected input [x | z] of step t.
  Returns:
    (carry', y_BxH).
  """
  x_BxE, z_BxE = jnp.split(xz_Bx2E, 2, axis=-1)
  window_BxKxE = jnp.concatenate([carry['conv'].astype(x_BxE.dtype), x_BxE[..., None, :]],
                                 axis=-2)
  u_BxE = _conv(params, window_BxKxE)
  delta, b_BxN, c_BxN = _selection(params, u_BxE)
  decay, drive = _discretise(params, delta, b_BxN, u_BxE)
  h_BxExN = decay * carry['ssm'].astype(decay.dtype) + drive
  y_BxH = _output(params, h_BxExN, c_BxN, u_BxE, z_BxE)
  new_carry = {'conv': window_BxKxE[..., 1:, :].astype(carry['conv'].dtype),
               'ssm': h_BxExN.astype(carry['ssm'].dtype)}
  return new_carry, y_BxH


def step(params, carry, x_BxD):
  """One Mamba step: carry, x_BxD -> (carry', y_BxH); see `step_projected`."""
  return step_projected(params, carry, project(params, x_BxD))


def _conv_windows(conv_BxK1xE, x_BxCxE, mask_BxC):
  """Each step's conv window [B, C, K, E] and the final conv carry [B, K-1, E].

  A padded step does not enter the window (the step scan leaves the carry unchanged
  there), so step t's window holds the K-1 previous *real* inputs: ranks of real steps
  (cumsum of the mask) index the sequence [carry ; real inputs], read back by a gather.
  """
  k1, length = conv_BxK1xE.shape[1], x_BxCxE.shape[1]
  xe_BxLxE = jnp.concatenate([conv_BxK1xE, x_BxCxE], axis=1)   # L = K-1 + C
  if mask_BxC is None:
    windows = jnp.stack([xe_BxLxE[:, j:j + length] for j in range(k1 + 1)], axis=2)
    return windows, xe_BxLxE[:, length:]
  rank_BxC = jnp.cumsum(mask_BxC.astype(jnp.int32), axis=1)    # real steps up to t
  # position (in xe) of the q-th entry of [carry ; real inputs]; padded steps dropped.
  target_BxC = jnp.where(mask_BxC, k1 + rank_BxC - 1, k1 + length)
  positions = jnp.broadcast_to(jnp.arange(k1 + length), xe_BxLxE.shape[:2])
  pos_of_q = jax.vmap(lambda p, q: p.at[q].set(k1 + jnp.arange(length), mode='drop'))(
      positions, target_BxC)
  lags = jnp.arange(k1 + 1)
  q_BxCxK = jnp.maximum(rank_BxC[..., None] - 1 + lags, 0)     # padded steps: any index
  gather = jax.vmap(lambda a, i: a[i])
  windows = gather(xe_BxLxE, gather(pos_of_q, q_BxCxK))
  last_BxK1 = gather(pos_of_q, rank_BxC[:, -1:] + jnp.arange(k1))
  return windows, gather(xe_BxLxE, last_BxK1)


def _combine(first, second):
  """Composition of two affine maps h -> a h + b (first, then second)."""
  a1, b1 = first
  a2, b2 = second
  return a1 * a2, a2 * b1 + b2


def chunk_step(params, carry, x_BxCxD, mask_BxC=None):
  """C Mamba steps at once; the same numbers as C calls of `step` under the mask.

  Args:
    params: Mamba parameters.
    carry: {'conv': [B, K-1, E], 'ssm': [B, E, N]}.
    x_BxCxD: the chunk's inputs.
    mask_BxC: bool, True at real steps, or None. Padded steps leave the carry unchanged
      (conv window too) and output zeros.
  Returns:
    (carry', y_BxCxH).
  """
  x_BxCxE, z_BxCxE = jnp.split(project(params, x_BxCxD), 2, axis=-1)
  windows, conv_BxK1xE = _conv_windows(carry['conv'].astype(x_BxCxE.dtype), x_BxCxE, mask_BxC)
  u_BxCxE = _conv(params, windows)
  delta, b_BxCxN, c_BxCxN = _selection(params, u_BxCxE)
  decay, drive = _discretise(params, delta, b_BxCxN, u_BxCxE)
  if mask_BxC is not None:   # a padded step is the identity map of h
    m = mask_BxC[:, :, None, None]
    decay, drive = jnp.where(m, decay, 1), jnp.where(m, drive, 0)
  decay_cum, drive_cum = jax.lax.associative_scan(_combine, (decay, drive), axis=1)
  h_BxCxExN = decay_cum * carry['ssm'].astype(decay.dtype)[:, None] + drive_cum
  y_BxCxH = _output(params, h_BxCxExN, c_BxCxN, u_BxCxE, z_BxCxE)
  if mask_BxC is not None:
    y_BxCxH = jnp.where(mask_BxC[..., None], y_BxCxH, 0)
  new_carry = {'conv': conv_BxK1xE.astype(carry['conv'].dtype),
               'ssm': h_BxCxExN[:, -1].astype(carry['ssm'].dtype)}
  return new_carry, y_BxCxH
