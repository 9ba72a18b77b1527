"""Tests for ltmjax.models.recurrent (RecurrentModel) and the shared heads it uses.

Compiling dominates these tests' time on CPU, so parameters are initialised eagerly
(op-by-op, cached across tests; jitting `init` recompiles the orthogonal init each time)
and each test's forward passes are one jitted program.
"""
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import ml_collections
import numpy as np

from ltmjax import cells, models, recurrence
from ltmjax.models import heads
from ltmjax.models.recurrent import RecurrentModel
from ltmjax.tasks.base import TaskSpec

B, T, V, C = 3, 6, 11, 4
LENGTHS = np.array([6, 3, 1])
TOKEN_SEQ = TaskSpec('tokens', V, 'sequence', C, T)
TOKEN_TOK = TaskSpec('tokens', V, 'token', V, T, causal=True)
REAL_SEQ = TaskSpec('real', 2, 'sequence', 1, T)
REAL_TOK = TaskSpec('real', 2, 'token', C, T, causal=True)
SMALL = dict(hidden=8, embed_dim=5)

# (name, model options, spec): every variant once, token and real inputs alternating.
SEQUENCE_CASES = (
    ('lstm', dict(cell='lstm'), TOKEN_SEQ),
    ('gru', dict(cell='gru'), REAL_SEQ),
    ('peephole', dict(cell='lstm', peephole=True), TOKEN_SEQ),
    ('bidirectional', dict(cell='gru', bidirectional=True), REAL_SEQ),
    ('stacked_bidirectional', dict(cell='lstm', layers=2, bidirectional=True), TOKEN_SEQ),
    ('stacked_dropout', dict(cell='lstm', layers=2, dropout=0.3), REAL_SEQ),
)
TOKEN_CASES = (
    ('lstm', dict(cell='lstm'), TOKEN_TOK),
    ('peephole', dict(cell='lstm', peephole=True), REAL_TOK),
    ('stacked_gru_dropout', dict(cell='gru', layers=2, dropout=0.3), REAL_TOK),
)


def _inputs(spec, seed=0):
  key = jax.random.key(seed)
  if spec.input_kind == 'tokens':
    return jax.random.randint(key, (B, T), 0, V)
  return jax.random.normal(key, (B, T, spec.input_dim))


def _mask():
  return jnp.asarray(np.arange(T)[None, :] < LENGTHS[:, None])


def _model(spec, **kw):
  return RecurrentModel(spec=spec, **{**SMALL, **kw})


def _init(model, inputs, mask=None):
  return model.init(jax.random.key(42), inputs, mask)


