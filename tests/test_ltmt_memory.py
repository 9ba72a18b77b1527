"""LTM-T's lasting memory (issue 20): the bounded write (memory_norm) and the associative mode
(ARMT) against float64 NumPy references, float64 gradients, and streaming == whole sequence."""
import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl.testing import parameterized
from jax.test_util import check_grads

from ltmjax.cells import ltmt
from ltmjax.models import memory_transformer as ltmt_model
from ltmjax.tasks.base import TaskSpec
from tests import references

D, SEG, SLOTS, HEADS, KEY = 8, 4, 3, 2, 4


def _normal(seed, shape, dtype=jnp.float64):
  return jax.random.normal(jax.random.PRNGKey(seed), shape, dtype)


def _cell(mode, norm, causal=True):
  return ltmt_model.make_cell(causal=causal, memory_mode=mode, segment=SEG, memory_norm=norm,
                              attention_impl='blockwise', block_size=3)


def _params(cell, mode, input_dim=D, layers=2):
  params = cell.init(jax.random.PRNGKey(0), input_dim, D, memory_slots=SLOTS, heads=HEADS,
                     layers=layers, mlp_dim=16, assoc_dim=KEY if mode == 'associative' else 0,
                     dtype=jnp.float64)
  return references.randomize(params, 1)   # W_v non-zero, biases and scales off their init


def _carry(cell, params, mode, batch=3):
  """A non-initial carry: slots of RMS ~2 (over the cap), a filled A and z (z > 0, as sums of
  non-negative features)."""
  carry = cell.initial_carry(params, (batch,))
  carry = dict(carry, memory=2.0 * _normal(2, carry['memory'].shape))
  if mode == 'associative':
    carry.update(assoc=_normal(3, carry['assoc'].shape),
                 assoc_norm=jnp.abs(_normal(5, carry['assoc_norm'].shape)) + 0.1)
  return carry


class BoundTest(parameterized.TestCase):

  @parameterized.parameters('none', 'rms_cap', 'unit')
  def test_bound_equals_numpy(self, norm):
    with jax.enable_x64(True):
      m = _normal(0, (2, 5, D)) * jnp.array([0.1, 0.5, 1.0, 3.0, 30.0])[None, :, None]
      got = np.asarray(ltmt.bound(m, norm))
      np.testing.assert_allclose(got, references.ltmt_bound(np.asarray(m), norm), atol=1e-12)
      rms = np.sqrt((got ** 2).mean(-1))
      if norm == 'rms_cap':   # small slots pass, large ones land on RMS 1
        np.testing.assert_allclose(got[:, :2], np.asarray(m[:, :2]), atol=1e-12)
        np.testing.assert_allclose(rms[:, 3:], 1.0, atol=1e-6)
      if norm == 'unit':
        np.testing.assert_allclose(rms[:, 1:], 1.0, atol=1e-5)

  def test_unknown_norm_is_checked(self):
    with self.assertRaisesRegex(ValueError, 'memory_norm.*none, rms_cap, unit'):
      ltmt_model.make_cell(memory_norm='layer')


