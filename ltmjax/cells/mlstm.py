"""mLSTM mixer (xLSTM, Beck et al. 2024, arXiv:2405.04517, sec. 2.3, Fig. 10) as pure functions.

One cell is the whole mLSTM layer of the paper's pre-up-projection block, without the block's
pre-LayerNorm and residual (the residual model adds those, `ltmjax.models.residual`):

    [xm, z] = x W_up                                   (up-projection, E = proj_factor * D each)
    a = silu(causal_conv(xm))                          (depthwise, `conv` taps, over real steps)
    q = a W_q,  k = a W_k / sqrt(K),  v = xm W_v       (block-diagonal, `qkv_block` x `qkv_block`)
    i~, f~ = [q, k, v] W_{i,f} + b_{i,f}               (one scalar per head and step)
    log f = log sigmoid(f~)   (or f~ itself: the exponential forget gate)
    m_t = max(log f + m_{t-1}, i~)                     (the max-state stabiliser)
    C_t = exp(log f + m_{t-1} - m_t) C_{t-1} + exp(i~ - m_t) k v^T      per head, [K, K]
    n_t = exp(log f + m_{t-1} - m_t) n_{t-1} + exp(i~ - m_t) k
    h~ = q C_t / (max(|q . n_t|, exp(-m_t)) + eps)
    y = (HeadNorm(h~) + skip * a) * silu(z) W_down      (y: [B, D])

D = input_dim = hidden_dim (a "mixer"), N = heads, K = E / N the head size. Carry:
{'C': [B, N, K, K], 'n': [B, N, K], 'm': [B, N], 'conv': [B, conv - 1, E]} (the last conv-1
real inputs of the convolution).

Two forms with the same numbers: `step` (recurrent: streaming, sampling) and `chunk_step`
(chunkwise-parallel, stabilised: C steps as matrix products, with the carry entering as an
inter-chunk term). In the chunk the running stabiliser m_t of the recurrent form is
max(m_0 + F_t, max_{s<=t} F_t - F_s + i~_s) with F the cumulative log forget gate, which is
exactly the row maximum the parallel form stabilises with, so both forms normalise by the
same exp(-m_t) and agree to rounding (float64 <= 1e-10, tests/test_xlstm.py).

Followed (read, not copied):
  NX-AI/xlstm xlstm/blocks/mlstm/layer.py (block layout: up-projection, conv, learnable skip,
    silu output gate, down-projection), cell.py (gate inputs [q, k, v], gate initialisation,
    MultiHeadLayerNorm), backends.py (`parallel_stabilized_simple`,
    `recurrent_step_stabilized_simple`, `chunkwise_simple`);
  NX-AI/xlstm-jax xlstm_jax/models/xlstm_parallel/blocks/mlstm/backend/recurrent.py
    (`recurrent_step_fw`), fwbw.py (chunkwise forward with an initial state),
    simple.py (`parallel_stabilized_simple`).
The forget-gate choice is read from the parameter names: 'w_f'/'b_f' (sigmoid) or
'w_logf'/'b_logf' (exponential: the pre-activation is log f).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ltmjax.errors import ConfigError

Params = Any
EPS = 1e-6        # the normaliser's eps (NX-AI backends)
NORM_EPS = 1e-5   # the per-head LayerNorm's eps (NX-AI MultiHeadLayerNorm)
FORGET_GATES = ('sigmoid', 'exp')


def small_init(key, shape, fan: int, dtype):
  """N(0, 2 / (5 fan)) ("small init", Nguyen & Salazar 2019; NX-AI components/init.py)."""
  return math.sqrt(2.0 / (5 * fan)) * jax.random.normal(key, shape, dtype)


def head_norm(scale_E, h_xNxK):
  """LayerNorm over each head's K features (group norm, no bias) times scale, -> [..., N*K]."""
  mean = h_xNxK.mean(-1, keepdims=True)
  var = jnp.square(h_xNxK - mean).mean(-1, keepdims=True)
  out = (h_xNxK - mean) * jax.lax.rsqrt(var + NORM_EPS)
  return out.reshape(h_xNxK.shape[:-2] + (-1,)) * scale_E.astype(h_xNxK.dtype)


