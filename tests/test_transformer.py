"""Transformer: shapes, gradients, causality, padding invariance, pooling, options (its
block against NumPy and torch: tests/test_blocks.py)."""
from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltmjax.models import transformer
from ltmjax.tasks.base import TaskSpec

ENCODER = TaskSpec('tokens', 11, 'sequence', 3, 9)
REAL_ENCODER = TaskSpec('real', 3, 'sequence', 1, 9)
DECODER = TaskSpec('real', 3, 'token', 4, 9, causal=True)
TINY = dict(dim=8, heads=2, layers=2, mlp_dim=16, dropout=0.0)


def build(spec, **overrides):
  cfg = ml_collections.ConfigDict(dict(transformer.default_config(), name='transformer'))
  cfg.update(dict(TINY, **overrides))
  return transformer.build(cfg, spec)


def inputs_for(spec, batch=2, seed=0):
  rng = np.random.default_rng(seed)
  if spec.input_kind == 'tokens':
    x = rng.integers(0, spec.input_dim, size=(batch, spec.seq_len))
    return jnp.asarray(x, jnp.int32)
  return jnp.asarray(rng.normal(size=(batch, spec.seq_len, spec.input_dim)), jnp.float32)


KEY = jax.random.key(0)


def init(model, *args):
  return jax.jit(model.init)(KEY, *args)


MASK = jnp.asarray(np.arange(9)[None] < np.array([[9], [5]]))


