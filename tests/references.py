"""Reference outputs for the tests: float64 NumPy references written from the equations
(DESIGN.md, seeds 004/005), not from the JAX code — explicit softmax over masked logits, the
tanh GELU, LayerNorm with eps 1e-6, the gated write M' = σ(f)M + σ(i)tanh(M~) — and PyTorch's
outputs, committed with the script that made them (fixtures/torch/make_reference.py).

Parameters use the layout of `ltmjax.blocks` / `ltmjax.cells.ltmt` (as NumPy arrays).
"""
import os

import jax
import numpy as np

TORCH_FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'torch')


def torch_fixture() -> dict:
  """The arrays of fixtures/torch/reference.npz ('<case>/<name>')."""
  with np.load(os.path.join(TORCH_FIXTURES, 'reference.npz')) as data:
    return dict(data)

EPS = 1e-6


def randomize(params, seed: int, scale: float = 0.3):
  """params + scale * N(0, 1) for every array: init zeroes biases and sets unit scales,
  which would hide mistakes in the terms they multiply."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(treedef, [a + scale * jax.random.normal(k, a.shape, a.dtype)
                                      for k, a in zip(keys, leaves)])


def as_numpy(tree):
  """Nested dicts/tuples of arrays -> float64 NumPy (bool arrays stay bool)."""
  if isinstance(tree, dict):
    return {k: as_numpy(v) for k, v in tree.items()}
  a = np.asarray(tree)
  return a if a.dtype == bool else a.astype(np.float64)


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def gelu(x):
  """The tanh approximation (jax.nn.gelu's default, flax's nn.gelu)."""
  return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(p, x):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + EPS) * p['scale'] + p['bias']


def attention(p, xq_BxLxD, xkv_BxSxD, key_mask_BxS, causal):
  """Multi-head attention with a key mask and bottom-right-aligned causality."""
  q = np.einsum('bld,dnk->blnk', xq_BxLxD, p['query']['kernel']) + p['query']['bias']
  k = np.einsum('bsd,dnk->bsnk', xkv_BxSxD, p['key']['kernel']) + p['key']['bias']
  v = np.einsum('bsd,dnk->bsnk', xkv_BxSxD, p['value']['kernel']) + p['value']['bias']
  length, keys = q.shape[1], k.shape[1]
  logits = np.einsum('blnk,bsnk->bnls', q, k) / np.sqrt(q.shape[-1])
  allowed = np.broadcast_to(key_mask_BxS[:, None, None, :], logits.shape).copy()
  if causal:
    i, j = np.arange(length)[:, None], np.arange(keys)[None, :]
    allowed &= (j <= i + (keys - length))[None, None]
  logits = np.where(allowed, logits, -np.inf)
  top = np.max(np.where(allowed, logits, -1e300), axis=-1, keepdims=True)
  weights = np.where(allowed, np.exp(logits - top), 0.0)
  total = weights.sum(-1, keepdims=True)
  weights = np.where(total > 0, weights / np.where(total > 0, total, 1.0), 0.0)
  o = np.einsum('bnls,bsnk->blnk', weights, v)
  return np.einsum('blnk,nkd->bld', o, p['out']['kernel']) + p['out']['bias']


def dense(p, x):
  return x @ p['kernel'] + p['bias']


def block(p, x_BxLxD, key_mask_BxS, causal, context_BxCxD=None):
  """Pre-LN block without dropout: x + MHA(LN(x) over LN([context ; x])), x + MLP(LN(x))."""
  h = layer_norm(p['ln_attn'], x_BxLxD)
  kv = h if context_BxCxD is None else np.concatenate(
      [layer_norm(p['ln_attn'], context_BxCxD), h], axis=1)
  x = x_BxLxD + attention(p['attention'], h, kv, key_mask_BxS, causal)
  return x + dense(p['mlp_out'], gelu(dense(p['mlp_in'], layer_norm(p['ln_mlp'], x))))


def ltmt_step(params, carry, x_BxSxD, mask_BxS, *, causal, memory_mode):
  """One LTM-T segment (read, MLP, gated write or xl states) -> (carry', y_BxSxD)."""
  if 'in_proj' in params:
    x_BxSxD = dense(params['in_proj'], x_BxSxD)
  batch = x_BxSxD.shape[0]
  layers = params['memory'].shape[0]
  h, memories, states = x_BxSxD, [], []
  for layer in range(layers):
    p = params[f'layer_{layer}']
    m = carry['memory'][:, layer]
    slots = np.ones((batch, m.shape[1]), bool)
    if memory_mode == 'xl':
      context = np.concatenate([m, carry['states'][:, layer]], axis=1)
      key_mask = np.concatenate([slots, carry['states_mask'], mask_BxS], axis=1)
      states.append(h)
    else:
      context, key_mask = m, np.concatenate([slots, mask_BxS], axis=1)
    h = block(p['read'], h, key_mask, causal, context)
    if memory_mode == 'gated':
      w = p['write']
      m_ln = layer_norm(w['ln'], m)
      kv = np.concatenate([m_ln, layer_norm(w['ln'], h)], axis=1)
      read = attention(w['attention'], m_ln, kv, np.concatenate([slots, mask_BxS], axis=1),
                       False)
      gates = dense(w['gates'], np.concatenate([read, m_ln], axis=-1))
      dim = m.shape[-1]
      cand, inp, forget = gates[..., :dim], gates[..., dim:2 * dim], gates[..., 2 * dim:]
      memories.append(sigmoid(forget) * m + sigmoid(inp) * np.tanh(cand))
  y = layer_norm(params['ln_out'], h)
  real = mask_BxS.any(-1)
  keep = lambda new, old: np.where(real.reshape((batch,) + (1,) * (old.ndim - 1)), new, old)
  if memory_mode == 'gated':
    return {'memory': keep(np.stack(memories, 1), carry['memory'])}, y
  return {'memory': carry['memory'], 'states': keep(np.stack(states, 1), carry['states']),
          'states_mask': keep(mask_BxS, carry['states_mask'])}, y


def mamba_step(p, carry, x_BxD):
  """One Mamba (S6) mixer step from Gu & Dao 2023 (Sec. 3, Alg. 2), written channel by channel:
  conv over the last K inputs, Δ = softplus(δ W_dt + b), h = exp(ΔA) h + Δ u B, y = C h + D u,
  gated by SiLU(z). Params as `ltmjax.cells.mamba.init`; carry {'conv': [B, K-1, E],
  'ssm': [B, E, N]}. Returns (carry', y_BxH)."""
  softplus = lambda v: np.log1p(np.exp(-np.abs(v))) + np.maximum(v, 0.0)
  silu = lambda v: v * sigmoid(v)
  inner = p['d_skip'].shape[0]
  kernel, rank, state = p['conv_w'].shape[0], p['dt_proj'].shape[0], p['a_log'].shape[1]
  xz = x_BxD @ p['in_proj']
  x, z = xz[:, :inner], xz[:, inner:]
  window = np.concatenate([carry['conv'], x[:, None, :]], axis=1)   # oldest first
  conv = p['conv_b'] + sum(window[:, k, :] * p['conv_w'][k] for k in range(kernel))
  u = silu(conv)
  dbc = u @ p['x_proj']
  delta = softplus(dbc[:, :rank] @ p['dt_proj'] + p['dt_bias'])      # [B, E]
  b_mat, c_mat = dbc[:, rank:rank + state], dbc[:, rank + state:]    # [B, N]
  a_mat = -np.exp(p['a_log'])                                         # [E, N]
  h = np.empty_like(carry['ssm'])
  y = np.empty_like(u)
  for e in range(inner):
    h[:, e, :] = (np.exp(delta[:, e, None] * a_mat[e]) * carry['ssm'][:, e, :]
                  + (delta[:, e] * u[:, e])[:, None] * b_mat)
    y[:, e] = (h[:, e, :] * c_mat).sum(-1) + p['d_skip'][e] * u[:, e]
  out = (y * silu(z)) @ p['out_proj']
  return {'conv': window[:, 1:, :], 'ssm': h}, out


def head_layer_norm(scale, h_BxNxK, eps=1e-5):
  """LayerNorm over each head's features, no bias (xLSTM's MultiHeadLayerNorm) -> [B, N*K]."""
  mean = h_BxNxK.mean(-1, keepdims=True)
  var = ((h_BxNxK - mean) ** 2).mean(-1, keepdims=True)
  out = (h_BxNxK - mean) / np.sqrt(var + eps)
  return out.reshape(h_BxNxK.shape[0], -1) * scale


def mlstm_step(p, carry, x_BxD, eps=1e-6):
  """One step of the mLSTM mixer (xLSTM, Beck et al. 2024, eqs. 19-27 and Fig. 10), written
  out head by head with explicit loops over heads and blocks: up-projection, causal conv over
  the carried window, block-diagonal q/k/v, gates from [q, k, v], stabilised matrix memory,
  per-head LayerNorm, learnable skip, silu output gate, down-projection."""
  silu = lambda a: a * sigmoid(a)
  inner = p['w_i'].shape[0] // 3
  heads = p['w_i'].shape[1]
  head = inner // heads
  u = x_BxD @ p['w_up']
  xm, z = u[:, :inner], u[:, inner:]
  window = np.concatenate([carry['conv'], xm[:, None]], axis=1)      # oldest first
  a = silu((window * p['conv_w'][None]).sum(1) + p['conv_b'])
  def blockwise(w, x):
    size = w.shape[1]
    return np.concatenate([x[:, g * size:(g + 1) * size] @ w[g] for g in range(w.shape[0])], -1)
  q, k, v = blockwise(p['w_q'], a), blockwise(p['w_k'], a), blockwise(p['w_v'], xm)
  gate_in = np.concatenate([q, k, v], -1)
  i_pre = gate_in @ p['w_i'] + p['b_i']
  if 'w_f' in p:
    log_f = np.log(sigmoid(gate_in @ p['w_f'] + p['b_f']))
  else:
    log_f = gate_in @ p['w_logf'] + p['b_logf']
  c_new, n_new, m_new = np.empty_like(carry['C']), np.empty_like(carry['n']), np.empty_like(carry['m'])
  h = np.empty((x_BxD.shape[0], heads, head))
  for n in range(heads):
    sl = slice(n * head, (n + 1) * head)
    qn, kn, vn = q[:, sl], k[:, sl] / np.sqrt(head), v[:, sl]
    m_new[:, n] = np.maximum(log_f[:, n] + carry['m'][:, n], i_pre[:, n])
    f_act = np.exp(log_f[:, n] + carry['m'][:, n] - m_new[:, n])[:, None]
    i_act = np.exp(i_pre[:, n] - m_new[:, n])[:, None]
    c_new[:, n] = f_act[..., None] * carry['C'][:, n] + i_act[..., None] * np.einsum('bi,bj->bij', kn, vn)
    n_new[:, n] = f_act * carry['n'][:, n] + i_act * kn
    num = np.einsum('bi,bij->bj', qn, c_new[:, n])
    den = np.maximum(np.abs((qn * n_new[:, n]).sum(-1)), np.exp(-m_new[:, n])) + eps
    h[:, n] = num / den[:, None]
  y = ((head_layer_norm(p['norm'], h) + p['skip'] * a) * silu(z)) @ p['w_down']
  return {'C': c_new, 'n': n_new, 'm': m_new, 'conv': window[:, 1:]}, y


def slstm_step(p, carry, x_BxD):
  """One step of the sLSTM mixer (xLSTM, Beck et al. 2024, eqs. 8-17): gates i, f, z, o from
  x W_x + b and the block-diagonal R h (loop over heads), exponential input gate, sigmoid forget
  gate, stabiliser m, normaliser n, then the per-head LayerNorm."""
  c, n, m, h = carry
  heads, head = p['r'].shape[:2]
  dim = heads * head
  rec = np.zeros((x_BxD.shape[0], 4 * dim))
  for hd in range(heads):
    h_head = h[:, hd * head:(hd + 1) * head]
    for g in range(4):
      rec[:, g * dim + hd * head:g * dim + (hd + 1) * head] = h_head @ p['r'][hd, :, g, :]
  pre = x_BxD @ p['w_x'] + p['b'] + rec
  i_pre, f_pre, z_pre, o_pre = (pre[:, g * dim:(g + 1) * dim] for g in range(4))
  log_f = np.log(sigmoid(f_pre))
  m_new = np.maximum(log_f + m, i_pre)
  i_act, f_act = np.exp(i_pre - m_new), np.exp(log_f + m - m_new)
  c_new = f_act * c + i_act * np.tanh(z_pre)
  n_new = f_act * n + i_act
  h_new = sigmoid(o_pre) * c_new / n_new
  y = head_layer_norm(p['norm'], h_new.reshape(-1, heads, head))
  return (c_new, n_new, m_new, h_new), y


def ltmt_bound(m_xD, memory_norm, eps=1e-6):
  """LTM-T's bounded memory (issue 20): each slot divided by max(1, RMS) ('rms_cap') or by its
  RMS ('unit'), RMS = sqrt(mean over D of m^2 + eps); 'none' leaves it."""
  if memory_norm == 'none':
    return m_xD
  rms = np.sqrt((m_xD ** 2).mean(-1, keepdims=True) + eps)
  return m_xD / (np.maximum(rms, 1.0) if memory_norm == 'rms_cap' else rms)


def dpfp(x_xE, nu=3):
  """DPFP (Schlag et al. 2021, as ARMT's `DPFP`): r = [relu(x), relu(-x)] (2E), then for
  j = 1..nu the products r_i * r_{(i - j) mod 2E}, concatenated j by j (2 nu E)."""
  r = np.concatenate([np.maximum(x_xE, 0), np.maximum(-x_xE, 0)], -1)
  width = r.shape[-1]
  out = []
  for j in range(1, nu + 1):
    rolled = r[..., (np.arange(width) - j) % width]   # rolled right by j
    out.append(r * rolled)
  return np.concatenate(out, -1)


def ltmt_associative_step(params, carry, x_BxSxD, mask_BxS, *, causal, memory_norm='none'):
  """One LTM-T segment in memory_mode='associative' (ARMT-style, ltmjax/cells/associative.py):
  per layer, tokens and the learned slots add (q A) / (q.z + 1e-5) with q = unit(dpfp(x Wq));
  the read block over [slots ; segment]; slot states = bound(slots + attention of LN(slots) over
  LN([slots ; h])); then the delta rule A += sum_m sigmoid(s W_b + b) k (v - (k A)/(k.z + 1e-5)),
  z += sum_m clip(1 - (k.z + 1e-5)/|k|^2, 0, 1) k, k = unit(dpfp(s Wk)), v = s Wv."""
  unit = lambda f: f / np.sqrt((f ** 2).sum(-1, keepdims=True) + 1e-12)
  if 'in_proj' in params:
    x_BxSxD = dense(params['in_proj'], x_BxSxD)
  batch = x_BxSxD.shape[0]
  h, memories, mats, norms = x_BxSxD, [], [], []
  for layer in range(params['memory'].shape[0]):
    p, w = params[f'layer_{layer}'], params[f'layer_{layer}']['write']
    ap, a, z = w['assoc'], carry['assoc'][:, layer], carry['assoc_norm'][:, layer]

    def read(x):
      q = unit(dpfp(x @ ap['query']))
      return np.einsum('btf,bfd->btd', q, a) / (np.einsum('btf,bf->bt', q, z) + 1e-5)[..., None]
    m = np.broadcast_to(params['memory'][layer], (batch,) + params['memory'].shape[1:])
    m = m + read(m)
    h = h + read(h)
    slots = np.ones((batch, m.shape[1]), bool)
    key_mask = np.concatenate([slots, mask_BxS], axis=1)
    h = block(p['read'], h, key_mask, causal, m)
    m_ln = layer_norm(w['ln'], m)
    kv = np.concatenate([m_ln, layer_norm(w['ln'], h)], axis=1)
    s = ltmt_bound(m + attention(w['attention'], m_ln, kv, key_mask, False), memory_norm)
    k = unit(dpfp(s @ ap['key']))
    v = s @ ap['value']
    den = np.einsum('bmf,bf->bm', k, z) + 1e-5
    v_old = np.einsum('bmf,bfd->bmd', k, a) / den[..., None]
    beta = sigmoid(s @ ap['gate']['kernel'] + ap['gate']['bias'])   # [B, M, 1]
    gamma = np.clip(1 - den / (k ** 2).sum(-1), 0, 1)
    memories.append(s)
    mats.append(a + np.einsum('bmf,bmd->bfd', k, beta * (v - v_old)))
    norms.append(z + np.einsum('bm,bmf->bf', gamma, k))
  y = layer_norm(params['ln_out'], h)
  real = mask_BxS.any(-1)
  keep = lambda new, old: np.where(real.reshape((batch,) + (1,) * (old.ndim - 1)), new, old)
  return {'memory': keep(np.stack(memories, 1), carry['memory']),
          'assoc': keep(np.stack(mats, 1), carry['assoc']),
          'assoc_norm': keep(np.stack(norms, 1), carry['assoc_norm'])}, y