def init(key, input_dim: int, hidden_dim: int, *, heads: int = 4, proj_factor: float = 2.0,
         conv: int = 4, qkv_block: int = 4, forget_gate: str = 'sigmoid',
         dtype=jnp.float32) -> Params:
  """mLSTM mixer parameters (initialised as NX-AI/xlstm's mLSTMLayer / mLSTMCell).

  Args:
    key: PRNG key.
    input_dim, hidden_dim: D; a mixer maps D features to D features, so they must be equal.
    heads: N, memory heads; E = proj_factor * D must divide into N heads and qkv_block blocks.
    proj_factor: E / D, the up-projection factor (2 in the paper).
    conv: taps of the causal depthwise convolution before q and k (>= 1; 4 in the paper).
    qkv_block: block size of the block-diagonal q, k, v projections (4 in the paper).
    forget_gate: 'sigmoid' or 'exp' (exponential forget gate, log f = f~).
  Returns:
    {'w_up': [D, 2E], 'conv_w': [conv, E], 'conv_b': [E], 'w_q', 'w_k', 'w_v':
     [E/qkv_block, qkv_block, qkv_block], 'w_i': [3E, N], 'b_i': [N], 'w_f' | 'w_logf': [3E, N],
     'b_f' | 'b_logf': [N], 'norm': [E], 'skip': [E], 'w_down': [E, D]}.
  """
  inner = int(round(proj_factor * hidden_dim))
  problems = [p for p, bad in (
      (f'input_dim={input_dim} != hidden_dim={hidden_dim} (a mixer keeps the width)',
       input_dim != hidden_dim),
      (f'heads={heads} does not divide the inner width {inner}', heads < 1 or inner % heads),
      (f'qkv_block={qkv_block} does not divide the inner width {inner}',
       qkv_block < 1 or inner % qkv_block),
      (f'conv={conv} must be >= 1', conv < 1),
      (f'forget_gate={forget_gate!r} is not one of {FORGET_GATES}',
       forget_gate not in FORGET_GATES)) if bad]
  if problems:
    raise ConfigError('mlstm: ' + '; '.join(problems))
  k_up, k_conv, k_q, k_k, k_v, k_i, k_down = jax.random.split(key, 7)
  blocks = inner // qkv_block
  limit = 1.0 / math.sqrt(conv)   # torch Conv1d's default for a depthwise kernel (fan_in = conv)
  f_bias = jnp.linspace(3.0, 6.0, heads, dtype=dtype)   # NX-AI bias_linspace_init_
  f_name = 'f' if forget_gate == 'sigmoid' else 'logf'
  return {
      'w_up': small_init(k_up, (hidden_dim, 2 * inner), hidden_dim, dtype),
      'conv_w': jax.random.uniform(k_conv, (conv, inner), dtype, -limit, limit),
      'conv_b': jnp.zeros((inner,), dtype),
      # q, k, v are initialised with the outer width D (mLSTMLayer._init_qkv_proj).
      'w_q': small_init(k_q, (blocks, qkv_block, qkv_block), hidden_dim, dtype),
      'w_k': small_init(k_k, (blocks, qkv_block, qkv_block), hidden_dim, dtype),
      'w_v': small_init(k_v, (blocks, qkv_block, qkv_block), hidden_dim, dtype),
      'w_i': jnp.zeros((3 * inner, heads), dtype),
      'b_i': 0.1 * jax.random.normal(k_i, (heads,), dtype),
      f'w_{f_name}': jnp.zeros((3 * inner, heads), dtype),
      # The exponential gate starts at the sigmoid gate's values: log f = log sigmoid(bias).
      f'b_{f_name}': f_bias if forget_gate == 'sigmoid' else jax.nn.log_sigmoid(f_bias),
      'norm': jnp.ones((inner,), dtype),
      'skip': jnp.ones((inner,), dtype),
      'w_down': (2.0 / math.sqrt(hidden_dim)) * jax.random.normal(   # NX-AI wang_init_, 1 block
          k_down, (inner, hidden_dim), dtype),
  }


def hidden_size(params) -> int:
  return params['w_down'].shape[1]


def _shape(params):
  """(N heads, K head size, E inner width, conv taps)."""
  inner, heads = params['w_i'].shape[0] // 3, params['w_i'].shape[1]
  return heads, inner // heads, inner, params['conv_w'].shape[0]


def initial_carry(params, batch_shape: tuple):
  """Zeros: C [*B, N, K, K], n [*B, N, K], m [*B, N], conv [*B, conv - 1, E]."""
  heads, head, inner, taps = _shape(params)
  dtype = params['w_up'].dtype
  return {'C': jnp.zeros((*batch_shape, heads, head, head), dtype),
          'n': jnp.zeros((*batch_shape, heads, head), dtype),
          'm': jnp.zeros((*batch_shape, heads), dtype),
          'conv': jnp.zeros((*batch_shape, taps - 1, inner), dtype)}


def project(params, x_xD):
  """x W_up for any leading shape -> [..., 2E] (xm, then z): the one matmul outside the loop."""
  return x_xD @ params['w_up'].astype(x_xD.dtype)


def _headwise(w_GxBxB, x_xE):
  """Block-diagonal projection: each block of `qkv_block` features by its own matrix."""
  blocks, size, _ = w_GxBxB.shape
  x_xGxB = x_xE.reshape(x_xE.shape[:-1] + (blocks, size))
  return jnp.einsum('...gb,gbc->...gc', x_xGxB, w_GxBxB.astype(x_xE.dtype)).reshape(x_xE.shape)


