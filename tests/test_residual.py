"""ltmjax.models.residual (the pre-LN residual stack of a mixer cell), with the linear test
cell of tests/toy_cells.py: streaming in chunks == the whole sequence, chunkwise == step scan,
padding invariance, causality, the cell's options as config keys, gradients."""
import dataclasses
from unittest import mock

from absl.testing import parameterized
import chex
import jax
from jax.test_util import check_grads
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltmjax import cells, models
from ltmjax.tasks.base import TaskSpec
from ltmjax.models import residual
from tests import toy_cells

B, T, V, C, D = 2, 11, 9, 4, 8
LENGTHS = np.array([11, 6])
TOY = dataclasses.replace(toy_cells.LINEAR, family='residual', label='Toy')


def _spec(output_kind):
  return TaskSpec('tokens', V, output_kind, C, T, causal=output_kind == 'token')


def _model(output_kind='token', pool='last', **changes):
  cfg = dict(residual.default_config('toy_linear'), name='toy_linear', dim=D, pool=pool)
  cfg.update(changes)
  return models.build(ml_collections.ConfigDict(cfg), _spec(output_kind))


def _data(seed=0):
  x_BxT = jax.random.randint(jax.random.key(seed), (B, T), 1, V)
  return x_BxT, jnp.asarray(np.arange(T)[None] < LENGTHS[:, None])


class ResidualModelTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.enter_context(mock.patch.dict(cells.CELLS, {'toy_linear': TOY}))
    self.enter_context(mock.patch.dict(models.MODELS, {'toy_linear': models.cell_model(TOY)}))

  def test_config_and_layout(self):
    self.assertEqual(residual.default_config('toy_linear'),
                     dict(dim=128, layers=2, dropout=0.0, pool='last', chunk_size=64,
                          remat=False, decay=0.9))
    self.assertEqual(models.label(ml_collections.ConfigDict({'name': 'toy_linear'})), 'Toy')
    x, mask = _data()
    variables = {d: _model(decay=d).init(jax.random.key(0), x, mask) for d in (0.9, 0.5)}
    p = variables[0.9]['params']
    self.assertEqual(sorted(p), ['InputEncoder_0', 'OutputHead_0', 'layer_0', 'layer_1', 'ln_final'])
    chex.assert_shape([p['layer_1']['ln']['scale'], p['layer_1']['cell']['w']], [(D,), (D, D)])
    # model.decay reaches the cell's init (same key: the logits differ by the constant).
    shift = variables[0.5]['params']['layer_0']['cell']['a_logit'] - p['layer_0']['cell']['a_logit']
    np.testing.assert_allclose(shift, np.log(1.0) - np.log(9.0), rtol=1e-5)

  @parameterized.parameters(('token', 'last', 0), ('token', 'last', 3),
                            ('sequence', 'last', 4), ('sequence', 'mean', 0))
  def test_streaming_equals_whole_sequence(self, output_kind, pool, chunk_size):
    model = _model(output_kind, pool, chunk_size=chunk_size)
    x, mask = _data()
    variables = model.init(jax.random.key(1), x, mask)
    full, carry_all = jax.jit(lambda v: model.apply(v, x, mask, return_carry=True))(variables)
    reference = model.apply(variables, x, mask)   # no carry asked: the same outputs
    chex.assert_trees_all_close(full, reference, atol=1e-6)
    step = jax.jit(lambda v, c, x, m: model.apply(v, x, m, carry=c, return_carry=True))
    carry, outs = model.apply(variables, B, method='initial_carry'), []
    for start in range(0, T, 4):   # chunks of 4, the last one padded
      pad = ((0, 0), (0, max(0, start + 4 - T)))
      out, carry = step(variables, carry, jnp.pad(x[:, start:start + 4], pad),
                        jnp.pad(mask[:, start:start + 4], pad))
      outs.append(out)
    if output_kind == 'sequence':
      chex.assert_trees_all_close(outs[-1], full, atol=1e-5)
    else:
      streamed = jnp.concatenate(outs, axis=1)[:, :T]
      chex.assert_trees_all_close(streamed * mask[..., None], full * mask[..., None], atol=1e-5)
    chex.assert_trees_all_close(carry, carry_all, atol=1e-5)

  @parameterized.parameters('token', 'sequence')
  def test_chunkwise_equals_step_scan_and_padding_invariance(self, output_kind):
    x, mask = _data()
    stepwise, chunked = _model(output_kind, chunk_size=0), _model(output_kind, chunk_size=3)
    variables = stepwise.init(jax.random.key(2), x, mask)
    out = jax.jit(stepwise.apply)(variables, x, mask)
    chex.assert_trees_all_close(jax.jit(chunked.apply)(variables, x, mask), out, atol=1e-5)
    # Other tokens at the padded positions change nothing at the real ones.
    x_other = jnp.where(mask, x, (x + 3) % V)
    for model in (stepwise, chunked):
      other = jax.jit(model.apply)(variables, x_other, mask)
      if output_kind == 'token':
        other, out = other * mask[..., None], out * mask[..., None]
      chex.assert_trees_all_close(other, out, atol=1e-5)

  def test_causal(self):
    model, (x, _) = _model('token', chunk_size=4), _data()
    variables = model.init(jax.random.key(3), x)
    x2 = x.at[:, 5].set((x[:, 5] + 1) % V)
    out, out2 = jax.jit(lambda a, b: (model.apply(variables, a), model.apply(variables, b)))(
        x, x2)
    np.testing.assert_array_equal(out2[:, :5], out[:, :5])
    self.assertFalse(np.allclose(out2[:, 5], out[:, 5]))

  def test_gradients(self):
    with jax.enable_x64(True):
      cfg = dict(residual.default_config('toy_linear'), name='toy_linear', dim=4, layers=1,
                 chunk_size=4)
      model = models.build(ml_collections.ConfigDict(cfg), TaskSpec('real', 2, 'sequence', C, T))
      x = jax.random.normal(jax.random.key(4), (B, T, 2), jnp.float64)
      mask = _data()[1]
      params = model.init(jax.random.key(5), x, mask)['params']
      params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
      out = model.apply({'params': params}, x, mask)
      self.assertEqual(out.dtype, jnp.float64)
      chex.assert_shape(out, (B, C))
      check_grads(jax.jit(lambda p, x: model.apply({'params': p}, x, mask)), (params, x), order=1,
                  modes=('rev',))
