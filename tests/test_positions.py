"""Position encodings: sinusoidal values, rotary relative-position property."""
from absl.testing import absltest
import chex
import jax.numpy as jnp
import numpy as np

from ltmjax import positions as P


class PositionTest(chex.TestCase):

  def test_sinusoidal(self):
    enc = P.sinusoidal_positions(5, 6)
    self.assertEqual(enc.shape, (5, 6))
    np.testing.assert_allclose(enc[0], [0, 0, 0, 1, 1, 1], atol=1e-7)
    # Feature 0 has frequency 1: sin(t); feature 3 is cos(t).
    np.testing.assert_allclose(enc[:, 0], np.sin(np.arange(5)), atol=1e-6)
    np.testing.assert_allclose(enc[:, 3], np.cos(np.arange(5)), atol=1e-6)
    self.assertEqual(P.sinusoidal_positions(4, 7).shape, (4, 7))

  @chex.variants(with_jit=True, without_jit=True)
  def test_rotary_depends_on_offset_only(self):
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)
    rot = self.variant(P.apply_rotary)

    def score(pq, pk):
      return float((rot(q, jnp.array([[pq]])) * rot(k, jnp.array([[pk]]))).sum())
    for shift in (1, 7, 100):
      np.testing.assert_allclose(score(3, 1), score(3 + shift, 1 + shift), rtol=1e-4, atol=1e-4)
    self.assertNotAlmostEqual(score(3, 1), score(3, 2), places=3)
    # A rotation keeps norms; position 0 is the identity.
    np.testing.assert_allclose(jnp.linalg.norm(rot(q, jnp.array([[5]]))), jnp.linalg.norm(q),
                               rtol=1e-5)
    np.testing.assert_allclose(rot(q, jnp.array([[0]])), q, atol=1e-7)



if __name__ == '__main__':
  absltest.main()