def _qkv_gates(params, a_xE, xm_xE):
  """q, k (scaled by 1/sqrt(K)), v as [..., N, K]; i~ and log f as [..., N]."""
  heads, head, _, _ = _shape(params)
  dtype = a_xE.dtype
  q, k, v = (_headwise(params['w_q'], a_xE), _headwise(params['w_k'], a_xE),
             _headwise(params['w_v'], xm_xE))
  qkv_x3E = jnp.concatenate([q, k, v], axis=-1)
  i_pre = qkv_x3E @ params['w_i'].astype(dtype) + params['b_i'].astype(dtype)
  if 'w_f' in params:
    log_f = jax.nn.log_sigmoid(qkv_x3E @ params['w_f'].astype(dtype) + params['b_f'].astype(dtype))
  else:
    log_f = qkv_x3E @ params['w_logf'].astype(dtype) + params['b_logf'].astype(dtype)
  split = lambda t: t.reshape(t.shape[:-1] + (heads, head))
  return split(q), split(k) / math.sqrt(head), split(v), i_pre, log_f


def _output(params, h_xNxK, a_xE, z_xE):
  """(HeadNorm(h~) + skip * a) * silu(z) W_down -> [..., D]."""
  dtype = h_xNxK.dtype
  h_xE = head_norm(params['norm'], h_xNxK) + params['skip'].astype(dtype) * a_xE
  return (h_xE * jax.nn.silu(z_xE)) @ params['w_down'].astype(dtype)


def _conv_tap(params, window_xKxE):
  """The causal convolution's output from its `conv` most recent inputs (oldest first)."""
  dtype = window_xKxE.dtype
  return (jnp.einsum('...ke,ke->...e', window_xKxE, params['conv_w'].astype(dtype))
          + params['conv_b'].astype(dtype))


def step_projected(params, carry, u_Bx2E):
  """One recurrent mLSTM step from the up-projected input `project(params, x)`.

  Args:
    params: mLSTM parameters.
    carry: {'C': [B, N, K, K], 'n': [B, N, K], 'm': [B, N], 'conv': [B, conv-1, E]}.
    u_Bx2E: x_t W_up.
  Returns:
    (carry', y_BxD).
  """
  xm_BxE, z_BxE = jnp.split(u_Bx2E, 2, axis=-1)
  window = jnp.concatenate([carry['conv'], xm_BxE[:, None]], axis=1)   # [B, conv, E]
  a_BxE = jax.nn.silu(_conv_tap(params, window))
  q, k, v, i_pre, log_f = _qkv_gates(params, a_BxE, xm_BxE)
  m_new = jnp.maximum(log_f + carry['m'], i_pre)                       # [B, N]
  f_act, i_act = jnp.exp(log_f + carry['m'] - m_new), jnp.exp(i_pre - m_new)
  c_new = (f_act[..., None, None] * carry['C']
           + i_act[..., None, None] * k[..., :, None] * v[..., None, :])
  n_new = f_act[..., None] * carry['n'] + i_act[..., None] * k
  num_BxNxK = jnp.einsum('bnk,bnkv->bnv', q, c_new)
  den_BxN = jnp.maximum(jnp.abs(jnp.einsum('bnk,bnk->bn', q, n_new)), jnp.exp(-m_new)) + EPS
  y_BxD = _output(params, num_BxNxK / den_BxN[..., None], a_BxE, z_BxE)
  return {'C': c_new, 'n': n_new, 'm': m_new, 'conv': window[:, 1:]}, y_BxD


def step(params, carry, x_BxD):
  """One mLSTM step: carry, x_BxD -> (carry', y_BxD) (see `step_projected`)."""
  return step_projected(params, carry, project(params, x_BxD))


def _conv_chunk(params, window_BxPxE, xm_BxCxE, mask_BxC):
  """The causal convolution over a chunk whose padded steps are skipped, as the masked
  recurrent scan skips them (its window holds the last conv-1 REAL inputs).

  The real inputs are packed after the carried window (a scatter to their rank among real
  steps); step t reads the conv taps ending at its own packed position (a gather).
  Returns:
    (conv output [B, C, E] (anything at padded steps), the new window [B, conv-1, E]).
  """
  batch, length, _ = xm_BxCxE.shape
  taps = params['conv_w'].shape[0]
  past = taps - 1
  rank_BxC = jnp.cumsum(mask_BxC, axis=1) - 1                    # rank among real steps
  dest_BxC = jnp.where(mask_BxC, past + rank_BxC, past + length)  # out of range: dropped
  rows_Bx1 = jnp.arange(batch)[:, None]
  packed = jnp.concatenate([window_BxPxE, jnp.zeros_like(xm_BxCxE)], axis=1)
  packed = packed.at[rows_Bx1, dest_BxC].set(xm_BxCxE, mode='drop')
  # Step t's taps end at packed[past + rank_t]; padded steps before any real one clip to 0.
  idx_BxCxK = jnp.maximum(rank_BxC, 0)[..., None] + jnp.arange(taps)
  taps_BxCxKxE = packed[rows_Bx1[..., None], idx_BxCxK]
  n_real_B = mask_BxC.sum(axis=1)
  new_window = packed[rows_Bx1, n_real_B[:, None] + jnp.arange(past)]
  return _conv_tap(params, taps_BxCxKxE), new_window


