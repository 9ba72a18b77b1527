"""The one place that runs a cell over time: `jax.lax.scan` of steps or of chunks, masks, stacks,
bidirectional."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp

from ltmjax.cells import Cell


def _time_major(tree):
  return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), tree)


def _keep_where(mask_B, new, old):
  """new where mask_B else old, broadcasting mask_B over trailing dims of every leaf."""
  def pick(n, o):
    m = mask_B.reshape(mask_B.shape + (1,) * (n.ndim - mask_B.ndim))
    return jnp.where(m, n, o)
  return jax.tree.map(pick, new, old)


def _masked(m_B, carry, new_carry, y, *rest):
  """A step's (carry, y, *rest) with padded rows (m_B False) keeping the carry, y zero."""
  if m_B is None:
    return (new_carry, y, *rest)
  y = jax.tree.map(lambda a: jnp.where(m_B.reshape(m_B.shape + (1,) * (a.ndim - 1)), a, 0), y)
  return (_keep_where(m_B, new_carry, carry), y, *rest)


def _scan_body(step, params):
  """The scan body of `step`: (carry, (x, mask)) -> (carry, y), padded rows masked."""
  def body(c, xm):
    x, m = xm
    return _masked(m, c, *step(params, c, x))
  return body


def _fused_scan(cell: Cell, params, carry, xs_T, mask_T, reverse: bool, unroll: int):
  """`lax.scan` of the cell's step over time with the cell's own derivative (`cell.fused`).

  A custom JVP: the forward loop stores the coefficients of each step's linearisation
  (`step_residuals`); the parameters' tangent enters all steps at once outside the loop
  (`tangent_inputs`), so the tangent loop is linear in the carry with one matmul per step
  (`step_tangent`, reading `tangent_params`, e.g. W_h^T laid out once before the loop).
  JAX transposes it into the backward loop: one dGates @ W_h^T per step,
  the W_h gradient as ONE GEMM over all T*B rows after the loop. Forward mode, reverse mode
  and higher orders all work (it is a JVP rule, not a VJP).
  Returns:
    (final carry, ys_T).
  """
  fused = cell.fused

  @jax.custom_jvp
  def scan(params, carry, xs_T, mask_T):
    return jax.lax.scan(_scan_body(cell.step_projected, params), carry, (xs_T, mask_T),
                        reverse=reverse, unroll=unroll)

  @scan.defjvp
  def scan_jvp(primals, tangents):
    params, carry, xs_T, mask_T = primals
    dparams, dcarry, dxs_T, _ = tangents

    def res_body(c, xm):
      x, m = xm
      new_c, y, res = _masked(m, c, *fused.step_residuals(params, c, x))
      return new_c, (y, res)
    carry_out, (ys_T, res_T) = jax.lax.scan(res_body, carry, (xs_T, mask_T), reverse=reverse,
                                            unroll=unroll)
    tangent_in_T = fused.tangent_inputs(params, dparams, dxs_T, res_T)
    tparams = fused.tangent_params(params)

    def tangent_body(dc, xs):
      tangent_in, res, m = xs
      return _masked(m, dc, *fused.step_tangent(tparams, res, dc, tangent_in))
    dcarry_out, dys_T = jax.lax.scan(tangent_body, dcarry, (tangent_in_T, res_T, mask_T),
                                     reverse=reverse, unroll=unroll)
    return (carry_out, ys_T), (dcarry_out, dys_T)

  return scan(params, carry, xs_T, mask_T)


def _default_carry(cell: Cell, params, inputs, batch: int):
  """`cell.initial_carry` for `batch` rows, its floats in the inputs' precision."""
  carry = cell.initial_carry(params, (batch,))
  # The state computes in the inputs' precision (bf16 compute, float64 gradient checks).
  floats = [a.dtype for a in jax.tree.leaves(inputs) if jnp.issubdtype(a.dtype, jnp.floating)]
  if floats:
    carry = jax.tree.map(
        lambda c: c.astype(floats[0]) if jnp.issubdtype(c.dtype, jnp.floating) else c, carry)
  return carry