class TransformerTest(chex.TestCase, parameterized.TestCase):

  def test_default_config(self):
    self.assertEqual(transformer.default_config(), dict(
        dim=128, heads=4, layers=2, mlp_dim=512, dropout=0.1, positions='sinusoidal',
        pool='mean', attention='auto', block_size=512, remat='none'))

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(('mean', 'sinusoidal'), ('cls', 'learned'), ('last', 'rotary'),
                            ('mean', 'none'))
  def test_encoder_shapes(self, pool, positions):
    model = build(ENCODER, pool=pool, positions=positions, dropout=0.1)
    x = inputs_for(ENCODER)
    variables = init(model, x, MASK)
    apply = self.variant(lambda v, x, m, key: model.apply(v, x, m, train=True,
                                                          rngs={'dropout': key}))
    out = apply(variables, x, MASK, jax.random.key(1))
    self.assertEqual(out.shape, (2, 3))
    self.assertEqual(out.dtype, jnp.float32)
    self.assertTrue(bool(jnp.isfinite(out).all()))
    self.assertEqual('cls' in variables['params'], pool == 'cls')
    self.assertEqual('pos_embed' in variables['params'], positions == 'learned')

  def test_parameter_names_and_shapes(self):
    model = build(ENCODER, mlp_dim=12)
    params = init(model, inputs_for(ENCODER))['params']
    shapes = jax.tree_util.tree_map(jnp.shape, params)
    block = shapes['block_1']
    for name in ('query', 'key', 'value'):
      self.assertEqual(block['attention'][name]['kernel'], (8, 2, 4))
    self.assertEqual(block['attention']['out']['kernel'], (2, 4, 8))
    self.assertEqual(block['mlp_in']['kernel'], (8, 12))
    self.assertEqual(block['mlp_out']['kernel'], (12, 8))
    self.assertNotIn('block_2', shapes)

  def test_decoder_shapes_and_bfloat16(self):
    model = build(DECODER)
    x = inputs_for(DECODER)
    variables = init(model, x)
    self.assertEqual(model.apply(variables, x).shape, (2, 9, 4))
    half = jax.tree_util.tree_map(lambda p: p.astype(jnp.bfloat16), variables)
    out = jax.jit(model.apply)(half, x.astype(jnp.bfloat16))
    self.assertEqual(out.shape, (2, 9, 4))
    self.assertTrue(bool(jnp.isfinite(out.astype(jnp.float32)).all()))

  def test_check_grads(self):
    model = build(REAL_ENCODER, dim=4, heads=2, layers=1, mlp_dim=4, positions='rotary')
    x = inputs_for(REAL_ENCODER, batch=1)
    params = init(model, x)['params']
    f = jax.jit(lambda p: model.apply({'params': p}, x, MASK[1:]))
    jax.test_util.check_grads(f, (params,), order=1, modes=['rev'], eps=1e-2, atol=2e-2,
                              rtol=2e-2)

  @parameterized.parameters(('dense', 'sinusoidal'), ('blockwise', 'rotary'),
                            ('blockwise', 'learned'))
  def test_decoder_is_causal(self, attention, positions):
    model = build(DECODER, attention=attention, block_size=4, positions=positions)
    x = inputs_for(DECODER, batch=1)
    variables = init(model, x)
    # d out[t] / d x[s] for every (t, s): zero whenever s > t, nonzero for s <= t.
    jac = jax.jit(jax.jacrev(lambda x: model.apply(variables, x)[0].sum(-1)))(x)
    influence_TxS = np.abs(np.asarray(jac)[:, 0]).sum(-1)
    upper = np.triu(np.ones((9, 9), bool), k=1)
    np.testing.assert_array_equal(influence_TxS[upper], 0.0)
    self.assertTrue((influence_TxS[~upper] > 0).all())

  @parameterized.parameters(('mean', 'dense'), ('cls', 'blockwise'), ('last', 'blockwise'))
  def test_encoder_padding_invariance(self, pool, attention):
    model = build(ENCODER, pool=pool, attention=attention, block_size=4, positions='learned')
    x = inputs_for(ENCODER)
    variables = init(model, x, MASK)
    other = jnp.where(MASK, x, (x + 3) % ENCODER.input_dim)
    apply = jax.jit(lambda x: model.apply(variables, x, MASK))
    np.testing.assert_allclose(apply(x), apply(other), atol=1e-6)
    # ...while changing a real token does change the output.
    self.assertGreater(float(jnp.abs(apply(x) - apply(x.at[1, 0].add(1))).max()), 1e-6)

  @parameterized.parameters('mean', 'cls', 'last')
  def test_pooling(self, pool):
    """The head sees the masked mean / the CLS position / the last real token."""
    model = build(ENCODER, pool=pool)
    x = inputs_for(ENCODER)
    variables = init(model, x, MASK)
    out, state = model.apply(variables, x, MASK, capture_intermediates=True)
    ys = state['intermediates']['features'][0]
    self.assertEqual(ys.shape[1], 10 if pool == 'cls' else 9)
    if pool == 'mean':
      feats = jnp.stack([ys[0].mean(0), ys[1, :5].mean(0)])
    elif pool == 'cls':
      feats = ys[:, 0]
    else:
      feats = jnp.stack([ys[0, 8], ys[1, 4]])
    head = variables['params']['OutputHead_0']['head']
    np.testing.assert_allclose(out, feats @ head['kernel'] + head['bias'], atol=1e-5)

  def test_dense_blockwise_and_remat_agree(self):
    x = inputs_for(DECODER)
    params = init(build(DECODER), x)['params']

    def value_and_grad(**overrides):
      model = build(DECODER, **overrides)
      return jax.jit(jax.value_and_grad(lambda p: (model.apply({'params': p}, x) ** 2).sum()))(
          params)
    want_value, want_grad = value_and_grad(attention='dense')
    for overrides in (dict(attention='blockwise', block_size=4), dict(remat='full'),
                      dict(remat='dots', attention='blockwise', block_size=2)):
      value, grad = value_and_grad(**overrides)
      np.testing.assert_allclose(value, want_value, rtol=1e-5, err_msg=str(overrides))
      chex.assert_trees_all_close(grad, want_grad, atol=1e-5, rtol=1e-4)

  @parameterized.parameters(('positions', 'alibi', 'sinusoidal, learned, rotary, none'),
                            ('pool', 'max', 'mean, cls, last'),
                            ('attention', 'flash', 'auto, dense, blockwise'),
                            ('remat', 'some', 'none, full, dots'))
  def test_unknown_options(self, key, value, valid):
    model = build(ENCODER, **{key: value})
    with self.assertRaisesRegex(ValueError, valid):
      init(model, inputs_for(ENCODER))

  def test_cls_with_causal_is_rejected(self):
    spec = TaskSpec('tokens', 11, 'sequence', 3, 9, causal=True)
    with self.assertRaisesRegex(ValueError, 'cls'):
      build(spec, pool='cls').init(KEY, inputs_for(spec))


LM = TaskSpec('tokens', 13, 'token', 13, 12, causal=True)   # a tiny causal LM, window 12
LM_CONFIG = dict(dim=16, heads=2, layers=2, mlp_dim=32, dropout=0.0)


