"""LTM-T cell and model: a float64 NumPy reference step, shapes, gradients, causality, padding,
segment recurrence, truncation."""
import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl.testing import parameterized
from jax.test_util import check_grads

from ltmjax import attention, cells, recurrence
from ltmjax.cells import ltmt
from ltmjax.models import memory_transformer as ltmt_model
from ltmjax.tasks.base import TaskSpec
from tests import references

D, SEG, SLOTS, HEADS = 8, 4, 3, 2


def _cell_and_params(memory_mode='gated', causal=False, layers=1, input_dim=D, seed=0):
  cell = cells.make_ltmt(causal=causal, memory_mode=memory_mode, segment=SEG)
  params = cell.init(jax.random.PRNGKey(seed), input_dim, D, memory_slots=SLOTS, heads=HEADS,
                     layers=layers, mlp_dim=16)
  return cell, params


def _model(spec, **over):
  cfg = ltmt_model.default_config()
  cfg.update(dim=D, heads=HEADS, layers=1, mlp_dim=16, segment=SEG, memory_slots=SLOTS,
             remat=False)
  cfg.update(over)
  return ltmt_model.build(ml_collections.ConfigDict(cfg), spec)


def _real_spec(output_kind='token', causal=True, seq_len=10):
  return TaskSpec('real', 3, output_kind, 5, seq_len, causal=causal)


def _normal(seed, shape, dtype=jnp.float32):
  return jax.random.normal(jax.random.PRNGKey(seed), shape, dtype)


def _seg(x, mask=None):
  """The cell's one input form: {'x': x_BxSxD, 'mask': mask_BxS}."""
  return {'x': x, 'mask': jnp.ones(x.shape[:2], bool) if mask is None else mask}


class CellTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters('gated', 'xl')
  def test_shapes_dtypes_finite(self, mode):
    cell, params = _cell_and_params(mode, layers=2, input_dim=5)
    carry = cell.initial_carry(params, (2,))
    step = self.variant(cell.step)
    new_carry, y = step(params, carry, _seg(_normal(1, (2, SEG, 5)),
                                            jnp.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)))
    chex.assert_shape(y, (2, SEG, D))
    chex.assert_type(y, jnp.float32)
    chex.assert_tree_all_finite((new_carry, y))
    chex.assert_trees_all_equal_shapes_and_dtypes(new_carry, carry)
    self.assertEqual(set(new_carry), {'memory'} if mode == 'gated'
                     else {'memory', 'states', 'states_mask'})  # one form: a dict
    chex.assert_shape(new_carry['memory'], (2, 2, SLOTS, D))

  def test_default_instance_and_registry(self):
    self.assertIs(cells.get('ltmt'), cells.LTMT)
    self.assertEqual(cells.LTMT.name, 'ltmt')
    params = cells.LTMT.init(jax.random.PRNGKey(0), D, D, memory_slots=SLOTS, heads=HEADS)
    carry = cells.LTMT.initial_carry(params, (3,))
    chex.assert_shape(carry['memory'], (3, 1, SLOTS, D))
    # The learned initial memory, broadcast over the batch.
    np.testing.assert_array_equal(carry['memory'][1], params['memory'])
    _, y = cells.LTMT.step(params, carry, _seg(_normal(1, (3, 7, D))))  # any length in 'gated'
    chex.assert_shape(y, (3, 7, D))
    self.assertEqual(cells.LTMT.hidden_size(params), D)

  def test_static_options_are_checked_once(self):
    with self.assertRaisesRegex(ValueError, 'memory_mode.*gated, xl, associative'):
      cells.make_ltmt(memory_mode='lstm')
    with self.assertRaisesRegex(ValueError, 'segment'):
      cells.make_ltmt(memory_mode='xl')

  def test_no_static_options_in_params(self):
    _, p_gated = _cell_and_params('gated', causal=True)
    _, p_plain = _cell_and_params('gated', causal=False)
    chex.assert_trees_all_equal(p_gated, p_plain)  # causality adds no arrays
    _, p_xl = _cell_and_params('xl')
    self.assertNotIn('write', p_xl['layer_0'])
    read = p_gated['layer_0']['read']['attention']
    self.assertEqual(read['query']['kernel'].shape, (D, HEADS, D // HEADS))
    self.assertEqual(read['out']['kernel'].shape, (HEADS, D // HEADS, D))
    np.testing.assert_array_equal(p_gated['layer_0']['write']['gates']['bias'][2 * D:], 1.0)
    np.testing.assert_array_equal(p_gated['layer_0']['write']['gates']['bias'][:2 * D], 0.0)

  @parameterized.parameters('gated', 'xl')
  def test_check_grads_float64(self, mode):
    with jax.enable_x64(True):  # blockwise: the dense path's softmax is float32
      cell = cells.make_ltmt(causal=True, memory_mode=mode, segment=SEG,
                             attention_impl='blockwise', block_size=3)
      params = references.randomize(cell.init(jax.random.PRNGKey(0), D, D, memory_slots=SLOTS,
                                              heads=HEADS, mlp_dim=16, dtype=jnp.float64), 3)
      carry, _ = cell.step(params, cell.initial_carry(params, (1,)),
                           _seg(_normal(2, (1, SEG, D), jnp.float64)))
      x = 0.5 * _normal(1, (1, SEG, D), jnp.float64)
      mask = jnp.array([[True, True, True, False]])
      if mode == 'gated':  # the gradient through the memory, the recurrent path, is checked too
        f = jax.jit(lambda params, carry, x: cell.step(params, carry, _seg(x, mask)))
        args = (params, carry, x)
      else:  # finite differences would see through the stop_gradient on the previous states
        f = jax.jit(lambda params, x: cell.step(params, carry, _seg(x, mask))[1])
        args = (params, x)
      check_grads(f, args, order=1, modes=['rev'], atol=1e-6, rtol=1e-6, eps=1e-5)

  @parameterized.parameters('gated', 'xl')
  def test_fully_padded_segment_leaves_carry_unchanged(self, mode):
    cell, params = _cell_and_params(mode)
    carry = cell.initial_carry(params, (2,))
    carry, _ = cell.step(params, carry, _seg(_normal(1, (2, SEG, D))))  # a non-initial carry
    mask = jnp.array([[False] * SEG, [True] * SEG])
    new_carry, _ = cell.step(params, carry, _seg(_normal(2, (2, SEG, D)), mask))
    chex.assert_trees_all_equal(jax.tree.map(lambda a: a[0], new_carry),
                                jax.tree.map(lambda a: a[0], carry))
    memory = lambda c: c['memory'] if mode == 'gated' else c['states']
    self.assertGreater(float(jnp.abs(memory(new_carry)[1] - memory(carry)[1]).max()), 1e-4)

  def test_padded_tokens_are_not_read_or_written(self):
    cell, params = _cell_and_params('gated')
    carry = cell.initial_carry(params, (1,))
    mask = jnp.array([[True, True, False, False]])
    x = _normal(1, (1, SEG, D))
    x_other = x.at[:, 2:].set(_normal(2, (1, 2, D)))
    c1, y1 = cell.step(params, carry, _seg(x, mask))
    c2, y2 = cell.step(params, carry, _seg(x_other, mask))
    chex.assert_trees_all_close(c1, c2, atol=1e-6)
    chex.assert_trees_all_close(y1[:, :2], y2[:, :2], atol=1e-6)

  def test_xl_attends_to_previous_segment_without_gradient(self):
    cell, params = _cell_and_params('xl', layers=1)
    xs = _normal(1, (1, 2, SEG, D))

    def last_out(xs):
      _, ys = recurrence.run(cell, params, _seg(xs, jnp.ones(xs.shape[:3], bool)))
      return ys[:, -1]
    moved = last_out(xs.at[:, 0].add(_normal(2, (1, SEG, D)))) - last_out(xs)
    self.assertGreater(float(jnp.abs(moved).max()), 1e-3)  # information crosses segments
    grad = jax.grad(lambda xs: last_out(xs).sum())(xs)
    np.testing.assert_array_equal(grad[:, 0], 0.0)      # ... but the states are stop_gradient

  def test_xl_segment_length_is_checked(self):
    cell, params = _cell_and_params('xl')
    with self.assertRaisesRegex(ValueError, 'segments must have'):
      cell.step(params, cell.initial_carry(params, (1,)), _seg(_normal(1, (1, SEG + 1, D))))


class NumpyReferenceTest(parameterized.TestCase):
  """One step against tests/numpy_reference.py in float64: read, MLP, gated write, xl."""

  # 'blockwise': jax.nn.dot_product_attention ('dense') computes its softmax in float32.
  @parameterized.parameters(('gated', True), ('gated', False), ('xl', True), ('xl', False))
  def test_step_equals_numpy_float64(self, mode, causal):
    with jax.enable_x64(True):
      cell = cells.make_ltmt(causal=causal, memory_mode=mode, segment=SEG,
                             attention_impl='blockwise', block_size=3)
      params = cell.init(jax.random.PRNGKey(0), 5, D, memory_slots=SLOTS, heads=HEADS,
                         layers=2, mlp_dim=16, dtype=jnp.float64)
      params = references.randomize(params, 1)
      carry = cell.initial_carry(params, (3,))
      carry = dict(carry, memory=references.randomize(carry['memory'], 2, scale=1.0))
      if mode == 'xl':  # a previous segment whose last token was padding
        carry.update(states=_normal(3, carry['states'].shape, jnp.float64),
                     states_mask=jnp.array([[True] * 3 + [False]] * 3))
      x = _normal(4, (3, SEG, 5), jnp.float64)
      mask = jnp.array([[True] * 4, [True, True, False, False], [False] * 4])  # row 2: padding
      new_carry, y = jax.jit(cell.step)(params, carry, _seg(x, mask))
      np_carry = references.as_numpy(carry)
      want_carry, want_y = references.ltmt_step(references.as_numpy(params), np_carry,
                                                np.asarray(x), np.asarray(mask), causal=causal,
                                                memory_mode=mode)
      self.assertEqual(y.dtype, jnp.float64)
      np.testing.assert_allclose(np.asarray(y), want_y, rtol=0, atol=1e-6)
      for name, want in want_carry.items():
        np.testing.assert_allclose(np.asarray(new_carry[name]), want, rtol=0, atol=1e-6,
                                   err_msg=name)
      # The gated write really moved the memory of the rows with real tokens.
      moved = np.abs(want_carry['memory'] - np_carry['memory']).max(axis=(1, 2, 3))
      self.assertEqual(list(moved[:2] > 1e-3), [mode == 'gated'] * 2)


class ModelTest(chex.TestCase):

  def test_default_config_keys(self):
    self.assertEqual(ltmt_model.default_config(), dict(
        dim=128, heads=4, layers=2, mlp_dim=512, dropout=0.0, segment=64, memory_slots=16,
        memory_mode='gated', memory_norm='none', assoc_dim=16, positions='sinusoidal',
        pool='mean', attention='auto',
        block_size=512, remat=True, truncate_every=0))

  @parameterized.parameters(
      ('token', 'mean', 'sinusoidal', 'gated'), ('sequence', 'mean', 'learned', 'gated'),
      ('sequence', 'last', 'none', 'xl'), ('sequence', 'memory', 'sinusoidal', 'gated'))
  def test_shapes(self, output_kind, pool, positions, mode):
    spec = TaskSpec('tokens', 6, output_kind, 5, 10, causal=output_kind == 'token')
    model = _model(spec, pool=pool, positions=positions, memory_mode=mode)
    tokens = jax.random.randint(jax.random.PRNGKey(0), (2, 10), 0, 6)
    variables = model.init(jax.random.PRNGKey(1), tokens)
    out = model.apply(variables, tokens, train=False)
    chex.assert_shape(out, (2, 10, 5) if output_kind == 'token' else (2, 5))
    chex.assert_type(out, jnp.float32)
    chex.assert_tree_all_finite(out)

  @parameterized.parameters('gated', 'xl')
  def test_causality_by_gradient(self, mode):
    t = 10  # 3 segments of 4, the last one half padding
    model = _model(_real_spec(seq_len=t), memory_mode=mode)
    x = _normal(0, (1, t, 3))
    variables = model.init(jax.random.PRNGKey(1), x)
    # jac[t_out, c, t_in, d] = d out[t_out, c] / d x[t_in, d]
    jac = jax.jacrev(lambda x: model.apply(variables, x[None])[0])(x[0])
    influence = np.abs(np.asarray(jac)).sum(axis=(1, 3))
    np.testing.assert_array_equal(np.triu(influence, k=1), 0.0)
    self.assertTrue(np.all(np.diag(influence) > 0))
    if mode == 'gated':
      # Information crosses segments through the memory, with gradient: every output depends
      # on every earlier input (xl's previous states are stop_gradient instead).
      self.assertTrue(np.all(influence[np.tril_indices(t)] > 0))
    else:
      for start in range(0, t, SEG):  # within each segment, every earlier input counts
        block = influence[start:start + SEG, start:start + SEG]
        self.assertTrue(np.all(block[np.tril_indices(len(block))] > 0))

  @parameterized.parameters((True, 'mean'), (False, 'last'), (False, 'memory'))
  def test_padding_invariance(self, causal, pool):
    spec = _real_spec('token' if causal else 'sequence', causal=causal, seq_len=7)
    model = _model(spec, pool=pool)
    x = _normal(0, (2, 7, 3))
    mask = jnp.array([[True] * 7, [True] * 5 + [False] * 2])
    variables = model.init(jax.random.PRNGKey(1), x)
    out = model.apply(variables, x, mask)
    # Garbage in the padding, and 6 more padded steps (two more segments).
    x_long = jnp.concatenate([x.at[1, 5:].set(9.0), _normal(2, (2, 6, 3))], axis=1)
    mask_long = jnp.pad(mask, ((0, 0), (0, 6)))
    out_long = model.apply(variables, x_long, mask_long)
    if causal:
      chex.assert_trees_all_close(out_long[:, :7][mask], out[mask], atol=1e-5)
    else:
      chex.assert_trees_all_close(out_long, out, atol=1e-5)
    # Row 1 on its own, unpadded, gives the same output as its padded version.
    out_alone = model.apply(variables, x[1:, :5])
    ref = out_alone[0] if not causal else out_alone[0, :5]
    chex.assert_trees_all_close(out[1] if not causal else out[1, :5], ref, atol=1e-5)

  @parameterized.parameters(('gated', 'sinusoidal'), ('xl', 'learned'))
  def test_model_equals_segment_loop(self, mode, positions):
    spec = _real_spec(seq_len=11)
    model = _model(spec, memory_mode=mode, positions=positions)
    x = _normal(0, (2, 11, 3))
    variables = model.init(jax.random.PRNGKey(1), x)
    out, carry = model.apply(variables, x, return_carry=True)

    # Reference: the same pieces by hand, one `step` call per segment in a Python loop.
    p = variables['params']
    h = x @ p['InputEncoder_0']['input_proj']['kernel'] + p['InputEncoder_0']['input_proj']['bias']
    h = jnp.pad(h, ((0, 0), (0, 1), (0, 0)))
    mask = jnp.arange(12)[None, :].repeat(2, 0) < 11
    pos = (attention.sinusoidal_positions(SEG, D) if positions == 'sinusoidal'
           else p['pos_embed'])
    cell = cells.make_ltmt(causal=True, memory_mode=mode, segment=SEG)
    ref_carry = cell.initial_carry(p['ltmt'], (2,))
    ys = []
    for g in range(3):
      sl = slice(g * SEG, (g + 1) * SEG)
      ref_carry, y = cell.step(p['ltmt'], ref_carry, {'x': h[:, sl] + pos, 'mask': mask[:, sl]})
      ys.append(y)
    ys = jnp.concatenate(ys, axis=1)[:, :11]
    ref = ys @ p['OutputHead_0']['head']['kernel'] + p['OutputHead_0']['head']['bias']
    chex.assert_trees_all_close(out, ref, atol=1e-5)
    chex.assert_trees_all_close(carry['cell'], ref_carry, atol=1e-5)

  def test_truncated_backprop(self):
    # 3 segments with truncate_every=2 are padded to 4 (the 4th all padding, so it leaves the
    # memory unchanged): windows {0, 1} and {2, 3}, so the last real segment (2) gets no
    # gradient from segments 0 and 1. Without truncation it does (test_causality_by_gradient).
    model = _model(_real_spec(seq_len=3 * SEG), truncate_every=2)
    x = _normal(0, (1, 3 * SEG, 3))
    variables = model.init(jax.random.PRNGKey(1), x)
    out, grad = jax.value_and_grad(lambda x: model.apply(variables, x)[:, -SEG:].sum())(x)
    self.assertTrue(np.isfinite(out))
    per_segment = np.abs(np.asarray(grad)).reshape(3, SEG * 3).sum(-1)
    np.testing.assert_array_equal(per_segment[:2], 0.0)
    self.assertGreater(per_segment[2], 0)

  def test_remat_same_numbers(self):
    spec = _real_spec('sequence', causal=False, seq_len=9)
    x = _normal(0, (2, 9, 3))
    plain, rematted = _model(spec), _model(spec, remat=True)
    variables = plain.init(jax.random.PRNGKey(1), x)
    loss = lambda m: lambda v: jnp.sum(m.apply(v, x) ** 2)
    (l1, g1), (l2, g2) = (jax.value_and_grad(loss(m))(variables) for m in (plain, rematted))
    chex.assert_trees_all_close(l1, l2, atol=1e-6)
    chex.assert_trees_all_close(g1, g2, atol=1e-6)

  def test_bfloat16_params(self):
    spec = TaskSpec('tokens', 6, 'token', 5, 10, causal=True)
    model = _model(spec)
    tokens = jax.random.randint(jax.random.PRNGKey(0), (2, 10), 0, 6)
    variables = model.init(jax.random.PRNGKey(1), tokens)
    bf16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), variables)
    out = model.apply(bf16, tokens)
    chex.assert_tree_all_finite(out)
    chex.assert_trees_all_close(out.astype(jnp.float32), model.apply(variables, tokens),
                                atol=0.15)

  def test_bad_options(self):
    spec = _real_spec('token')
    x = _normal(0, (1, 8, 3))
    for over in (dict(pool='memory'), dict(positions='rotary'), dict(memory_mode='lstm')):
      with self.assertRaises(ValueError):
        _model(spec, **over).init(jax.random.PRNGKey(0), x)
