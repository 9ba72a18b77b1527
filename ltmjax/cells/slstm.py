"""sLSTM mixer (xLSTM, Beck et al. 2024, arXiv:2405.04517, section 2.2) as pure functions.

Scalar memory with exponential gating, a normaliser and the max-state stabiliser; the
recurrent weights are block-diagonal (N heads mix memory within a head, not across heads):

    [i~, f~, z~, o~] = x W_x + b + R h_{t-1}           (R: one [K, 4K] block per head)
    m_t = max(log sigmoid(f~) + m_{t-1}, i~)
    i = exp(i~ - m_t),   f = exp(log sigmoid(f~) + m_{t-1} - m_t)
    c_t = f c_{t-1} + i tanh(z~),   n_t = f n_{t-1} + i,   h_t = sigmoid(o~) c_t / n_t
    y_t = HeadNorm(h_t)                                 (per-head LayerNorm, the layer's GroupNorm)

D = input_dim = hidden_dim (a "mixer"), K = D / N. Carry (c, n, m, h), each [B, D]. The
recurrence is nonlinear in h, so it has no parallel form: `recurrence.run` scans `step`,
with the input projection x W_x + b hoisted out of the loop (`project` / `step_projected`,
as the LSTM). Parameters: {'w_x': [D, 4D] (gate order i, f, z, o), 'r': [N, K, 4, K],
'b': [4D], 'norm': [D]}.

Followed (read, not copied): NX-AI/xlstm xlstm/blocks/slstm/src/vanilla/slstm.py
(`slstm_forward_pointwise`: the stabilised pointwise step), xlstm/blocks/slstm/layer.py
(the layer: gates, sLSTM cell, MultiHeadLayerNorm) and cell.py (recurrent weights start at
zero). Differences, chosen here: a dense input projection W_x as in the paper's equations
(the NX-AI layer uses head-wise ones after a causal convolution; no convolution here), the
forget-gate bias linearly spaced in [3, 6] as the mLSTM's (NX-AI: a power law per block),
and m_t exactly as the paper (the CUDA-free vanilla step takes m_1 = i~ when n == 0).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ltmjax.cells.mlstm import head_norm, small_init
from ltmjax.errors import ConfigError

Params = Any


def init(key, input_dim: int, hidden_dim: int, *, heads: int = 4, dtype=jnp.float32) -> Params:
  """sLSTM mixer parameters.

  Args:
    key: PRNG key.
    input_dim, hidden_dim: D; a mixer keeps the width, so they must be equal.
    heads: N, the blocks of the recurrent matrix; must divide D.
  Returns:
    {'w_x': [D, 4D], 'r': [N, D/N, 4, D/N] (zeros), 'b': [4D] (forget part in [3, 6]),
     'norm': [D] (ones)}.
  """
  problems = [p for p, bad in (
      (f'input_dim={input_dim} != hidden_dim={hidden_dim} (a mixer keeps the width)',
       input_dim != hidden_dim),
      (f'heads={heads} does not divide the width {hidden_dim}',
       heads < 1 or hidden_dim % heads)) if bad]
  if problems:
    raise ConfigError('slstm: ' + '; '.join(problems))
  head = hidden_dim // heads
  b = jnp.zeros((4 * hidden_dim,), dtype)
  b = b.at[hidden_dim:2 * hidden_dim].set(jnp.linspace(3.0, 6.0, hidden_dim, dtype=dtype))
  return {'w_x': small_init(key, (input_dim, 4 * hidden_dim), input_dim, dtype),
          'r': jnp.zeros((heads, head, 4, head), dtype),
          'b': b,
          'norm': jnp.ones((hidden_dim,), dtype)}


def hidden_size(params) -> int:
  return params['norm'].shape[0]


def initial_carry(params, batch_shape: tuple):
  """(c, n, m, h), each [*batch_shape, D] of zeros."""
  zeros = jnp.zeros((*batch_shape, hidden_size(params)), params['w_x'].dtype)
  return (zeros, zeros, zeros, zeros)


def project(params, x_xD):
  """x W_x + b for any leading shape -> [..., 4D]: one matmul for every step."""
  return x_xD @ params['w_x'].astype(x_xD.dtype) + params['b'].astype(x_xD.dtype)


def recurrent_term(r_NxKx4xK, h_BxD):
  """R h_{t-1} with R block-diagonal: each head's K features feed only its own 4K gates,
  laid out as the gates of x W_x (i, f, z, o blocks of D = N K) -> [B, 4D]."""
  heads, head = r_NxKx4xK.shape[:2]
  h_BxNxK = h_BxD.reshape(h_BxD.shape[:-1] + (heads, head))
  g_Bx4xNxK = jnp.einsum('...nk,nkgj->...gnj', h_BxNxK, r_NxKx4xK.astype(h_BxD.dtype))
  return g_Bx4xNxK.reshape(h_BxD.shape[:-1] + (4 * heads * head,))


def step_projected(params, carry, g_Bx4D):
  """One sLSTM step from the projected input x W_x + b (`project`).

  Args:
    params: sLSTM parameters.
    carry: (c, n, m, h), each [B, D].
    g_Bx4D: x_t W_x + b.
  Returns:
    ((c', n', m', h'), y_BxD) with y = HeadNorm(h').
  """
  c, n, m, h = carry
  pre = g_Bx4D + recurrent_term(params['r'], h)
  i_pre, f_pre, z_pre, o_pre = jnp.split(pre, 4, axis=-1)
  log_f = jax.nn.log_sigmoid(f_pre)
  m_new = jnp.maximum(log_f + m, i_pre)
  i_act, f_act = jnp.exp(i_pre - m_new), jnp.exp(log_f + m - m_new)
  c_new = f_act * c + i_act * jnp.tanh(z_pre)
  n_new = f_act * n + i_act
  h_new = jax.nn.sigmoid(o_pre) * c_new / n_new
  heads, head = params['r'].shape[:2]
  y = head_norm(params['norm'], h_new.reshape(h_new.shape[:-1] + (heads, head)))
  return (c_new, n_new, m_new, h_new), y


def step(params, carry, x_BxD):
  """One sLSTM step: carry (c, n, m, h), x_BxD -> (carry', y_BxD)."""
  return step_projected(params, carry, project(params, x_BxD))