def chunk_step(params, carry, x_BxCxD, mask_BxC: Optional[jax.Array] = None):
  """C mLSTM steps at once in the chunkwise-parallel stabilised form (same numbers as C
  applications of `step`; padded steps leave the carry unchanged and output zeros).

  Inside the chunk (per head): F_t = sum_{r<=t} log f_r, and with the carry (C0, n0, m0)
    log D[t, s] = F_t - F_s + i~_s (s <= t),   m_t = max(m0 + F_t, max_s log D[t, s]),
    w[t, s] = e^{log D[t,s] - m_t},   w0_t = e^{m0 + F_t - m_t},
    h~_t = (sum_s w[t,s] (q_t.k_s) v_s + w0_t q_t C0)
           / (max(|sum_s w[t,s] q_t.k_s + w0_t q_t.n0|, e^{-m_t}) + eps),
  and the carry out is the last row's weights applied to k v^T and k (C', n', m' = m_C).
  A padded step has log f = 0 and i~ = -inf: it adds nothing and keeps m.
  (NX-AI/xlstm backends.py `chunkwise_simple`; xlstm-jax fwbw.py `fwbw_forward`.)

  Args:
    params: mLSTM parameters.
    carry: as in `step_projected`.
    x_BxCxD: C inputs.
    mask_BxC: True at real steps; None: all real.
  Returns:
    (carry', y_BxCxD).
  """
  batch, length, _ = x_BxCxD.shape
  if mask_BxC is None:
    mask_BxC = jnp.ones((batch, length), bool)
  xm, z = jnp.split(project(params, x_BxCxD), 2, axis=-1)
  conv_out, new_window = _conv_chunk(params, carry['conv'], xm, mask_BxC)
  a = jax.nn.silu(conv_out)
  q, k, v, i_pre, log_f = _qkv_gates(params, a, xm)               # [B, C, N, K], [B, C, N]
  heads_first = lambda t: jnp.moveaxis(t, 1, 2)                   # [B, N, C, ...]
  q, k, v = heads_first(q), heads_first(k), heads_first(v)
  m_BxNx1 = mask_BxC[:, None, :]
  log_f = jnp.where(m_BxNx1, heads_first(log_f), 0.0)             # [B, N, C]
  i_pre = jnp.where(m_BxNx1, heads_first(i_pre), -jnp.inf)
  cum_f = jnp.cumsum(log_f, axis=-1)                              # F_t
  causal_CxC = np.tril(np.ones((length, length), bool))
  log_d = jnp.where(causal_CxC, cum_f[..., :, None] - cum_f[..., None, :] + i_pre[..., None, :],
                    -jnp.inf)                                     # [B, N, C(t), C(s)]
  inter = carry['m'][..., None] + cum_f                           # m0 + F_t
  m_t = jnp.maximum(log_d.max(axis=-1), inter)                    # the recurrent m_t
  d = jnp.exp(log_d - m_t[..., None])
  w_inter = jnp.exp(inter - m_t)
  s = jnp.einsum('bntk,bnsk->bnts', q, k) * d
  num = (jnp.einsum('bnts,bnsv->bntv', s, v)
         + w_inter[..., None] * jnp.einsum('bntk,bnkv->bntv', q, carry['C']))
  den = s.sum(-1) + w_inter * jnp.einsum('bntk,bnk->bnt', q, carry['n'])
  h = num / (jnp.maximum(jnp.abs(den), jnp.exp(-m_t)) + EPS)[..., None]
  y = _output(params, jnp.moveaxis(h, 1, 2), a, z)
  y = jnp.where(mask_BxC[..., None], y, 0)
  # Carry out: the last row of the decay matrix weighs every step's k v^T.
  d_last, w_last = d[..., -1, :], w_inter[..., -1]
  c_new = (w_last[..., None, None] * carry['C']
           + jnp.einsum('bns,bnsk,bnsv->bnkv', d_last, k, v))
  n_new = w_last[..., None] * carry['n'] + jnp.einsum('bns,bnsk->bnk', d_last, k)
  return {'C': c_new, 'n': n_new, 'm': m_t[..., -1], 'conv': new_window}, y