class RecurrentModelTest(chex.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*SEQUENCE_CASES)
  def test_sequence_outputs(self, kw, spec):
    model, x, mask = _model(spec, **kw), _inputs(spec), _mask()
    variables = _init(model, x, mask)
    out = jax.jit(model.apply)(variables, x, mask)
    chex.assert_shape(out, (B, spec.num_outputs))
    chex.assert_type(out, jnp.float32)
    chex.assert_tree_all_finite(out)
    # Layout: one plain cell-param dict per layer ('fw'/'bw' when bidirectional).
    params, layers = variables['params'], kw.get('layers', 1)
    self.assertEqual(sorted(k for k in params if k.startswith('layer_')),
                     [f'layer_{i}' for i in range(layers)])
    top = params[f'layer_{layers - 1}']
    if kw.get('bidirectional'):
      self.assertEqual(set(top), {'fw', 'bw'})
      top = top['fw']
    gates = 3 if kw['cell'] == 'gru' else 4
    in_dim = SMALL['embed_dim'] if layers == 1 else SMALL['hidden'] * (
        2 if kw.get('bidirectional') else 1)
    chex.assert_shape(top['w_x'], (in_dim, gates * SMALL['hidden']))
    self.assertEqual('p_o' in top, bool(kw.get('peephole')))

  @parameterized.named_parameters(*TOKEN_CASES)
  def test_token_outputs_are_causal(self, kw, spec):
    model, x = _model(spec, **kw), _inputs(spec)
    variables = _init(model, x)
    if spec.input_kind == 'tokens':
      # Tokens have no gradient; changing the token at t=2 must leave outputs before t alone.
      x2 = x.at[:, 2].set((x[:, 2] + 1) % V)
      out, out2 = jax.jit(lambda a, b: (model.apply(variables, a, None),
                                        model.apply(variables, b, None)))(x, x2)
      chex.assert_shape(out, (B, T, spec.num_outputs))
      np.testing.assert_array_equal(out2[:, :2], out[:, :2])
      self.assertFalse(np.allclose(out2[:, 2], out[:, 2]))
      return

    @jax.jit
    def influence(x):
      out = model.apply(variables, x, None)
      jac = jax.jacrev(lambda x: model.apply(variables, x, None).sum(axis=(0, 2)))(x)
      return out, jnp.abs(jac).sum(axis=(1, 3))   # [T (output), T (input)]
    out, influence_TxT = influence(x)
    chex.assert_shape(out, (B, T, spec.num_outputs))
    chex.assert_tree_all_finite(out)
    # Causality by gradient: d output[:, t] / d x[:, s] vanishes for s > t, not for s <= t.
    future = np.triu(np.ones((T, T), bool), k=1)
    np.testing.assert_array_equal(np.asarray(influence_TxT)[future], 0.0)
    self.assertTrue(np.all(np.asarray(influence_TxT)[~future] > 0))

  def test_matches_manual_composition(self):
    # A 1-layer LSTM sequence classifier is embed -> recurrence.run -> last step -> Dense.
    model = _model(TOKEN_SEQ)
    x, mask = _inputs(TOKEN_SEQ), _mask()
    variables = _init(model, x, mask)
    out = jax.jit(model.apply)(variables, x, mask)
    p = variables['params']
    emb = p['InputEncoder_0']['embed']['embedding'][x]
    _, ys = recurrence.run(cells.LSTM, p['layer_0'], emb, mask_BxT=mask)
    last = ys[jnp.arange(B), LENGTHS - 1]
    head = p['OutputHead_0']['head']
    np.testing.assert_allclose(out, last @ head['kernel'] + head['bias'], rtol=1e-5, atol=1e-6)

  @parameterized.named_parameters(
      ('last', 'last', False, 1), ('mean', 'mean', False, 1),
      ('last_bidirectional_stacked', 'last', True, 2), ('mean_bidirectional', 'mean', True, 1))
  def test_padding_invariance(self, pool, bidirectional, layers):
    model = _model(TOKEN_SEQ, pool=pool, bidirectional=bidirectional, layers=layers)
    x, mask = _inputs(TOKEN_SEQ), _mask()
    x_other = jnp.where(mask, x, (x + 1 + jnp.arange(T)) % V)
    variables = _init(model, x, mask)

    @jax.jit
    def outputs(x, x_other):
      alone = [model.apply(variables, x[b:b + 1, :n], None) for b, n in enumerate(LENGTHS)]
      return model.apply(variables, x, mask), model.apply(variables, x_other, mask), alone
    out, out_other, alone = outputs(x, x_other)
    # Other tokens in the padding change nothing ...
    np.testing.assert_allclose(out_other, out, rtol=1e-5, atol=1e-6)
    # ... and each row equals the same row with its padding cut off.
    np.testing.assert_allclose(out, jnp.concatenate(alone), rtol=1e-5, atol=1e-5)

  def test_bidirectional_sees_the_future(self):
    # The counterpart of the causality test: a bidirectional encoder's first output
    # depends on the last input (so the causal check above would catch it).
    model = _model(REAL_SEQ, bidirectional=True, pool='first')
    x = _inputs(REAL_SEQ)
    variables = _init(model, x)
    g = jax.jit(jax.grad(lambda x: model.apply(variables, x, None).sum()))(x)
    self.assertGreater(float(jnp.abs(g[:, -1]).max()), 0.0)

  def test_bidirectional_causal_raises(self):
    model = _model(TOKEN_TOK, bidirectional=True)
    with self.assertRaisesRegex(ValueError, 'bidirectional'):
      _init(model, _inputs(TOKEN_TOK))

  def test_peephole_gru_raises(self):
    with self.assertRaisesRegex(ValueError, 'peephole'):
      _init(_model(TOKEN_SEQ, cell='gru', peephole=True), _inputs(TOKEN_SEQ))

  def test_dropout_unroll_remat(self):
    x = _inputs(TOKEN_SEQ)
    model = _model(TOKEN_SEQ, dropout=0.5, layers=2)
    variables = _init(model, x)

    @jax.jit
    def outputs(key0, key1):
      train = lambda k: model.apply(variables, x, None, train=True, rngs={'dropout': k})
      evals = [_model(TOKEN_SEQ, dropout=0.5, layers=2, **kw).apply(variables, x, None)
               for kw in (dict(), dict(unroll=4), dict(remat=True))]
      return train(key0), train(key0), train(key1), evals
    a, a_again, b, (e, e_unrolled, e_remat) = outputs(jax.random.key(0), jax.random.key(1))
    np.testing.assert_array_equal(a, a_again)     # same rng, same mask
    self.assertFalse(np.allclose(a, b))           # another rng, another mask
    self.assertFalse(np.allclose(a, e))           # eval (no rng needed) drops nothing
    # unroll and remat are speed/memory knobs: the numbers do not change.
    np.testing.assert_allclose(e_unrolled, e, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(e_remat, e, rtol=1e-6, atol=1e-6)

  def test_check_grads(self):
    # The cells' own gradients are checked in test_cells; this covers the model around them.
    with jax.enable_x64(True):
      model = RecurrentModel(spec=REAL_TOK, cell='lstm', hidden=3, embed_dim=2, layers=2)
      x = _inputs(REAL_TOK).astype(jnp.float64)[:2, :4]
      params = jax.tree.map(lambda a: a.astype(jnp.float64), _init(model, x)['params'])

      def f(params, x):
        return jnp.sum(jnp.sin(model.apply({'params': params}, x, None)))
      check_grads(jax.jit(f), (params, x), order=1, modes=['fwd', 'rev'], atol=1e-5, rtol=1e-5)


class RegistryTest(parameterized.TestCase):

  @parameterized.parameters('lstm', 'gru')
  def test_build_from_config(self, name):
    entry = models.get(name)
    cfg = ml_collections.ConfigDict(dict(name=name, **entry.default_config()))
    cfg.hidden, cfg.embed_dim = SMALL['hidden'], SMALL['embed_dim']
    model = entry.build(cfg, TOKEN_SEQ)
    self.assertEqual((model.cell, model.hidden, model.pool), (name, SMALL['hidden'], 'last'))

  def test_unknown_model(self):
    with self.assertRaisesRegex(ValueError, 'known models'):
      models.get('nope')


class PoolTest(parameterized.TestCase):

  def test_pool(self):
    ys = jnp.arange(B * T * 4, dtype=jnp.float32).reshape(B, T, 4)
    mask = _mask()
    last = heads.pool(ys, mask, 'last')
    np.testing.assert_array_equal(last, ys[jnp.arange(B), LENGTHS - 1])
    np.testing.assert_array_equal(heads.pool(ys, None, 'last'), ys[:, -1])
    mean = heads.pool(ys, mask, 'mean')
    for b, n in enumerate(LENGTHS):
      np.testing.assert_allclose(mean[b], ys[b, :n].mean(0))
    np.testing.assert_array_equal(heads.pool(ys, mask, 'first'), ys[:, 0])
    bi = heads.pool(ys, mask, 'last', bidirectional=True)
    np.testing.assert_array_equal(bi[:, :2], last[:, :2])
    np.testing.assert_array_equal(bi[:, 2:], ys[:, 0, 2:])
    with self.assertRaises(ValueError):
      heads.pool(ys, mask, 'max')
