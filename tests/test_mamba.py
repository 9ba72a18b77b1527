"""Mamba (S6) mixer cell: the step against a float64 NumPy reference (tests/references.py),
the chunkwise (associative-scan) form against the step scan, gradients, padding, causality,
streaming in chunks, initialisation and bfloat16."""
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np

from ltmjax import cells, recurrence
from ltmjax.cells import mamba
from tests import references

B, T, D, N = 2, 9, 8, 4   # E = 2 * D = 16 channels, dt_rank 1, conv width 4
OPTS = {'d_state': N}


def _cell():
  return cells.get('mamba')


def _setup(dtype=jnp.float64, seed=0, batch=B, length=T):
  """Randomised params (init's exact values would hide terms), inputs, a random carry."""
  k_p, k_x, k_c = jax.random.split(jax.random.key(seed), 3)
  params = references.randomize(mamba.init(k_p, D, D, dtype=dtype, **OPTS), seed + 1)
  xs = jax.random.normal(k_x, (batch, length, D), dtype)
  carry = mamba.initial_carry(params, (batch,))
  keys = jax.random.split(k_c, 2)
  carry = {name: 0.5 * jax.random.normal(k, a.shape, a.dtype)
           for k, (name, a) in zip(keys, sorted(carry.items()))}
  return params, xs, carry


def _mask(seed=3, batch=B, length=T):
  """Random holes and a fully padded tail in row 0 (every pattern the masked scan allows)."""
  m = jax.random.bernoulli(jax.random.key(seed), 0.7, (batch, length))
  return m.at[0, -3:].set(False)


def _close(a, b, tol):
  chex.assert_trees_all_close(a, b, rtol=tol, atol=tol)


