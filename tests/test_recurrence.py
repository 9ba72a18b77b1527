"""Tests for ltmjax.recurrence: scan == step loop, masks, reverse, stacks, remat, truncation."""
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from ltmjax import cells, recurrence

B, T, D, H = 3, 7, 4, 5
LENGTHS = np.array([7, 4, 1])   # per-row real lengths (right padding)


def _params(cell, seed=0, **opts):
  return cell.init(jax.random.key(seed), D, H, **opts)


def _xs(seed=1, shape=(B, T, D)):
  return jax.random.normal(jax.random.key(seed), shape)


def _mask():
  return jnp.asarray(np.arange(T)[None, :] < LENGTHS[:, None])


def loop_reference(cell, params, xs_BxTxD, mask_BxT=None, reverse=False):
  """Step-by-step Python loop over `cell.step` (the test's reference, not library code)."""
  carry = cell.initial_carry(params, (xs_BxTxD.shape[0],))
  ys = [None] * xs_BxTxD.shape[1]
  order = range(xs_BxTxD.shape[1])
  for t in (reversed(order) if reverse else order):
    new_carry, y = cell.step(params, carry, xs_BxTxD[:, t])
    if mask_BxT is not None:
      m = mask_BxT[:, t][:, None]
      new_carry = jax.tree.map(lambda n, o: jnp.where(m, n, o), new_carry, carry)
      y = jnp.where(m, y, 0.0)
    carry, ys[t] = new_carry, y
  return carry, jnp.stack(ys, axis=1)


CELLS = (('lstm', cells.LSTM, {}), ('peephole', cells.LSTM, {'peephole': True}),
         ('gru', cells.GRU, {}))
TOL = dict(rtol=1e-5, atol=1e-6)


class RunTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(*CELLS)
  def test_equals_step_loop(self, cell, opts):
    params, xs, mask = _params(cell, **opts), _xs(), _mask()
    # Row 0 is unpadded, so the masked runs also cover the mask-free path.
    for kw in (dict(mask_BxT=mask), dict(mask_BxT=mask, reverse=True)):
      out = self.variant(lambda p, x, kw=kw: recurrence.run(cell, p, x, **kw))(params, xs)
      ref = loop_reference(cell, params, xs, kw.get('mask_BxT'), kw.get('reverse', False))
      chex.assert_shape(out[1], (B, T, H))
      chex.assert_trees_all_close(out, ref, **TOL)

  def test_initial_carry_argument(self):
    params, xs = _params(cells.LSTM), _xs()
    c1, ys1 = recurrence.run(cells.LSTM, params, xs[:, :3])
    c2, ys2 = recurrence.run(cells.LSTM, params, xs[:, 3:], carry=c1)
    c_full, ys_full = recurrence.run(cells.LSTM, params, xs)
    chex.assert_trees_all_close(c2, c_full, **TOL)
    np.testing.assert_allclose(jnp.concatenate([ys1, ys2], 1), ys_full, **TOL)

  @parameterized.named_parameters(*CELLS)
  def test_padding_invariance(self, cell, opts):
    params, xs, mask = _params(cell, **opts), _xs(), _mask()
    run = jax.jit(lambda x: recurrence.run(cell, params, x, mask_BxT=mask))
    carry, ys = run(xs)
    # Changing padded inputs changes nothing.
    noise = 100.0 * _xs(seed=5)
    carry2, ys2 = run(jnp.where(mask[..., None], xs, noise))
    chex.assert_trees_all_close((carry, ys), (carry2, ys2), **TOL)
    # Padded steps output zeros; the final carry is the carry after the last real step.
    for b, n in enumerate(LENGTHS):
      np.testing.assert_array_equal(ys[b, n:], 0.0)
      c_b, ys_b = recurrence.run(cell, params, xs[b:b + 1, :n])
      chex.assert_trees_all_close(jax.tree.map(lambda a: a[b:b + 1], carry), c_b, **TOL)
      np.testing.assert_allclose(ys[b:b + 1, :n], ys_b, **TOL)

  def test_padded_steps_keep_carry(self):
    # A fully padded sequence returns the initial carry unchanged, whatever it is.
    params, xs = _params(cells.LSTM), _xs()
    init = jax.tree.map(lambda a: a + 0.3, cells.LSTM.initial_carry(params, (B,)))
    carry, ys = recurrence.run(cells.LSTM, params, xs, carry=init,
                               mask_BxT=jnp.zeros((B, T), bool))
    chex.assert_trees_all_close(carry, init)
    np.testing.assert_array_equal(ys, 0.0)

  @parameterized.named_parameters(*CELLS)
  def test_reverse_equals_flipped(self, cell, opts):
    params, xs = _params(cell, **opts), _xs()
    c_rev, ys_rev = recurrence.run(cell, params, xs, reverse=True)
    c_flip, ys_flip = recurrence.run(cell, params, xs[:, ::-1])
    chex.assert_trees_all_close(c_rev, c_flip, **TOL)
    np.testing.assert_allclose(ys_rev, ys_flip[:, ::-1], **TOL)

  def test_reverse_with_padding_starts_at_last_real_token(self):
    params, xs, mask = _params(cells.LSTM), _xs(), _mask()
    carry, ys = recurrence.run(cells.LSTM, params, xs, mask_BxT=mask, reverse=True)
    for b, n in enumerate(LENGTHS):
      # Reverse over the real tokens only == forward over them flipped.
      c_b, ys_b = recurrence.run(cells.LSTM, params, xs[b:b + 1, :n][:, ::-1])
      chex.assert_trees_all_close(jax.tree.map(lambda a: a[b:b + 1], carry), c_b, **TOL)
      np.testing.assert_allclose(ys[b:b + 1, :n], ys_b[:, ::-1], **TOL)
      np.testing.assert_array_equal(ys[b, n:], 0.0)

  def test_unroll_identical(self):
    params, xs, mask = _params(cells.LSTM), _xs(), _mask()
    ref = recurrence.run(cells.LSTM, params, xs, mask_BxT=mask)
    for unroll in (3, T):  # 3 does not divide T: the remainder steps run too
      out = recurrence.run(cells.LSTM, params, xs, mask_BxT=mask, unroll=unroll)
      chex.assert_trees_all_close(out, ref, **TOL)

  def test_remat_same_values_and_gradients(self):
    params, xs, mask = _params(cells.LSTM), _xs(), _mask()

    def loss(p, x, remat):
      _, ys = recurrence.run(cells.LSTM, p, x, mask_BxT=mask, remat=remat)
      return jnp.sum(ys ** 2)
    g = jax.jit(jax.value_and_grad(loss, (0, 1)), static_argnums=2)
    chex.assert_trees_all_close(g(params, xs, True), g(params, xs, False), **TOL)

  def test_truncate_every(self):
    params, xs = _params(cells.LSTM), _xs(shape=(B, 6, D))

    def outputs(x, reverse, truncate_every):
      return recurrence.run(cells.LSTM, params, x, reverse=reverse, truncate_every=truncate_every)

    def end_output_grad(x, reverse, truncate_every):
      # The output at the scan's last step (t = T-1 forward, t = 0 in reverse).
      pick = 0 if reverse else -1
      return jax.grad(lambda x: jnp.sum(outputs(x, reverse, truncate_every)[1][:, pick]))(x)

    @jax.jit  # one program for every case: compiling is most of this test's time
    def everything(x):
      return {(rev, k): (outputs(x, rev, k or None), end_output_grad(x, rev, k or None))
              for rev in (False, True) for k in (0, 3)}
    res = everything(xs)
    for rev in (False, True):
      (out_full, g_full), (out_trunc, g_trunc) = res[rev, 0], res[rev, 3]
      chex.assert_trees_all_close(out_trunc, out_full, **TOL)
      # The end output sees the first window (in scan order) only through the carry,
      # which is cut: zero gradient there, the full gradient inside its own window.
      first, last = (slice(3, None), slice(None, 3)) if rev else (slice(None, 3), slice(3, None))
      np.testing.assert_array_equal(g_trunc[:, first], 0.0)
      self.assertGreater(float(jnp.abs(g_full[:, first]).max()), 1e-6)
      np.testing.assert_allclose(g_trunc[:, last], g_full[:, last], **TOL)

  def test_truncate_every_must_divide(self):
    with self.assertRaises(ValueError):
      recurrence.run(cells.LSTM, _params(cells.LSTM), _xs(), truncate_every=3)

  def test_pytree_inputs(self):
    # A cell without `project` whose step takes a dict input: run scans every leaf's axis 1.
    def step(params, h_BxH, x):
      h = jnp.tanh(x['a'] @ params['w'] + x['b'].sum((-2, -1))[:, None] + h_BxH)
      return h, {'h': h, 'twice': 2 * h}
    cell = cells.Cell('toy', init=None, initial_carry=lambda p, bs: jnp.zeros((*bs, H)),
                      step=step)
    params = {'w': jax.random.normal(jax.random.key(0), (D, H))}
    xs = {'a': _xs(), 'b': _xs(seed=2, shape=(B, T, 2, 3))}
    mask = _mask()
    carry, ys = recurrence.run(cell, params, xs, mask_BxT=mask)
    chex.assert_shape([ys['h'], ys['twice']], [(B, T, H)] * 2)

    @jax.jit
    def reference(xs):
      h, hs = jnp.zeros((B, H)), []
      for t in range(T):
        new_h, _ = step(params, h, jax.tree.map(lambda a, t=t: a[:, t], xs))
        h = jnp.where(mask[:, t][:, None], new_h, h)
        hs.append(jnp.where(mask[:, t][:, None], new_h, 0))
      return h, jnp.stack(hs, 1)
    h, hs = reference(xs)
    np.testing.assert_allclose(carry, h, **TOL)
    np.testing.assert_allclose(ys['h'], hs, **TOL)
    np.testing.assert_allclose(ys['twice'], 2 * ys['h'], **TOL)


class BidirectionalStackTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_bidirectional_is_fw_and_bw(self):
    p_fw, p_bw = _params(cells.GRU, 0), _params(cells.GRU, 1)
    xs, mask = _xs(), _mask()
    (c_fw, c_bw), ys = self.variant(
        lambda a, b, x: recurrence.run_bidirectional(cells.GRU, a, b, x, mask_BxT=mask))(
            p_fw, p_bw, xs)
    chex.assert_shape(ys, (B, T, 2 * H))
    ref_fw = recurrence.run(cells.GRU, p_fw, xs, mask_BxT=mask)
    ref_bw = recurrence.run(cells.GRU, p_bw, xs, mask_BxT=mask, reverse=True)
    chex.assert_trees_all_close((c_fw, ys[..., :H]), ref_fw, **TOL)
    chex.assert_trees_all_close((c_bw, ys[..., H:]), ref_bw, **TOL)

  @chex.variants(with_jit=True, without_jit=True)
  def test_stack_is_composition(self):
    p0 = cells.LSTM.init(jax.random.key(0), D, H)
    p1 = cells.LSTM.init(jax.random.key(1), H, H)
    xs, mask = _xs(), _mask()
    between = lambda i, ys: ys * (i + 1.5)
    carries, ys = self.variant(lambda ps, x: recurrence.run_stack(
        cells.LSTM, ps, x, mask_BxT=mask, between=between))([p0, p1], xs)
    c0, y0 = recurrence.run(cells.LSTM, p0, xs, mask_BxT=mask)
    c1, y1 = recurrence.run(cells.LSTM, p1, between(1, y0), mask_BxT=mask)
    chex.assert_shape(ys, (B, T, H))
    chex.assert_trees_all_close((carries, ys), ([c0, c1], y1), **TOL)

  def test_bidirectional_stack_is_composition(self):
    layer0 = {'fw': cells.LSTM.init(jax.random.key(0), D, H),
              'bw': cells.LSTM.init(jax.random.key(1), D, H)}
    layer1 = {'fw': cells.LSTM.init(jax.random.key(2), 2 * H, H),
              'bw': cells.LSTM.init(jax.random.key(3), 2 * H, H)}
    xs, mask = _xs(), _mask()
    @jax.jit
    def both(xs):
      stacked = recurrence.run_stack(cells.LSTM, [layer0, layer1], xs, mask_BxT=mask,
                                     bidirectional=True, unroll=2)
      c0, y0 = recurrence.run_bidirectional(cells.LSTM, layer0['fw'], layer0['bw'], xs,
                                            mask_BxT=mask)
      c1, y1 = recurrence.run_bidirectional(cells.LSTM, layer1['fw'], layer1['bw'], y0,
                                            mask_BxT=mask)
      return stacked, ([c0, c1], y1)
    (carries, ys), ref = both(xs)
    chex.assert_shape(ys, (B, T, 2 * H))
    chex.assert_trees_all_close((carries, ys), ref, **TOL)