class StepTest(parameterized.TestCase):
  """One step in float64 against tests/references.py: read, write, bound, padding rows."""

  @parameterized.parameters(('gated', 'rms_cap', True), ('gated', 'unit', False),
                            ('associative', 'none', True), ('associative', 'rms_cap', False))
  def test_step_equals_numpy_float64(self, mode, norm, causal):
    with jax.enable_x64(True):
      cell = _cell(mode, norm, causal)
      params = _params(cell, mode, input_dim=5)
      carry = _carry(cell, params, mode)
      x = _normal(4, (3, SEG, 5))
      mask = jnp.array([[True] * 4, [True, True, False, False], [False] * 4])  # row 2: padding
      new_carry, y = jax.jit(cell.step)(params, carry, {'x': x, 'mask': mask})
      np_params, np_carry = references.as_numpy(params), references.as_numpy(carry)
      if mode == 'gated':
        want_carry, want_y = references.ltmt_step(np_params, np_carry, np.asarray(x),
                                                  np.asarray(mask), causal=causal,
                                                  memory_mode='gated')
        # The bound applies to the written slots of the rows with real tokens.
        real = np.asarray(mask).any(-1)[:, None, None, None]
        want_carry = {'memory': np.where(real, references.ltmt_bound(want_carry['memory'], norm),
                                         np_carry['memory'])}
      else:
        want_carry, want_y = references.ltmt_associative_step(
            np_params, np_carry, np.asarray(x), np.asarray(mask), causal=causal,
            memory_norm=norm)
      np.testing.assert_allclose(np.asarray(y), want_y, rtol=0, atol=1e-6)
      self.assertEqual(set(new_carry), set(want_carry))
      for name, want in want_carry.items():
        np.testing.assert_allclose(np.asarray(new_carry[name]), want, rtol=0, atol=1e-6,
                                   err_msg=name)
      moved = np.abs(want_carry['memory'] - np_carry['memory']).max(axis=(1, 2, 3))
      self.assertEqual(list(moved > 1e-3), [True, True, False])   # padding row kept

  @parameterized.parameters(('gated', 'rms_cap'), ('associative', 'rms_cap'))
  def test_check_grads_float64(self, mode, norm):
    with jax.enable_x64(True):
      cell = _cell(mode, norm)
      params = references.randomize(_params(cell, mode, layers=1), 2, scale=0.1)
      carry = _carry(cell, params, mode, batch=1)
      x = 0.5 * _normal(1, (1, SEG, D))
      mask = jnp.array([[True, True, True, False]])
      # The gradient through the carry (the recurrent path) is checked too; z's correction
      # gamma is stop_gradient in ARMT and here, which finite differences cannot see: z is
      # held fixed.
      def f(params, memory, assoc, x):
        c = dict(carry, memory=memory)
        if mode == 'associative':
          c['assoc'] = assoc
        new, y = cell.step(params, c, {'x': x, 'mask': mask})
        return new['memory'], new.get('assoc', y), y
      args = (params, carry['memory'], carry.get('assoc', jnp.zeros(())), x)
      check_grads(jax.jit(f), args, order=1, modes=['rev'], atol=1e-6, rtol=1e-6, eps=1e-5)


class StreamingTest(chex.TestCase):

  @parameterized.parameters(('gated', 'rms_cap'), ('gated', 'unit'), ('associative', 'rms_cap'))
  def test_chunks_with_carry_equal_whole_sequence(self, mode, norm):
    spec = TaskSpec('tokens', 6, 'sequence', 5, 4 * SEG, causal=False)
    cfg = ltmt_model.default_config()
    cfg.update(dim=D, heads=HEADS, layers=2, mlp_dim=16, segment=SEG, memory_slots=SLOTS,
               remat=False, memory_mode=mode, memory_norm=norm, assoc_dim=KEY, pool='memory')
    model = ltmt_model.build(ml_collections.ConfigDict(cfg), spec)
    tokens = jax.random.randint(jax.random.PRNGKey(0), (2, 5 * SEG - 1), 0, 6)
    variables = model.init(jax.random.PRNGKey(1), tokens)
    variables = {'params': references.randomize(variables['params'], 3, scale=0.1)}
    whole, whole_carry = model.apply(variables, tokens, return_carry=True)
    carry = model.apply(variables, 2, method='initial_carry')
    for start in range(0, tokens.shape[1], 2 * SEG):   # chunks of two segments, last shorter
      part = tokens[:, start:start + 2 * SEG]
      out, carry = model.apply(variables, part, jnp.ones(part.shape, bool), carry=carry,
                               return_carry=True)
    chex.assert_trees_all_close(out, whole, atol=1e-5)
    chex.assert_trees_all_close(carry, whole_carry, atol=1e-5)
    self.assertGreater(float(jnp.abs(whole).max()), 1e-3)
