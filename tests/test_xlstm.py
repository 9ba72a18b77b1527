"""xLSTM mixer cells (mLSTM, sLSTM): each step against a float64 NumPy reference
(tests/references.py), the mLSTM's chunkwise form against its step scan, gradients, padding,
causality, streaming in chunks and bfloat16."""
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np

import ml_collections

from ltmjax import cells, models, recurrence
from ltmjax.cells import mlstm, slstm
from ltmjax.errors import ConfigError
from ltmjax.tasks.base import TaskSpec
from tests import references

B, T, D = 2, 9, 8   # mLSTM: E = 16, 2 heads of K = 8, conv 4, qkv blocks of 4; sLSTM: 2 heads of 4
MODULES = {'mlstm': mlstm, 'slstm': slstm}
OPTS = {'mlstm': {'heads': 2}, 'mlstm_exp': {'heads': 2, 'forget_gate': 'exp'},
        'slstm': {'heads': 2}}
REFERENCES = {'mlstm': references.mlstm_step, 'slstm': references.slstm_step}


def _cell(case):
  return cells.get(case.split('_')[0])


def _setup(case, dtype=jnp.float64, seed=0, batch=B, length=T):
  """Randomised params (init's zeros and ones would hide terms), inputs, a random carry
  (the stabiliser m and the normaliser n of a real run are nonzero)."""
  k_p, k_x, k_c = jax.random.split(jax.random.key(seed), 3)
  name = case.split('_')[0]
  params = references.randomize(MODULES[name].init(k_p, D, D, dtype=dtype, **OPTS[case]),
                                seed + 1)
  xs = jax.random.normal(k_x, (batch, length, D), dtype)
  carry = MODULES[name].initial_carry(params, (batch,))
  leaves, treedef = jax.tree.flatten(carry)
  keys = jax.random.split(k_c, len(leaves))
  # sLSTM's normaliser n is a sum of positive gates: keep it positive.
  leaves = [0.5 * jax.random.normal(k, a.shape, a.dtype)
            + (1.0 if name == 'slstm' and i == 1 else 0)
            for i, (k, a) in enumerate(zip(keys, leaves))]
  return params, xs, jax.tree.unflatten(treedef, leaves)


def _mask(seed=3, batch=B, length=T):
  """Random holes and a fully padded tail in row 0 (every pattern the masked scan allows)."""
  m = jax.random.bernoulli(jax.random.key(seed), 0.7, (batch, length))
  return m.at[0, -3:].set(False)


def _close(a, b, tol):
  chex.assert_trees_all_close(a, b, rtol=tol, atol=tol)


