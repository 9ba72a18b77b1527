"""Ring attention over a 'seq' mesh axis equals dense attention, values and gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from ltmjax import attention as attn_lib

AXES = ('data', 'seq', 'model')


def mesh_of(data, seq, model):
  return Mesh(np.asarray(jax.devices()[:data * seq * model]).reshape(data, seq, model), AXES)


def qkv(batch=2, length=16, heads=2, head=8):
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  return [jax.random.normal(k, (batch, length, heads, head)) for k in keys]


def values_and_grads(fn, q, k, v):
  """fn's output and the gradients of a fixed random projection of it, in one jit."""
  w = jax.random.normal(jax.random.PRNGKey(1), q.shape)
  loss = lambda *a: (fn(*a) * w).sum()  # noqa: E731
  return jax.jit(lambda *a: (fn(*a), jax.grad(loss, argnums=(0, 1, 2))(*a)))(q, k, v)


@pytest.mark.parametrize('mesh_shape, causal, padded', [
    ((2, 4, 1), True, True),     # batch over 'data', sequence over 4 devices, causal + padding
    ((1, 4, 2), False, False),   # heads over 'model', bidirectional
])
def test_ring_equals_dense(mesh_shape, causal, padded):
  q, k, v = qkv()
  mask = None
  if padded:   # row 0 has 11 real tokens: whole chunks and part of one are padding
    mask = attn_lib.padding_mask(jnp.arange(16)[None, :] < jnp.array([[11], [16]]))
  mesh = mesh_of(*mesh_shape)

  def ring(q, k, v):
    return attn_lib.ring_attention(q, k, v, mask_BxNxLxS=mask, causal=causal, mesh=mesh)

  def dense(q, k, v):
    return attn_lib.attention(q, k, v, mask_BxNxLxS=mask, causal=causal, implementation='dense')
  (out, grads), (ref, ref_grads) = values_and_grads(ring, q, k, v), values_and_grads(dense, q, k, v)
  np.testing.assert_allclose(out, ref, atol=2e-6, rtol=1e-5)
  for g, r in zip(grads, ref_grads):
    np.testing.assert_allclose(g, r, atol=2e-6, rtol=1e-5)
  assert out.sharding.spec[1] == 'seq'   # the output stays split along the sequence


def test_ring_takes_the_mesh_from_the_context_and_refuses_what_it_cannot_do():
  q, k, v = qkv(length=8)
  with jax.set_mesh(mesh_of(1, 2, 1)):
    out = jax.jit(lambda *a: attn_lib.ring_attention(*a, causal=True))(q, k, v)
  np.testing.assert_allclose(
      out, attn_lib.attention(q, k, v, causal=True, implementation='dense'), atol=2e-6)
  with pytest.raises(ValueError, match="needs a mesh with a 'seq' axis"):
    attn_lib.ring_attention(q, k, v)
  mesh = mesh_of(1, 4, 1)
  with pytest.raises(ValueError, match='multiples of 4'):
    attn_lib.ring_attention(q[:, :6], k[:, :6], v[:, :6], mesh=mesh)
  with pytest.raises(ValueError, match='key padding mask'):
    attn_lib.ring_attention(q, k, v, mask_BxNxLxS=jnp.ones((2, 1, 8, 8), bool), mesh=mesh)
  with pytest.raises(ValueError, match='same length'):
    attn_lib.ring_attention(q, k[:, :4], v[:, :4], causal=True, mesh=mesh)
