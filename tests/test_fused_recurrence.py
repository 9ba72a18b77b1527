"""Tests for the fused sequence path of ltmjax.recurrence (`Cell.fused`, LSTM and GRU).

The fused path (custom JVP, per-step linearisation coefficients, one W_h-gradient GEMM)
must give the generic scan's values and gradients, in every mode the generic scan has.
"""
import dataclasses

from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np

from ltmjax import cells, recurrence

B, T, D, H = 3, 6, 4, 5
MASK = np.arange(T)[None, :] < np.array([6, 3, 1])[:, None]
CELLS = (('lstm', cells.LSTM), ('gru', cells.GRU))
RUNS = (('mask_reverse', {'mask_BxT': MASK, 'reverse': True}), ('plain', {}),
        ('truncate', {'truncate_every': 3}))


def _generic(cell):
  return dataclasses.replace(cell, fused=None)


def _loss(cell, **kw):
  def loss(params, xs, carry):
    final, ys = recurrence.run(cell, params, xs, carry=carry, **kw)
    return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(a ** 2) for a in jax.tree.leaves(final))
  return loss


def _setup(cell, dtype=jnp.float32):
  params = cell.init(jax.random.key(0), D, H, dtype=dtype)
  xs = jax.random.normal(jax.random.key(1), (B, T, D), dtype)
  carry = jax.tree.map(lambda c: c + 0.3, cell.initial_carry(params, (B,)))
  return params, xs, carry


def _product(*groups):
  return [(f'{a[0]}_{b[0]}', a[1], b[1]) for a in groups[0] for b in groups[1]]


class FusedTest(chex.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*_product(CELLS, RUNS))
  def test_values_and_gradients_equal_generic_scan(self, cell, kw):
    with jax.enable_x64(True):
      args = _setup(cell, jnp.float64)
      fused, generic = (jax.jit(jax.value_and_grad(_loss(c, **kw), argnums=(0, 1, 2)))(*args)
                        for c in (cell, _generic(cell)))
      chex.assert_trees_all_close(fused, generic, rtol=1e-10, atol=1e-12)

  @parameterized.named_parameters(*_product(CELLS, RUNS[:1]))
  def test_check_grads_forward_and_reverse(self, cell, kw):
    with jax.enable_x64(True):
      check_grads(jax.jit(_loss(cell, **kw)), _setup(cell, jnp.float64), order=1,
                  modes=['fwd', 'rev'], atol=1e-5, rtol=1e-5)

  @parameterized.named_parameters(*CELLS)
  def test_fused_path_is_taken(self, cell):
    params, xs, carry = _setup(cell)
    jaxpr = str(jax.make_jaxpr(_loss(cell))(params, xs, carry))
    self.assertIn('custom_jvp_call', jaxpr)
    # remat keeps the generic scan (it stores only the carry per step).
    self.assertNotIn('custom_jvp_call', str(jax.make_jaxpr(_loss(cell, remat=True))(params, xs, carry)))

  def test_peephole_falls_back_to_generic_scan(self):
    params = cells.LSTM.init(jax.random.key(0), D, H, peephole=True)
    xs = jax.random.normal(jax.random.key(1), (B, T, D))
    self.assertFalse(cells.LSTM.fused.applies(params))
    loss = _loss(cells.LSTM, mask_BxT=MASK)
    self.assertNotIn('custom_jvp_call', str(jax.make_jaxpr(loss)(params, xs, None)))
    chex.assert_trees_all_close(jax.grad(loss)(params, xs, None),
                                jax.grad(_loss(_generic(cells.LSTM), mask_BxT=MASK))(params, xs, None))

  @parameterized.named_parameters(*CELLS)
  def test_bfloat16_close_to_float32(self, cell):
    params, xs, carry = _setup(cell)
    g32 = jax.grad(_loss(cell), argnums=1)(params, xs, carry)
    g16 = jax.grad(_loss(cell), argnums=1)(params, xs.astype(jnp.bfloat16),
                                           jax.tree.map(lambda c: c.astype(jnp.bfloat16), carry))
    self.assertEqual(g16.dtype, jnp.bfloat16)
    np.testing.assert_allclose(np.asarray(g16, np.float32), g32, atol=0.1, rtol=0.1)

  def test_backward_loop_has_one_matmul_per_step(self):
    # The W_h gradient is one GEMM after the loop: the backward while body holds ONE dot.
    params, xs, carry = _setup(cells.LSTM)
    jaxpr = jax.make_jaxpr(jax.grad(_loss(cells.LSTM)))(params, xs, carry)
    scans = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == 'scan']
    dots = [sum(q.primitive.name == 'dot_general' for q in s.params['jaxpr'].jaxpr.eqns)
            for s in scans]
    self.assertEqual(dots, [1, 1])   # forward h W_h; backward dGates W_h^T