class MambaCellTest(chex.TestCase, parameterized.TestCase):

  def test_init(self):
    params = mamba.init(jax.random.key(0), D, D, **OPTS)
    e = 2 * D
    chex.assert_shape([params[k] for k in ('in_proj', 'conv_w', 'conv_b', 'x_proj', 'dt_proj',
                                           'dt_bias', 'a_log', 'd_skip', 'out_proj')],
                      [(D, 2 * e), (4, e), (e,), (e, 1 + 2 * N), (1, e), (e,), (e, N), (e,),
                       (e, D)])
    # S4D-real A = -(1..N) in every channel; D = 1; softplus(dt bias) in [dt_min, dt_max].
    np.testing.assert_allclose(-np.exp(params['a_log']), -np.tile(np.arange(1, N + 1), (e, 1)),
                               rtol=1e-6)
    np.testing.assert_array_equal(params['d_skip'], 1.0)
    dt = np.asarray(jax.nn.softplus(params['dt_bias']))
    self.assertTrue(np.all(dt >= 1e-3 * 0.999) and np.all(dt <= 0.1 * 1.001), dt)
    self.assertEqual(mamba.hidden_size(params), D)
    carry = mamba.initial_carry(params, (3,))
    chex.assert_shape([carry['conv'], carry['ssm']], [(3, 3, e), (3, e, N)])

  @chex.variants(with_jit=True, without_jit=True)
  def test_step_matches_numpy_float64(self):
    with jax.enable_x64(True):
      params, xs, carry = _setup()
      p_np, c_np = references.as_numpy(params), references.as_numpy(carry)
      step = self.variant(mamba.step)
      for t in range(5):   # several steps: the conv window fills with real inputs
        carry, y = step(params, carry, xs[:, t])
        c_np, y_np = references.mamba_step(p_np, c_np, np.asarray(xs[:, t]))
        _close((carry, y), (c_np, y_np), 1e-12)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.product(masked=(False, True), chunk=(1, 4, T + 3))
  def test_chunked_equals_step_scan_float64(self, masked, chunk):
    with jax.enable_x64(True):
      params, xs, carry = _setup()
      mask = _mask() if masked else None
      run = lambda size: self.variant(
          lambda p, c, x, m: recurrence.run(_cell(), p, x, carry=c, mask_BxT=m, chunk_size=size))
      expected = run(0)(params, carry, xs, mask)
      _close(run(chunk)(params, carry, xs, mask), expected, 1e-10)
      # and chunk_step called directly on the whole sequence
      _close(mamba.chunk_step(params, carry, xs, mask), expected, 1e-10)

  @parameterized.parameters(0, 4)
  def test_padding(self, chunk):
    # A right-padded row gives its unpadded run's outputs and final carry.
    with jax.enable_x64(True):
      params, xs, _ = _setup()
      lengths = (5, T)
      mask = jnp.arange(T)[None] < jnp.array(lengths)[:, None]
      xs_pad = jnp.where(mask[..., None], xs, 7.0)   # junk in the padding
      carry, ys = recurrence.run(_cell(), params, xs_pad, mask_BxT=mask, chunk_size=chunk)
      for row, length in enumerate(lengths):
        c_row, y_row = recurrence.run(_cell(), params, xs[row:row + 1, :length], chunk_size=chunk)
        _close(ys[row:row + 1, :length], y_row, 1e-12)
        np.testing.assert_array_equal(ys[row, length:], 0.0)
        _close(jax.tree.map(lambda a: a[row:row + 1], carry), c_row, 1e-12)

  @parameterized.parameters(0, 4, T)
  def test_causal(self, chunk):
    # d y_t / d x_s == 0 for s > t; y_t depends on x_{t-3} (the conv window) and x_0 (the SSM).
    with jax.enable_x64(True):
      params, xs, _ = _setup(batch=1)
      t = 5
      f = lambda x: recurrence.run(_cell(), params, x, chunk_size=chunk)[1][0, t].sum()
      g = np.abs(np.asarray(jax.jit(jax.grad(f))(xs))[0]).sum(-1)
      np.testing.assert_array_equal(g[t + 1:], 0.0)
      self.assertTrue(np.all(g[:t + 1] > 0), g)

  def test_check_grads_float64(self):
    with jax.enable_x64(True):
      params, xs, carry = _setup(length=5)
      mask = _mask(length=5)

      def loss(chunk):
        def f(p, c, x):
          new_c, ys = recurrence.run(_cell(), p, x, carry=c, mask_BxT=mask, chunk_size=chunk)
          return sum(jnp.sum(jnp.sin(a)) for a in jax.tree.leaves((new_c, ys)))
        return jax.jit(f)   # compiled once: check_grads evaluates it many times
      for chunk in (0, 5):
        check_grads(loss(chunk), (params, carry, xs), order=1, modes=['rev'],
                    atol=1e-6, rtol=1e-6)

  def test_streaming_in_chunks(self):
    # Uneven pieces with the carry passed on == the whole sequence at once (conv window too).
    with jax.enable_x64(True):
      params, xs, _ = _setup(length=11)
      expected = recurrence.run(_cell(), params, xs, chunk_size=11)
      carry, pieces = None, []
      for start, stop in ((0, 2), (2, 7), (7, 11)):
        carry, ys = recurrence.run(_cell(), params, xs[:, start:stop], carry=carry, chunk_size=4)
        pieces.append(ys)
      _close((carry, jnp.concatenate(pieces, axis=1)), expected, 1e-10)

  def test_bfloat16(self):
    params, xs, carry = _setup(dtype=jnp.float32)
    bf16 = lambda tree: jax.tree.map(lambda a: a.astype(jnp.bfloat16), tree)
    for chunk in (0, 4):
      new_c, ys = jax.jit(lambda p, c, x: recurrence.run(_cell(), p, x, carry=c, chunk_size=chunk))(
          bf16(params), bf16(carry), bf16(xs))
      chex.assert_type(ys, jnp.bfloat16)
      chex.assert_trees_all_equal_dtypes(new_c, bf16(carry))
      _, ys32 = recurrence.run(_cell(), params, xs, carry=carry, chunk_size=chunk)
      np.testing.assert_allclose(np.asarray(ys, np.float32), ys32, atol=0.1, rtol=0.05)


class MambaModelTest(parameterized.TestCase):
  """The 'mamba' model (models/residual.py with the Mamba cell) streams exactly."""

  @parameterized.parameters(0, 4)
  def test_streaming_equals_whole_sequence_float64(self, chunk_size):
    from ltmjax.models.residual import ResidualRecurrentModel
    from ltmjax.tasks.base import TaskSpec
    with jax.enable_x64(True):
      length = 11
      model = ResidualRecurrentModel(spec=TaskSpec('real', 3, 'token', 5, length, causal=True),
                                     cell='mamba', dim=D, layers=2, chunk_size=chunk_size,
                                     options=(('d_state', N), ('d_conv', 4), ('expand', 2)))
      xs = jax.random.normal(jax.random.key(0), (B, length, 3), jnp.float64)
      variables = model.init(jax.random.key(1), xs)
      variables = references.randomize(jax.tree.map(lambda a: a.astype(jnp.float64), variables), 2,
                                       scale=0.1)
      whole = model.apply(variables, xs)
      carry = model.apply(variables, B, method='initial_carry')
      pieces = []
      for start, stop in ((0, 3), (3, 7), (7, length)):
        ys, carry = model.apply(variables, xs[:, start:stop], carry=carry, return_carry=True)
        pieces.append(ys)
      _close(jnp.concatenate(pieces, axis=1), whole, 1e-10)
      # and the other form (step scan vs chunkwise) gives the same whole-sequence outputs
      other = model.clone(chunk_size=4 - chunk_size)
      _close(other.apply(variables, xs), whole, 1e-10)
