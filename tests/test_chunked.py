"""recurrence.run(..., chunk_size=C): one scan over chunks of a cell's `chunk_step` gives the
numbers of the scan of its `step` (float64, to 1e-12), with padding, a carry, reverse, remat,
truncated gradients; a cell without `chunk_step` keeps the step scan."""
from absl.testing import parameterized
import chex
import jax
from jax.test_util import check_grads
import jax.numpy as jnp
import numpy as np

from ltmjax import cells, recurrence
from tests import toy_cells

B, T, D, H = 3, 7, 4, 5
LENGTHS = np.array([7, 4, 1])   # right padding; row 0 is unpadded
TOL = dict(rtol=1e-12, atol=1e-12)
CELL = toy_cells.LINEAR


def _setup(seed=0):
  params = CELL.init(jax.random.key(seed), D, H)
  params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
  xs = jax.random.normal(jax.random.key(seed + 1), (B, T, D), jnp.float64)
  carry = jax.random.normal(jax.random.key(seed + 2), (B, H), jnp.float64)
  mask = jnp.asarray(np.arange(T)[None, :] < LENGTHS[:, None])
  return params, xs, carry, mask


class ChunkedRunTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(3, 7, 100)   # 3: padded to 9; 7, 100: one chunk
  def test_equals_step_scan(self, chunk_size):
    with jax.enable_x64(True):
      params, xs, carry, mask = _setup()
      for kw in (dict(), dict(mask_BxT=mask), dict(mask_BxT=mask, carry=carry),
                 dict(mask_BxT=mask, reverse=True), dict(carry=carry, reverse=True)):
        run = lambda p, x, kw=kw, c=0: recurrence.run(CELL, p, x, chunk_size=c, **kw)
        out = self.variant(lambda p, x, kw=kw: run(p, x, kw, chunk_size))(params, xs)
        ref = run(params, xs, kw)
        chex.assert_shape(out[1], (B, T, H))
        self.assertEqual(out[1].dtype, jnp.float64)
        chex.assert_trees_all_close(out, ref, **TOL)
        if 'mask_BxT' in kw:   # padded steps output zeros
          np.testing.assert_array_equal(np.asarray(out[1])[~np.asarray(mask)], 0)

  def test_gradients(self):
    with jax.enable_x64(True):
      params, xs, carry, mask = _setup()

      def loss(chunk_size, p, x, c, **kw):
        c_out, ys = recurrence.run(CELL, p, x, carry=c, mask_BxT=mask, chunk_size=chunk_size,
                                   **kw)
        return jnp.sum(ys ** 2) + jnp.sum(jnp.sin(c_out))
      ref = jax.jit(jax.grad(lambda *a: loss(0, *a), argnums=(0, 1, 2)))(params, xs, carry)
      for kw in (dict(), dict(remat=True), dict(truncate_every=7)):
        grads = jax.jit(jax.grad(lambda *a, kw=kw: loss(3, *a, **kw), argnums=(0, 1, 2)))(
            params, xs, carry)
        chex.assert_trees_all_close(grads, ref, **TOL)
      check_grads(jax.jit(lambda p, x, c: loss(3, p, x, c)), (params, xs, carry), order=1,
                  modes=('rev',))

  def test_truncated_gradients(self):
    """Gradients stop at the same steps as the step scan's truncation (k a multiple of C)."""
    with jax.enable_x64(True):
      params, _, carry, _ = _setup()
      xs = jax.random.normal(jax.random.key(5), (B, 8, D), jnp.float64)

      def grads(chunk_size, reverse):
        def loss(p, x, c):
          return jnp.sum(recurrence.run(CELL, p, x, carry=c, chunk_size=chunk_size,
                                        truncate_every=4, reverse=reverse)[1] ** 2)
        return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(params, xs, carry)
      for reverse in (False, True):
        chex.assert_trees_all_close(grads(2, reverse), grads(0, reverse), **TOL)
      with self.assertRaisesRegex(ValueError, 'multiple of chunk_size'):
        recurrence.run(CELL, params, xs, chunk_size=3, truncate_every=4)

  def test_stack_and_bidirectional_pass_chunk_size(self):
    with jax.enable_x64(True):
      params, xs, _, mask = _setup()
      layers = [params, jax.tree.map(lambda a: a.astype(jnp.float64),
                                     CELL.init(jax.random.key(9), H, H))]
      for bidirectional in (False, True):
        stack = layers if not bidirectional else [{'fw': params, 'bw': params}]
        out = recurrence.run_stack(CELL, stack, xs, mask_BxT=mask, chunk_size=2,
                                   bidirectional=bidirectional)
        ref = recurrence.run_stack(CELL, stack, xs, mask_BxT=mask, bidirectional=bidirectional)
        chex.assert_trees_all_close(out, ref, **TOL)

  def test_cell_without_chunk_step_keeps_the_step_scan(self):
    params = cells.LSTM.init(jax.random.key(0), D, H)
    xs = jax.random.normal(jax.random.key(1), (B, T, D))
    chex.assert_trees_all_close(recurrence.run(cells.LSTM, params, xs, chunk_size=3),
                                recurrence.run(cells.LSTM, params, xs), rtol=1e-6)