class XLSTMCellTest(chex.TestCase, parameterized.TestCase):

  def test_init(self):
    p = mlstm.init(jax.random.key(0), D, D, heads=2)
    e = 2 * D
    chex.assert_shape([p[k] for k in ('w_up', 'conv_w', 'conv_b', 'w_q', 'w_k', 'w_v', 'w_i',
                                      'b_i', 'w_f', 'b_f', 'norm', 'skip', 'w_down')],
                      [(D, 2 * e), (4, e), (e,), (4, 4, 4), (4, 4, 4), (4, 4, 4), (3 * e, 2),
                       (2,), (3 * e, 2), (2,), (e,), (e,), (e, D)])
    np.testing.assert_allclose(p['b_f'], [3.0, 6.0])   # NX-AI's linspace forget bias
    p_exp = mlstm.init(jax.random.key(0), D, D, heads=2, forget_gate='exp')
    self.assertNotIn('w_f', p_exp)   # the exponential gate starts at the sigmoid gate's values
    np.testing.assert_allclose(p_exp['b_logf'], jax.nn.log_sigmoid(p['b_f']), rtol=1e-6)
    carry = mlstm.initial_carry(p, (3,))
    chex.assert_shape([carry['C'], carry['n'], carry['m'], carry['conv']],
                      [(3, 2, 8, 8), (3, 2, 8), (3, 2), (3, 3, e)])
    s = slstm.init(jax.random.key(0), D, D, heads=2)
    chex.assert_shape([s['w_x'], s['r'], s['b'], s['norm']],
                      [(D, 4 * D), (2, 4, 4, 4), (4 * D,), (D,)])
    np.testing.assert_allclose(s['b'][D:2 * D], np.linspace(3, 6, D), rtol=1e-6)
    chex.assert_shape(slstm.initial_carry(s, (3,)), [(3, D)] * 4)
    self.assertEqual((mlstm.hidden_size(p), slstm.hidden_size(s)), (D, D))
    for bad in (lambda: mlstm.init(jax.random.key(0), D, 4), lambda: mlstm.init(
        jax.random.key(0), D, D, heads=3), lambda: mlstm.init(jax.random.key(0), D, D,
                                                            forget_gate='tanh'),
                lambda: slstm.init(jax.random.key(0), D, D, heads=3)):
      with self.assertRaises(ConfigError):
        bad()

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters('mlstm', 'mlstm_exp', 'slstm')
  def test_step_matches_numpy_float64(self, case):
    with jax.enable_x64(True):
      params, xs, carry = _setup(case)
      p_np, c_np = references.as_numpy(params), references.as_numpy(carry)
      if isinstance(c_np, list):
        c_np = tuple(c_np)
      step = self.variant(_cell(case).step)
      for t in range(5):   # several steps: the conv window fills, the stabiliser moves
        carry, y = step(params, carry, xs[:, t])
        c_np, y_np = REFERENCES[case.split('_')[0]](p_np, c_np, np.asarray(xs[:, t]))
        _close((carry, y), (c_np, y_np), 1e-12)

  @chex.variants(with_jit=True)
  @parameterized.parameters(('mlstm', True, 1), ('mlstm', True, 4), ('mlstm', False, T + 3),
                            ('mlstm_exp', True, 4), ('mlstm_exp', False, T + 3))
  def test_chunked_equals_step_scan_float64(self, case, masked, chunk):
    with jax.enable_x64(True):
      params, xs, carry = _setup(case)
      mask = _mask() if masked else None
      run = lambda size: self.variant(
          lambda p, c, x, m: recurrence.run(_cell(case), p, x, carry=c, mask_BxT=m,
                                            chunk_size=size))
      expected = run(0)(params, carry, xs, mask)
      _close(run(chunk)(params, carry, xs, mask), expected, 1e-10)
      # and chunk_step called directly on the whole sequence
      _close(mlstm.chunk_step(params, carry, xs, mask), expected, 1e-10)

  def test_project_hoisted_equals_step(self):
    # recurrence.run hoists `project` out of the scan; the loop of `step` gives the same.
    with jax.enable_x64(True):
      for case in ('mlstm', 'slstm'):
        params, xs, carry = _setup(case)
        c_loop, ys = carry, []
        for t in range(T):
          c_loop, y = _cell(case).step(params, c_loop, xs[:, t])
          ys.append(y)
        _close(recurrence.run(_cell(case), params, xs, carry=carry),
               (c_loop, jnp.stack(ys, 1)), 1e-12)

  @parameterized.parameters(('mlstm', 4), ('slstm', 0))
  def test_padding(self, case, chunk):
    # A right-padded row gives its unpadded run's outputs and final carry.
    with jax.enable_x64(True):
      params, xs, _ = _setup(case)
      lengths = (5, T)
      mask = jnp.arange(T)[None] < jnp.array(lengths)[:, None]
      xs_pad = jnp.where(mask[..., None], xs, 7.0)   # junk in the padding
      carry, ys = recurrence.run(_cell(case), params, xs_pad, mask_BxT=mask, chunk_size=chunk)
      for row, length in enumerate(lengths):
        c_row, y_row = recurrence.run(_cell(case), params, xs[row:row + 1, :length],
                                      chunk_size=chunk)
        _close(ys[row:row + 1, :length], y_row, 1e-12)
        np.testing.assert_array_equal(ys[row, length:], 0.0)
        _close(jax.tree.map(lambda a: a[row:row + 1], carry), c_row, 1e-12)

  def test_holes_equal_compacted_sequence(self):
    # Padded steps in the middle are skipped, by the mLSTM's chunk conv window too: the real
    # steps' outputs equal those of the sequence with the holes removed.
    with jax.enable_x64(True):
      params, xs, carry = _setup('mlstm', batch=1)
      mask = jnp.array([[True, False, True, True, False, False, True, True, False]])
      _, ys = mlstm.chunk_step(params, carry, jnp.where(mask[..., None], xs, 5.0), mask)
      c_ref, y_ref = recurrence.run(cells.get('mlstm'), params, xs[:, np.asarray(mask[0])],
                                    carry=carry)
      _close(ys[:, np.asarray(mask[0])], y_ref, 1e-12)
      np.testing.assert_array_equal(ys[:, ~np.asarray(mask[0])], 0.0)

  @parameterized.parameters(('mlstm', 4), ('slstm', 0))
  def test_causal(self, case, chunk):
    # d y_t / d x_s == 0 for s > t, and > 0 for every s <= t (the memory reaches back to x_0).
    with jax.enable_x64(True):
      params, xs, _ = _setup(case, batch=1)
      t = 5
      f = lambda x: recurrence.run(_cell(case), params, x, chunk_size=chunk)[1][0, t].sum()
      g = np.abs(np.asarray(jax.jit(jax.grad(f))(xs))[0]).sum(-1)
      np.testing.assert_array_equal(g[t + 1:], 0.0)
      self.assertTrue(np.all(g[:t + 1] > 0), g)

  @parameterized.parameters(('mlstm', 5), ('mlstm_exp', 0), ('slstm', 0))
  def test_check_grads_float64(self, case, chunk):
    with jax.enable_x64(True):
      params, xs, carry = _setup(case, length=5)
      mask = _mask(length=5)

      def f(p, c, x):
        new_c, ys = recurrence.run(_cell(case), p, x, carry=c, mask_BxT=mask, chunk_size=chunk)
        return sum(jnp.sum(jnp.sin(a)) for a in jax.tree.leaves((new_c, ys)))
      check_grads(jax.jit(f), (params, carry, xs), order=1, modes=['rev'], atol=1e-6, rtol=1e-6)

  @parameterized.parameters(('mlstm', 4), ('slstm', 0))
  def test_streaming_in_chunks(self, case, chunk):
    # Uneven pieces with the carry passed on == the whole sequence at once.
    with jax.enable_x64(True):
      params, xs, _ = _setup(case, length=11)
      expected = recurrence.run(_cell(case), params, xs, chunk_size=11 if chunk else 0)
      carry, pieces = None, []
      for start, stop in ((0, 2), (2, 7), (7, 11)):
        carry, ys = recurrence.run(_cell(case), params, xs[:, start:stop], carry=carry,
                                   chunk_size=chunk)
        pieces.append(ys)
      _close((carry, jnp.concatenate(pieces, axis=1)), expected, 1e-10)

  @parameterized.parameters(('mlstm', 4), ('slstm', 0))
  def test_bfloat16(self, case, chunk):
    params, xs, carry = _setup(case, dtype=jnp.float32)
    bf16 = lambda tree: jax.tree.map(lambda a: a.astype(jnp.bfloat16), tree)
    new_c, ys = jax.jit(lambda p, c, x: recurrence.run(_cell(case), p, x, carry=c,
                                                       chunk_size=chunk))(
        bf16(params), bf16(carry), bf16(xs))
    chex.assert_type(ys, jnp.bfloat16)
    chex.assert_trees_all_equal_dtypes(new_c, bf16(carry))
    _, ys32 = recurrence.run(_cell(case), params, xs, carry=carry, chunk_size=chunk)
    chex.assert_tree_all_finite(ys32)
    np.testing.assert_allclose(np.asarray(ys, np.float32), ys32, atol=0.15, rtol=0.05)


