"""Tests for ltmjax.cells: LSTM (plain, peephole) and GRU against numpy, flax and torch references
(torch's outputs are committed fixtures, tests/fixtures/torch/)."""
import importlib.util
import os

from absl.testing import parameterized
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from ltmjax import cells
from tests import references

B, D, H = 3, 5, 4


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _np(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def _randomize(params, key, scale=0.5):
  """Random values for every parameter (init zeroes the biases, which would hide mistakes)."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [
      scale * jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves)])


def np_lstm_step(p, c, h, x):
  """Seeds 001-003 written out gate by gate (i, f, g, o blocks of w_x, w_h, b)."""
  def gate(k):
    sl = slice(k * H, (k + 1) * H)
    return x @ p['w_x'][:, sl] + h @ p['w_h'][:, sl] + p['b'][sl]
  i_pre, f_pre, g_pre, o_pre = gate(0), gate(1), gate(2), gate(3)
  if 'p_i' in p:
    i_pre = i_pre + p['p_i'] * c     # i and f see c_{t-1}
    f_pre = f_pre + p['p_f'] * c
  c_new = _sigmoid(f_pre) * c + _sigmoid(i_pre) * np.tanh(g_pre)
  if 'p_o' in p:
    o_pre = o_pre + p['p_o'] * c_new  # o sees c_t
  h_new = _sigmoid(o_pre) * np.tanh(c_new)
  return c_new, h_new


def np_gru_step(p, h, x):
  """PyTorch's GRU equations (gate order r, z, n; b_hn inside the reset product)."""
  def part(w, k):
    return w[:, k * H:(k + 1) * H]
  def bias(b, k):
    return b[k * H:(k + 1) * H]
  r = _sigmoid(x @ part(p['w_x'], 0) + bias(p['b_x'], 0) + h @ part(p['w_h'], 0) + bias(p['b_h'], 0))
  z = _sigmoid(x @ part(p['w_x'], 1) + bias(p['b_x'], 1) + h @ part(p['w_h'], 1) + bias(p['b_h'], 1))
  n = np.tanh(x @ part(p['w_x'], 2) + bias(p['b_x'], 2)
              + r * (h @ part(p['w_h'], 2) + bias(p['b_h'], 2)))
  return (1.0 - z) * n + z * h


CASES = (('lstm', cells.LSTM, {}), ('peephole', cells.LSTM, {'peephole': True}),
         ('gru', cells.GRU, {}))


def _setup(cell, opts, dtype=jnp.float32, seed=0):
  k_p, k_r, k_x, k_c = jax.random.split(jax.random.key(seed), 4)
  params = _randomize(cell.init(k_p, D, H, dtype=dtype, **opts), k_r)
  x = jax.random.normal(k_x, (B, D), dtype)
  carry = jax.tree.map(lambda a: 0.5 * jax.random.normal(k_c, a.shape, a.dtype),
                       cell.initial_carry(params, (B,)))
  return params, carry, x


class CellTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(*CASES)
  def test_shapes_dtypes_finite(self, cell, opts):
    params, carry, x = _setup(cell, opts)
    new_carry, y = self.variant(lambda p, c, x: cell.step(p, c, x))(params, carry, x)
    chex.assert_shape(y, (B, H))
    chex.assert_type(y, jnp.float32)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_carry, carry)
    chex.assert_tree_all_finite((new_carry, y))
    self.assertEqual(cell.hidden_size(params), H)

  @parameterized.named_parameters(*CASES)
  def test_init_layout(self, cell, opts):
    params = cell.init(jax.random.key(0), D, H, **opts)
    g = 4 if cell is cells.LSTM else 3
    chex.assert_shape([params['w_x'], params['w_h']], [(D, g * H), (H, g * H)])
    if cell is cells.LSTM:
      # Forget-gate bias starts at 1 (second block of i, f, g, o); the others at 0.
      np.testing.assert_array_equal(params['b'][H:2 * H], 1.0)
      np.testing.assert_array_equal(params['b'][:H], 0.0)
      np.testing.assert_array_equal(params['b'][2 * H:], 0.0)
      self.assertEqual('p_i' in params, bool(opts))
      if opts:
        chex.assert_shape([params['p_i'], params['p_f'], params['p_o']], [(H,)] * 3)
    # Each gate's recurrent block is orthogonal.
    for k in range(g):
      blk = np.asarray(params['w_h'][:, k * H:(k + 1) * H])
      np.testing.assert_allclose(blk.T @ blk, np.eye(H), atol=1e-5)

  def test_forget_bias_option(self):
    params = cells.LSTM.init(jax.random.key(0), D, H, forget_bias=2.5)
    np.testing.assert_array_equal(params['b'][H:2 * H], 2.5)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(*CASES)
  def test_matches_numpy_reference(self, cell, opts):
    params, carry, x = _setup(cell, opts)
    new_carry, y = self.variant(lambda p, c, x: cell.step(p, c, x))(params, carry, x)
    p, x_np = _np(params), np.asarray(x, np.float64)
    if cell is cells.LSTM:
      c_ref, h_ref = np_lstm_step(p, *_np(carry), x_np)
      np.testing.assert_allclose(new_carry[0], c_ref, rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(new_carry[1], h_ref, rtol=1e-5, atol=1e-6)
    else:
      h_ref = np_gru_step(p, _np(carry), x_np)
      np.testing.assert_allclose(new_carry, h_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, h_ref, rtol=1e-5, atol=1e-6)

  def test_peephole_terms_matter(self):
    # The numpy reference above would also pass if peepholes were ignored and zero;
    # here they are large, and dropping any one of them changes the step.
    params, carry, x = _setup(cells.LSTM, {'peephole': True})
    params = {**params, 'p_i': params['p_i'] + 2.0, 'p_f': params['p_f'] - 2.0,
              'p_o': params['p_o'] + 2.0}
    (_, h), _ = cells.LSTM.step(params, carry, x)
    for name in ('p_i', 'p_f', 'p_o'):
      (_, h_without), _ = cells.LSTM.step({**params, name: jnp.zeros(H)}, carry, x)
      self.assertGreater(float(jnp.abs(h - h_without).max()), 1e-3, name)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(*CASES)
  def test_step_equals_projected(self, cell, opts):
    params, carry, x = _setup(cell, opts)
    out = self.variant(lambda p, c, x: cell.step(p, c, x))(params, carry, x)
    out_p = self.variant(lambda p, c, x: cell.step_projected(p, c, cell.project(p, x)))(
        params, carry, x)
    chex.assert_trees_all_close(out, out_p, rtol=1e-6, atol=1e-6)
    # project works for any leading shape: [B, T, D] projects each step the same way.
    xs = jnp.stack([x, 2 * x], axis=1)
    np.testing.assert_allclose(cell.project(params, xs)[:, 1], cell.project(params, 2 * x),
                               rtol=1e-6, atol=1e-6)

  @parameterized.named_parameters(*CASES)
  def test_check_grads(self, cell, opts):
    with jax.enable_x64(True):
      params, carry, x = _setup(cell, opts, dtype=jnp.float64)

      def f(p, c, x):  # one scalar of every output (fewer directions to check: faster)
        new_c, y = cell.step(p, c, x)
        return sum(jnp.sum(jnp.sin(a)) for a in jax.tree.leaves((new_c, y)))
      # Second order forward-over-forward (checks first order forward too), first order reverse:
      # the full order-2 fwd+rev grid costs several CPU seconds per cell on 2 cores.
      check_grads(f, (params, carry, x), order=2, modes=['fwd'], atol=1e-5, rtol=1e-5)
      check_grads(f, (params, carry, x), order=1, modes=['rev'], atol=1e-5, rtol=1e-5)

  @parameterized.named_parameters(*CASES)
  def test_bfloat16(self, cell, opts):
    # The trainer casts params to bfloat16: the whole step then runs in bfloat16.
    params, carry, x = _setup(cell, opts)
    to_bf16 = lambda t: jax.tree.map(lambda a: a.astype(jnp.bfloat16), t)
    new_carry, y = jax.jit(cell.step)(to_bf16(params), to_bf16(carry), to_bf16(x))
    chex.assert_type(y, jnp.bfloat16)
    chex.assert_trees_all_equal_dtypes(new_carry, to_bf16(carry))
    chex.assert_tree_all_finite(y)
    _, y32 = cell.step(params, carry, x)
    np.testing.assert_allclose(np.asarray(y, np.float32), y32, atol=5e-2)


class FlaxLSTMTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_equals_flax_lstm_cell(self):
    params, carry, x = _setup(cells.LSTM, {})
    flax_cell = nn.LSTMCell(features=H)
    flax_vars = flax_cell.init(jax.random.key(1), carry, x)
    # Map w_x/w_h/b onto flax's per-gate Dense layers: ii.. (input, no bias), hi.. (hidden, bias).
    fp = {}
    for k, gate in enumerate('ifgo'):
      sl = slice(k * H, (k + 1) * H)
      fp['i' + gate] = {'kernel': params['w_x'][:, sl]}
      fp['h' + gate] = {'kernel': params['w_h'][:, sl], 'bias': params['b'][sl]}
    chex.assert_trees_all_equal_shapes(fp, flax_vars['params'])
    ref = flax_cell.apply({'params': fp}, carry, x)
    ours = self.variant(cells.LSTM.step)(params, carry, x)
    chex.assert_trees_all_close(ours, ref, rtol=1e-5, atol=1e-6)


def _run_steps(cell, params, xs):
  carry, ys = cell.initial_carry(params, (xs.shape[0],)), []
  for t in range(xs.shape[1]):  # a reference loop over steps is fine in a test
    carry, y = cell.step(params, carry, xs[:, t])
    ys.append(y)
  return carry, np.stack(ys, 1)


class TorchFixtureTest(parameterized.TestCase):
  """torch.nn.LSTM / GRU in float64 (tests/fixtures/torch/make_reference.py), no torch needed."""

  @parameterized.parameters('lstm', 'gru')
  def test_equals_torch(self, name):
    ref = references.torch_fixture()
    with jax.enable_x64(True):
      g = lambda key: jnp.asarray(ref[f'{name}/{key}'])
      params = {'w_x': g('weight_ih').T, 'w_h': g('weight_hh').T}
      if name == 'lstm':  # torch's two biases add up
        params['b'] = g('bias_ih') + g('bias_hh')
      else:  # the GRU keeps b_hn inside the reset product
        params.update(b_x=g('bias_ih'), b_h=g('bias_hh'))
      carry, ys = _run_steps(cells.get(name), params, g('xs'))
    self.assertEqual(ys.dtype, np.float64)
    np.testing.assert_allclose(ys, ref[f'{name}/ys'], rtol=0, atol=1e-12)
    if name == 'lstm':
      np.testing.assert_allclose(carry[0], ref['lstm/c'], rtol=0, atol=1e-12)
      carry = carry[1]
    np.testing.assert_allclose(carry, ref[f'{name}/h'], rtol=0, atol=1e-12)

  def test_fixture_is_current(self):
    """Where torch is installed, the committed file equals a fresh run of its script."""
    pytest.importorskip('torch')
    spec = importlib.util.spec_from_file_location(
        'make_reference', os.path.join(references.TORCH_FIXTURES, 'make_reference.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh, committed = module.make(), references.torch_fixture()
    self.assertEqual(sorted(fresh), sorted(committed))
    for name, value in fresh.items():
      np.testing.assert_allclose(value, committed[name], rtol=0, atol=1e-12, err_msg=name)


class RegistryTest(parameterized.TestCase):

  def test_get(self):
    self.assertIs(cells.get('lstm'), cells.LSTM)
    self.assertIs(cells.get('gru'), cells.GRU)
    self.assertIs(cells.get('ltmt'), cells.LTMT)
    self.assertLessEqual({'gru', 'lstm', 'ltmt'}, set(cells.CELLS))
    for name, cell in cells.CELLS.items():   # a cell is registered under its own name
      self.assertIs(cells.get(name), cell)
      self.assertEqual(cell.name, name)
    with self.assertRaisesRegex(ValueError, ', '.join(sorted(cells.CELLS))):
      cells.get('nope')


# ----------------------------------------------------------------------------- every cell
# Driven by the registry: every cell with a `family` (a model of its own) meets the contract,
# including cells added later (a new file + its CELLS line gets these tests for free).
MODEL_CELLS = tuple((name, cell) for name, cell in cells.CELLS.items() if cell.family)
T_CONTRACT = 5


def _contract_setup(cell, dtype):
  """Params (randomized), a carry, inputs [B, T, D] and a right-padding mask, in `dtype`."""
  d = H if cell.family == 'residual' else D   # a mixer's input is its width
  k_p, k_r, k_x, k_c = jax.random.split(jax.random.key(0), 4)
  floating = lambda a: jnp.issubdtype(a.dtype, jnp.floating)
  cast = lambda t: jax.tree.map(lambda a: a.astype(dtype) if floating(a) else a, t)
  params = cell.init(k_p, d, H, **cell.options)
  # Small random changes of every float parameter (zero biases would hide mistakes).
  leaves, treedef = jax.tree.flatten(params)
  leaves = [a + 0.1 * jax.random.normal(k, a.shape, a.dtype) if floating(a) else a
            for k, a in zip(jax.random.split(k_r, len(leaves)), leaves)]
  params = jax.tree.unflatten(treedef, leaves)
  carry = cast(cell.initial_carry(params, (B,)))
  xs = jax.random.normal(k_x, (B, T_CONTRACT, d), dtype)
  mask = jnp.arange(T_CONTRACT)[None] < jnp.array([[T_CONTRACT], [3], [1]])
  return cast(params), carry, xs, mask


class EveryCellTest(chex.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*MODEL_CELLS)
  def test_step_shapes_dtypes_finite(self, cell):
    params, carry, xs, _ = _contract_setup(cell, jnp.float32)
    new_carry, y = jax.jit(cell.step)(params, carry, xs[:, 0])
    chex.assert_shape(y, (B, H))
    chex.assert_type(y, jnp.float32)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_carry, carry)
    chex.assert_tree_all_finite((new_carry, y))

  @parameterized.named_parameters(*MODEL_CELLS)
  def test_chunkwise_equals_step_scan(self, cell):
    if cell.chunk_step is None:
      self.skipTest(f'{cell.name} has no chunkwise form')
    from ltmjax import recurrence
    with jax.enable_x64(True):
      params, carry, xs, mask = _contract_setup(cell, jnp.float64)
      for chunk_size in (2, T_CONTRACT):   # padded chunks; one chunk
        out = recurrence.run(cell, params, xs, carry=carry, mask_BxT=mask, chunk_size=chunk_size)
        ref = recurrence.run(cell, params, xs, carry=carry, mask_BxT=mask)
        chex.assert_trees_all_close(out, ref, rtol=1e-10, atol=1e-10)

  @parameterized.named_parameters(*MODEL_CELLS)
  def test_step_check_grads(self, cell):
    with jax.enable_x64(True):
      params, carry, xs, _ = _contract_setup(cell, jnp.float64)

      def f(p, c, x):
        new_c, y = cell.step(p, c, x)
        return sum(jnp.sum(jnp.sin(a)) for a in jax.tree.leaves((new_c, y))
                   if jnp.issubdtype(a.dtype, jnp.floating))
      check_grads(f, (params, carry, xs[:, 0]), order=1, modes=['rev'], atol=1e-5, rtol=1e-5)
