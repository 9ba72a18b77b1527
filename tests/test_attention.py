"""Attention: dense == blockwise == a numpy reference, masks, gradients, memory."""
import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from ltmjax import attention as A


def reference(q, k, v, mask=None, causal=False):
  """numpy softmax(q k^T / sqrt(K)) v; rows with no visible key give 0."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  batch, length_q, heads, head = q.shape
  length_k = k.shape[1]
  logits = np.einsum('blnk,bsnk->bnls', q, k) / np.sqrt(head)
  vis = np.ones((batch, heads, length_q, length_k), bool)
  if mask is not None:
    vis &= np.broadcast_to(np.asarray(mask), vis.shape)
  if causal:
    vis &= np.arange(length_k)[None, :] <= np.arange(length_q)[:, None] + length_k - length_q
  logits = np.where(vis, logits, -np.inf)
  peak = np.where(vis.any(-1, keepdims=True), logits.max(-1, keepdims=True), 0.0)
  p = np.where(vis, np.exp(logits - peak), 0.0)
  p = p / np.maximum(p.sum(-1, keepdims=True), 1e-30)
  return np.einsum('bnls,bsnk->blnk', p, v)


def jnp_reference(q, k, v, mask=None, causal=False):
  """A differentiable naive version for gradient checks."""
  length_q, length_k, head = q.shape[1], k.shape[1], q.shape[-1]
  logits = jnp.einsum('blnk,bsnk->bnls', q, k) / np.sqrt(head)
  vis = jnp.ones(logits.shape, bool)
  if mask is not None:
    vis = vis & mask
  if causal:
    vis = vis & A.causal_mask(length_q, length_k)
  p = jax.nn.softmax(jnp.where(vis, logits, -1e30), axis=-1) * vis.any(-1, keepdims=True)
  return jnp.einsum('bnls,bsnk->blnk', jnp.where(vis, p, 0.0), v)


def make_qkv(batch, length_q, length_k, heads=2, head=8, seed=0, dtype=jnp.float32):
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(batch, length_q, heads, head))
  k = rng.normal(size=(batch, length_k, heads, head))
  v = rng.normal(size=(batch, length_k, heads, head))
  return tuple(jnp.asarray(x, dtype) for x in (q, k, v))


def make_mask(kind, batch, length_q, length_k, heads=2, seed=1):
  rng = np.random.default_rng(seed)
  if kind == 'none':
    return None
  if kind == 'padding':
    lengths = np.array([length_k, max(1, length_k // 3)])[:batch]
    return A.padding_mask(jnp.asarray(np.arange(length_k)[None] < lengths[:, None]))
  if kind == 'segments':
    assert length_q == length_k
    ids = np.sort(rng.integers(0, 3, size=(batch, length_q)), axis=-1)
    return A.segment_mask(jnp.asarray(ids))
  if kind == 'random':  # a full [B, N, L, S] mask, with some rows fully masked
    m = rng.random((batch, heads, length_q, length_k)) < 0.5
    m[:, :, 0] = False
    return jnp.asarray(m)
  raise ValueError(kind)


CASES = [
    # name, L, S, block, mask kind, causal
    ('plain', 16, 16, 4, 'none', False),
    ('not_multiple', 13, 29, 8, 'none', False),
    ('padding', 19, 19, 8, 'padding', False),
    ('causal', 21, 21, 8, 'none', True),
    ('causal_memory', 7, 19, 4, 'none', True),        # L < S: all prefix keys + causal segment
    ('causal_l_gt_s', 12, 5, 2, 'none', True),        # early rows see nothing
    ('causal_padding', 17, 17, 5, 'padding', True),
    ('segments', 18, 18, 4, 'segments', False),
    ('random_full_mask', 11, 23, 8, 'random', True),
    ('single_block', 9, 9, 512, 'padding', False),
]


class AttentionTest(chex.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*CASES)
  def test_matches_reference_with_gradients(self, length_q, length_k, block, mask_kind, causal):
    q, k, v = make_qkv(2, length_q, length_k)
    mask = make_mask(mask_kind, 2, length_q, length_k)
    w = jnp.asarray(np.random.default_rng(4).normal(size=q.shape), jnp.float32)
    impls = ('dense', 'blockwise')  # 'auto' is dense at these lengths

    @jax.jit  # one compilation for all implementations keeps the suite fast on 2 cores
    def outputs_and_grads(q, k, v):
      fns = [functools.partial(A.attention, mask_BxNxLxS=mask, causal=causal,
                               implementation=impl, block_size=block) for impl in impls]
      fns.append(lambda q, k, v: jnp_reference(q, k, v, mask, causal))
      return [(fn(q, k, v), jax.grad(lambda *a, fn=fn: (fn(*a) * w).sum(), (0, 1, 2))(q, k, v))
              for fn in fns]
    results = outputs_and_grads(q, k, v)
    want = reference(q, k, v, mask, causal)
    _, want_grads = results[-1]
    for impl, (out, grads) in zip(impls, results):
      self.assertEqual(out.shape, q.shape)
      np.testing.assert_allclose(out, want, atol=2e-5, rtol=2e-5, err_msg=impl)
      for name, g, r in zip('qkv', grads, want_grads):
        np.testing.assert_allclose(g, r, atol=5e-5, rtol=5e-5, err_msg=f'{impl} d{name}')

  @chex.variants(with_jit=True, without_jit=True)
  def test_variants(self):
    q, k, v = make_qkv(2, 10, 14)
    mask = make_mask('padding', 2, 10, 14)
    want = reference(q, k, v, mask, True)
    for impl in ('dense', 'blockwise'):
      got = self.variant(lambda q, k, v, m, impl=impl: A.attention(
          q, k, v, mask_BxNxLxS=m, causal=True, implementation=impl, block_size=4))(q, k, v, mask)
      np.testing.assert_allclose(got, want, atol=2e-5, rtol=2e-5, err_msg=impl)

  def test_check_grads_blockwise(self):
    q, k, v = make_qkv(1, 6, 9, heads=1, head=4, seed=5)
    mask = make_mask('padding', 1, 6, 9)
    f = jax.jit(lambda q, k, v: A.attention(q, k, v, mask_BxNxLxS=mask, causal=True,
                                            implementation='blockwise', block_size=4))
    jax.test_util.check_grads(f, (q, k, v), order=1, modes=['rev'], eps=1e-2, atol=1e-2,
                              rtol=1e-2)

  @parameterized.parameters('dense', 'blockwise')
  def test_fully_masked_rows_are_zero_with_zero_gradient(self, impl):
    q, k, v = make_qkv(2, 6, 6)
    mask = jnp.ones((2, 1, 6, 6), bool).at[:, :, 2].set(False)
    f = lambda q: A.attention(q, k, v, mask_BxNxLxS=mask, implementation=impl, block_size=4)
    out, dq = jax.jit(lambda q: (f(q), jax.grad(lambda q: f(q).sum())(q)))(q)
    np.testing.assert_array_equal(out[:, 2], 0.0)
    self.assertGreater(float(jnp.abs(out[:, 3]).min()), 0.0)
    np.testing.assert_array_equal(dq[:, 2], 0.0)

  @parameterized.parameters('dense', 'blockwise')
  def test_bfloat16_in_bfloat16_out(self, impl):
    q, k, v = make_qkv(2, 20, 20, dtype=jnp.bfloat16)
    f = lambda q, k, v: A.attention(q, k, v, causal=True, implementation=impl, block_size=8)
    out, grads = jax.jit(lambda *a: (f(*a), jax.grad(
        lambda *a: f(*a).astype(jnp.float32).sum(), (0, 1, 2))(*a)))(q, k, v)
    self.assertEqual(out.dtype, jnp.bfloat16)
    np.testing.assert_allclose(out.astype(jnp.float32), reference(q, k, v, causal=True),
                               atol=3e-2)
    self.assertTrue(all(g.dtype == jnp.bfloat16 for g in grads))

  def test_online_softmax_accumulator_any_block_order_and_log_sum_exp(self):
    """Folding key blocks in any order gives the reference output and the rows' log-sum-exp."""
    q, k, v = make_qkv(2, 5, 12, seed=3)
    mask = np.asarray(make_mask('random', 2, 5, 12))   # row 0 of each head sees no key
    scale = 1.0 / np.sqrt(q.shape[-1])
    stats = A.softmax_init(2, 2, 5, 8)
    for cut in ((8, 12), (0, 3), (3, 8)):   # out of order, unequal blocks
      stats = A.softmax_update(stats, q, k[:, cut[0]:cut[1]], v[:, cut[0]:cut[1]],
                               mask[..., cut[0]:cut[1]], scale)
    out, lse = A.softmax_finalize(stats, jnp.float32)
    np.testing.assert_allclose(out, reference(q, k, v, mask), atol=1e-5, rtol=1e-5)
    logits = np.einsum('blnk,bsnk->bnls', np.asarray(q, np.float64), np.asarray(k)) * scale
    peak = logits.max(-1, keepdims=True)
    want_lse = np.log(np.where(mask, np.exp(logits - peak), 0.0).sum(-1)) + peak[..., 0]
    seen = mask.any(-1)
    np.testing.assert_allclose(np.asarray(lse)[seen], want_lse[seen], atol=1e-5, rtol=1e-5)
    self.assertTrue(np.all(np.isposinf(np.asarray(lse)[~seen])))

  def test_unknown_implementation(self):
    q, k, v = make_qkv(1, 4, 4)
    with self.assertRaisesRegex(ValueError, 'auto, dense, blockwise'):
      A.attention(q, k, v, implementation='flash')

  def test_auto_goes_blockwise_when_long(self):
    def has_scan(length):
      q, k, v = (jax.ShapeDtypeStruct((1, length, 1, 8), jnp.float32),) * 3
      return 'scan' in str(jax.make_jaxpr(lambda q, k, v: A.attention(q, k, v))(q, k, v))
    self.assertFalse(has_scan(64))
    self.assertTrue(has_scan(4096))

  def test_blockwise_training_memory_is_linear(self):
    """Compiled (not run) temp memory of forward+backward: blockwise far below dense."""
    def temp_bytes(impl, length):
      spec = jax.ShapeDtypeStruct((1, length, 2, 16), jnp.float32)
      f = jax.grad(lambda q, k, v: A.attention(q, k, v, causal=True, implementation=impl,
                                               block_size=256).sum(), (0, 1, 2))
      return jax.jit(f).lower(spec, spec, spec).compile().memory_analysis().temp_size_in_bytes
    dense, blockwise = temp_bytes('dense', 4096), temp_bytes('blockwise', 4096)
    self.assertLess(blockwise * 8, dense)
    # Doubling the length roughly doubles blockwise memory (not 4x).
    self.assertLess(temp_bytes('blockwise', 8192), 2.5 * blockwise)


class MaskTest(chex.TestCase):

  def test_causal_mask_bottom_right(self):
    np.testing.assert_array_equal(A.causal_mask(2, 4), [[1, 1, 1, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(A.causal_mask(3, 3), np.tril(np.ones((3, 3))))
    np.testing.assert_array_equal(A.causal_mask(3, 1), [[0], [0], [1]])

  def test_padding_and_segment_masks(self):
    pm = A.padding_mask(jnp.array([[1, 1, 0]], bool))
    self.assertEqual(pm.shape, (1, 1, 1, 3))
    np.testing.assert_array_equal(pm[0, 0, 0], [True, True, False])
    sm = A.segment_mask(jnp.array([[0, 0, 1]]))
    np.testing.assert_array_equal(sm[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 1]])


if __name__ == '__main__':
  absltest.main()
