"""ltmjax.blocks (shared by the Transformer and LTM-T): a float64 NumPy reference and torch's
TransformerEncoderLayer for the pre-LN block, float64 gradients, context keys, dropout."""
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np

from ltmjax import attention, blocks
from tests import references

DIM, HEADS, MLP = 8, 2, 16


def _random_block():
  return references.randomize(blocks.block_init(jax.random.key(0), DIM, HEADS, MLP, jnp.float64), 1)


def _normal(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape))


class BlockTest(parameterized.TestCase):

  # float64 needs 'blockwise': jax.nn.dot_product_attention ('dense') has a float32 softmax.
  @parameterized.parameters((False, False), (True, False), (True, True), (False, True))
  def test_block_equals_numpy_float64(self, causal, with_context):
    with jax.enable_x64(True):
      p = _random_block()
      x = _normal(2, (2, 5, DIM))
      context = _normal(3, (2, 3, DIM)) if with_context else None
      keys = 5 + (3 if with_context else 0)
      key_mask = np.ones((2, keys), bool)
      key_mask[1, -2:] = False  # padded tokens of row 1
      y = jax.jit(lambda p, x, c: blocks.block(
          p, x, context_BxCxD=c, mask_BxNxLxS=jnp.asarray(key_mask)[:, None, None, :],
          causal=causal, implementation='blockwise', block_size=3))(p, x, context)
      want = references.block(references.as_numpy(p), np.asarray(x), key_mask, causal,
                              None if context is None else np.asarray(context))
    self.assertEqual(y.dtype, jnp.float64)
    np.testing.assert_allclose(np.asarray(y), want, rtol=0, atol=1e-6)

  def test_check_grads_float64(self):
    with jax.enable_x64(True):
      p = _random_block()
      x, context = _normal(2, (1, 4, DIM)), _normal(3, (1, 2, DIM))
      f = jax.jit(lambda p, x, c: blocks.block(p, x, context_BxCxD=c, causal=True,
                                                implementation='blockwise', block_size=2))
      check_grads(f, (p, x, context), order=1, modes=['rev'], atol=1e-6, rtol=1e-6, eps=1e-5)

  @parameterized.parameters('block_padded', 'block_causal')
  def test_block_equals_torch(self, case):
    """torch.nn.TransformerEncoderLayer(norm_first=True), outputs committed by
    tests/fixtures/torch/make_reference.py (float64)."""
    ref = references.torch_fixture()
    with jax.enable_x64(True):
      g = lambda name: jnp.asarray(ref[f'{case}/{name}'])
      head = DIM // HEADS
      w_in, b_in = g('in_proj_weight'), g('in_proj_bias')  # rows q, k, v; torch: x W^T + b
      proj = lambda i: {'kernel': w_in[i * DIM:(i + 1) * DIM].T.reshape(DIM, HEADS, head),
                        'bias': b_in[i * DIM:(i + 1) * DIM].reshape(HEADS, head)}
      p = {'ln_attn': {'scale': g('norm1_weight'), 'bias': g('norm1_bias')},
           'attention': {'query': proj(0), 'key': proj(1), 'value': proj(2),
                         'out': {'kernel': g('out_weight').T.reshape(HEADS, head, DIM),
                                 'bias': g('out_bias')}},
           'ln_mlp': {'scale': g('norm2_weight'), 'bias': g('norm2_bias')},
           'mlp_in': {'kernel': g('linear1_weight').T, 'bias': g('linear1_bias')},
           'mlp_out': {'kernel': g('linear2_weight').T, 'bias': g('linear2_bias')}}
      chex.assert_trees_all_equal_shapes(p, blocks.block_init(jax.random.key(0), DIM, HEADS, MLP))
      y = blocks.block(p, g('x'), mask_BxNxLxS=attention.padding_mask(g('mask')),
                       causal=bool(ref[f'{case}/causal']), implementation='blockwise')
    self.assertEqual(y.dtype, jnp.float64)
    np.testing.assert_allclose(np.asarray(y), ref[f'{case}/y'], rtol=0, atol=1e-10)

  def test_block_with_context(self):
    """Queries see every context slot and the segment causally (the LTM-T read)."""
    p = blocks.block_init(jax.random.key(0), DIM, HEADS, MLP)
    x = _normal(0, (1, 5, DIM)).astype(jnp.float32)
    prefix = _normal(1, (1, 3, DIM)).astype(jnp.float32)
    f = lambda x, prefix: blocks.block(p, x, context_BxCxD=prefix, causal=True)[0].sum(-1)
    d_x, d_prefix = jax.jit(jax.jacrev(f, (0, 1)))(x, prefix)
    influence = np.abs(np.asarray(d_x)[:, 0]).sum(-1)
    np.testing.assert_array_equal(influence[np.triu(np.ones((5, 5), bool), k=1)], 0.0)
    self.assertTrue((np.abs(np.asarray(d_prefix)[:, 0]).sum(-1) > 0).all())

  @parameterized.parameters(True, False)
  def test_kv_cache_equals_one_call(self, causal):
    """A block fed in chunks (5, 1, 3 tokens) through a cache of 12 slots, with rotary
    positions offset by the filled length: the outputs of one call on all 9 tokens."""
    with jax.enable_x64(True):
      p = _random_block()
      x_BxTxD = _normal(4, (2, 9, DIM))
      pos = lambda start, stop: jnp.broadcast_to(jnp.arange(start, stop), (2, stop - start))
      run = jax.jit(lambda x, positions, cache: blocks.block(
          p, x, causal=causal, positions_BxL=positions, cache=cache,
          implementation='blockwise', block_size=4))
      want = run(x_BxTxD, pos(0, 9), None)
      cache = blocks.empty_cache(2, 12, HEADS, DIM // HEADS, jnp.float64)
      for start, stop in ((0, 5), (5, 6), (6, 9)):
        y, cache = run(x_BxTxD[:, start:stop], pos(start, stop), cache)
        if causal or stop == 9:   # without causality a chunk sees the cache up to its end
          np.testing.assert_allclose(np.asarray(y), np.asarray(want[:, start:stop]), atol=1e-10)
    np.testing.assert_array_equal(cache['length'], [9, 9])
    self.assertEqual(cache['k'].shape, (2, 12, HEADS, DIM // HEADS))
    np.testing.assert_array_equal(cache['k'][:, 9:], 0.0)   # slots past the filled ones

  def test_dropout(self):
    p = blocks.block_init(jax.random.key(0), DIM, HEADS, MLP)
    x = _normal(0, (2, 5, DIM)).astype(jnp.float32)
    run = lambda rate, rng: blocks.block(p, x, dropout_rate=rate, rng=rng)
    np.testing.assert_array_equal(run(0.5, None), run(0.0, None))  # no rng: evaluation
    a, b = run(0.5, jax.random.key(1)), run(0.5, jax.random.key(2))
    np.testing.assert_array_equal(a, run(0.5, jax.random.key(1)))  # a function of the rng
    self.assertGreater(float(jnp.abs(a - b).max()), 1e-3)
    kept = blocks.dropout(jnp.ones((4000,)), 0.25, jax.random.key(3))
    self.assertAlmostEqual(float((kept == 0).mean()), 0.25, delta=0.03)
    np.testing.assert_allclose(np.unique(np.asarray(kept)), [0.0, 1 / 0.75], rtol=1e-6)

  def test_heads_must_divide_width(self):
    with self.assertRaisesRegex(ValueError, 'not divisible by heads=3'):
      blocks.attention_init(jax.random.key(0), DIM, 3)