class KVCacheTest(parameterized.TestCase):
  """The causal Transformer's carry (its KV cache) gives the logits of the full forward."""

  def _lm(self, positions, attention='auto', full=True):
    """(model, tokens [2, 12], their full-forward logits, a jitted chunk step, empty caches)."""
    model = build(LM, positions=positions, attention=attention, block_size=4, **LM_CONFIG)
    x_BxT = inputs_for(LM)
    variables = init(model, x_BxT)
    full_BxTxC = jax.jit(model.apply)(variables, x_BxT) if full else None
    step = jax.jit(lambda c, x, m: model.apply(variables, x, m, carry=c, return_carry=True))
    empty = lambda capacity: model.apply(variables, 2, capacity,  # noqa: E731
                                         method='initial_carry')
    return model, x_BxT, full_BxTxC, step, empty

  @parameterized.parameters(('sinusoidal', 'dense'), ('rotary', 'blockwise'),
                            ('learned', 'dense'))
  def test_prefill_and_token_by_token_equal_full_forward(self, positions, attention):
    _, x_BxT, full_BxTxC, step, empty = self._lm(positions, attention)
    capacity = 12 if positions == 'learned' else 20   # slots past the text stay unfilled
    prefill, carry = step(empty(capacity), x_BxT, None)
    np.testing.assert_allclose(prefill, full_BxTxC, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(carry['length'], [12, 12])
    self.assertEqual(carry['layers'][1]['k'].shape, (2, capacity, 2, 8))
    carry, logits = empty(capacity), []
    for t in range(12):
      out, carry = step(carry, x_BxT[:, t:t + 1], None)
      logits.append(out)
    np.testing.assert_allclose(jnp.concatenate(logits, 1), full_BxTxC, atol=1e-5, rtol=0)

  def test_padded_chunks_per_row(self):
    # Row 0 feeds 5 real tokens (3 padded), row 1 all 8; the next chunk of 4 continues each
    # row at its own filled length, overwriting row 0's padding.
    _, x_BxT, full_BxTxC, step, empty = self._lm('rotary')
    mask = jnp.asarray(np.arange(8)[None] < np.array([[5], [8]]))
    first, carry = step(empty(16), x_BxT[:, :8], mask)
    np.testing.assert_array_equal(carry['length'], [5, 8])
    np.testing.assert_allclose(first[0, :5], full_BxTxC[0, :5], atol=1e-5)
    np.testing.assert_allclose(first[1], full_BxTxC[1, :8], atol=1e-5)
    second = jnp.stack([x_BxT[0, 5:9], x_BxT[1, 8:12]])
    out, carry = step(carry, second, None)
    np.testing.assert_allclose(out[0], full_BxTxC[0, 5:9], atol=1e-5)
    np.testing.assert_allclose(out[1], full_BxTxC[1, 8:12], atol=1e-5)
    np.testing.assert_array_equal(carry['length'], [9, 12])

  def test_past_the_capacity_is_nan_not_a_wrap(self):
    _, x_BxT, _, step, empty = self._lm('sinusoidal', full=False)
    out, carry = step(empty(10), x_BxT[:, :10], None)
    self.assertTrue(bool(jnp.isfinite(out).all()))
    out, _ = step(carry, x_BxT[:, 10:11], None)
    self.assertTrue(bool(jnp.isnan(out).all()))

  def test_learned_positions_limit_the_cache(self):
    model = build(LM, positions='learned', **LM_CONFIG)
    empty = lambda capacity: model.apply({'params': {}}, 2, capacity,  # noqa: E731
                                         method='initial_carry')
    self.assertEqual(empty(12)['length'].shape, (2,))
    with self.assertRaisesRegex(ValueError, r'learned positions cover 12 .*positions=sinusoidal'):
      empty(13)
    self.assertEqual(model.max_positions, 12)
    self.assertIsNone(build(LM, positions='rotary').max_positions)

  def test_only_a_causal_model_has_a_carry(self):
    self.assertEqual(build(LM, **LM_CONFIG).stream_block, 1)
    encoder = build(ENCODER)
    self.assertFalse(hasattr(encoder, 'initial_carry'))
    x = inputs_for(ENCODER)
    with self.assertRaisesRegex(ValueError, 'bidirectional Transformer has no carry'):
      encoder.init(KEY, x, return_carry=True)


if __name__ == '__main__':
  absltest.main()