def _run_chunked(cell: Cell, params, xs_BxTxD, carry, mask_BxT, reverse: bool, unroll: int,
                 remat: bool, truncate_every: Optional[int], chunk_size: int):
  """`run` through `cell.chunk_step`: ONE `lax.scan` over chunks of `chunk_size` steps.

  The sequence is padded at its end to a multiple of the chunk (padded steps masked, so
  they leave the carry unchanged); chunk_size >= T gives one chunk, the fully parallel form.
  A reversed run is the forward run over the time-reversed sequence (and mask), its outputs
  flipped back: right padding becomes left padding, which masked steps skip just the same.
  """
  batch, length = jax.tree.leaves(xs_BxTxD)[0].shape[:2]
  size = min(chunk_size, length)
  chunks = -(-length // size)
  pad = chunks * size - length
  flip = lambda a: jnp.flip(a, axis=1)
  if reverse:
    xs_BxTxD = jax.tree.map(flip, xs_BxTxD)
    mask_BxT = None if mask_BxT is None else flip(mask_BxT)
  if pad:
    xs_BxTxD = jax.tree.map(
        lambda a: jnp.pad(a, [(0, 0), (0, pad)] + [(0, 0)] * (a.ndim - 2)), xs_BxTxD)
    mask_BxT = jnp.ones((batch, length), bool) if mask_BxT is None else mask_BxT.astype(bool)
    mask_BxT = jnp.pad(mask_BxT, ((0, 0), (0, pad)))
  every = 0
  if truncate_every and truncate_every < length:
    if length % truncate_every or truncate_every % size:
      raise ValueError(f'truncate_every={truncate_every} must divide the number of steps '
                       f'{length} and be a multiple of chunk_size={size}')
    every = truncate_every // size
  if carry is None:
    carry = _default_carry(cell, params, xs_BxTxD, batch)

  def to_chunks(a):   # [B, N*C, ...] -> [N, B, C, ...]
    return jnp.swapaxes(a.reshape((batch, chunks, size) + a.shape[2:]), 0, 1)

  def body(c, inputs):
    index, x_BxCxD, m_BxC = inputs
    if every:   # truncated BPTT: no gradient into the carry at every k-th step
      c = jax.tree.map(lambda a, cut: jnp.where(index % every == 0, cut, a), c,
                       jax.lax.stop_gradient(c))
    return cell.chunk_step(params, c, x_BxCxD, m_BxC)
  if remat:
    body = jax.checkpoint(body)
  masks = None if mask_BxT is None else to_chunks(mask_BxT)
  carry, ys = jax.lax.scan(body, carry, (jnp.arange(chunks), jax.tree.map(to_chunks, xs_BxTxD),
                                         masks), unroll=unroll)
  ys_BxTxH = jax.tree.map(
      lambda a: jnp.swapaxes(a, 0, 1).reshape((batch, chunks * size) + a.shape[3:])[:, :length],
      ys)
  return carry, jax.tree.map(flip, ys_BxTxH) if reverse else ys_BxTxH


def run(cell: Cell, params, xs_BxTxD, *, carry=None, mask_BxT=None, reverse: bool = False,
        unroll: int = 1, remat: bool = False, truncate_every: Optional[int] = None,
        chunk_size: int = 0):
  """Runs `cell` over the time axis (axis 1) of `xs_BxTxD` with `jax.lax.scan`.

  Args:
    cell: a `ltmjax.cells.Cell`.
    params: the cell's parameters.
    xs_BxTxD: inputs, [B, T, ...]; may be a pytree whose leaves all start with [B, T]
      (LTM-T steps over segments: its x is [B, S, D] per step).
    carry: initial carry; `cell.initial_carry(params, (B,))` when None.
    mask_BxT: bool, True at real steps. Padded steps leave the carry unchanged and
      output zeros.
    reverse: run from the last step to the first (outputs stay in input order).
    unroll: steps per scan iteration (a speed knob; the numbers do not change).
    remat: recompute each step in the backward pass (`jax.checkpoint`) instead of
      storing its intermediates: memory O(T * carry) instead of O(T * activations).
    truncate_every: stop gradients through the carry every k steps (truncated BPTT).
    chunk_size: C > 0 and a cell with `chunk_step`: one scan over chunks of C steps, each
      computed in the cell's parallel/chunkwise form (same numbers; C >= T: one chunk).
      With truncate_every, k must be a multiple of C. Otherwise (0, or no chunk_step)
      the scan of `step`.
  Returns:
    (final carry, ys_BxTxH).
  """
  if chunk_size > 0 and cell.chunk_step is not None:
    return _run_chunked(cell, params, xs_BxTxD, carry, mask_BxT, reverse, unroll, remat,
                        truncate_every, chunk_size)
  leaves = jax.tree.leaves(xs_BxTxD)
  batch, length = leaves[0].shape[:2]
  if cell.project is not None:
    # x W_x for every step in one matmul; only h W_h stays inside the scan. Time-major
    # before projecting: the [T, B, 4H] result (and its cotangent) needs no transpose.
    inputs, step = cell.project(params, _time_major(xs_BxTxD)), cell.step_projected
  else:
    inputs, step = _time_major(xs_BxTxD), cell.step
  if carry is None:
    carry = _default_carry(cell, params, inputs, batch)

  body = _scan_body(step, params)
  if remat:
    body = jax.checkpoint(body)
  # The cell's fused path where it covers these parameters; remat keeps the generic scan
  # (its point is storing only the carry per step).
  fused = (cell.fused is not None and cell.project is not None and not remat
           and cell.fused.applies(params))

  def scan_steps(c, xs):
    if fused:
      return _fused_scan(cell, params, c, xs[0], xs[1], reverse, unroll)
    return jax.lax.scan(body, c, xs, reverse=reverse, unroll=unroll)
  xs_t = (inputs, None if mask_BxT is None else jnp.swapaxes(mask_BxT, 0, 1))

  if truncate_every and truncate_every < length:
    if length % truncate_every:
      raise ValueError(f'truncate_every={truncate_every} must divide the number of steps {length}')
    chunks = length // truncate_every
    xs_c = jax.tree.map(lambda a: a.reshape((chunks, truncate_every) + a.shape[1:]), xs_t)

    def chunk_body(c, xs_chunk):
      return scan_steps(jax.lax.stop_gradient(c), xs_chunk)
    carry, ys_c = jax.lax.scan(chunk_body, carry, xs_c, reverse=reverse)
    ys_t = jax.tree.map(lambda a: a.reshape((length,) + a.shape[2:]), ys_c)
  else:
    carry, ys_t = scan_steps(carry, xs_t)
  return carry, _time_major(ys_t)


def run_bidirectional(cell: Cell, params_fw, params_bw, xs_BxTxD, *, mask_BxT=None, **kw):
  """Forward and backward passes; outputs concatenated on the last axis ([B, T, 2H]).

  With right padding the backward pass starts at the last real step, because padded
  steps leave its initial carry unchanged.
  Returns:
    ((carry_fw, carry_bw), ys_BxTx2H).
  """
  c_fw, ys_fw = run(cell, params_fw, xs_BxTxD, mask_BxT=mask_BxT, **kw)
  c_bw, ys_bw = run(cell, params_bw, xs_BxTxD, mask_BxT=mask_BxT, reverse=True, **kw)
  return (c_fw, c_bw), jnp.concatenate([ys_fw, ys_bw], axis=-1)


def run_stack(cell: Cell, layer_params: Sequence[Any], xs_BxTxD, *, mask_BxT=None,
              bidirectional: bool = False, between=None, carries=None, **kw):
  """Stacked layers, each fed the previous layer's outputs.

  Args:
    layer_params: one entry per layer; `{'fw': p, 'bw': p}` when bidirectional, else p.
    between: optional function applied to each layer's outputs before the next
      layer (dropout, for instance); called as between(layer_index, ys).
    carries: optional initial carry per layer (unidirectional stacks: streaming a
      sequence chunk by chunk passes the final carries of one chunk to the next).
  Returns:
    (list of final carries per layer, ys of the last layer).
  """
  if carries is not None and bidirectional:
    raise ValueError('a bidirectional stack reads the whole sequence; it takes no initial carry')
  finals, ys = [], xs_BxTxD
  for i, p in enumerate(layer_params):
    if i and between is not None:
      ys = between(i, ys)
    if bidirectional:
      c, ys = run_bidirectional(cell, p['fw'], p['bw'], ys, mask_BxT=mask_BxT, **kw)
    else:
      c, ys = run(cell, p, ys, mask_BxT=mask_BxT,
                  carry=None if carries is None else carries[i], **kw)
    finals.append(c)
  return finals, ys