class XLSTMModelTest(parameterized.TestCase):

  @parameterized.parameters(('mlstm', 3), ('slstm', 0))
  def test_model_streams_in_pieces_and_chunkwise_equals_step_scan(self, name, chunk):
    # The residual model (models/residual.py) of each cell: uneven pieces with the carry
    # passed on give the whole sequence's outputs and carry; the mLSTM's chunkwise model
    # equals its step-scan model.
    spec = TaskSpec('tokens', 9, 'token', 4, 11, causal=True)
    cfg = dict(models.get(name).default_config(), name=name, dim=8, heads=2, chunk_size=chunk)
    model = models.build(ml_collections.ConfigDict(cfg), spec)
    x = jax.random.randint(jax.random.key(0), (2, 11), 1, 9)
    mask = jnp.asarray(np.arange(11)[None] < np.array([[11], [6]]))
    variables = model.init(jax.random.key(1), x, mask)
    variables = {'params': references.randomize(variables['params'], 2, 0.1)}
    full, carry_all = model.apply(variables, x, mask, return_carry=True)
    if chunk:
      step_model = models.build(ml_collections.ConfigDict(dict(cfg, chunk_size=0)), spec)
      chex.assert_trees_all_close(step_model.apply(variables, x, mask), full, atol=1e-5)
    carry, outs = model.apply(variables, 2, method='initial_carry'), []
    for start, stop in ((0, 2), (2, 7), (7, 11)):
      out, carry = model.apply(variables, x[:, start:stop], mask[:, start:stop], carry=carry,
                               return_carry=True)
      outs.append(out)
    chex.assert_trees_all_close(jnp.concatenate(outs, axis=1), full, atol=1e-5)
    chex.assert_trees_all_close(carry, carry_all, atol=1e-5)
