"""A tiny cell with a chunkwise form, for the tests of the shared recurrent machinery.

The diagonal linear recurrence h_t = a ⊙ h_{t-1} + x_t W (a = sigmoid(a_logit), per unit);
y_t = h_t. Its `chunk_step` runs C steps with `jax.lax.associative_scan` over the pairs
(a, u): (a1, u1) ∘ (a2, u2) = (a1 a2, a2 u1 + u2), the composition of two affine maps.
Not a model anyone trains: it makes `recurrence.run(..., chunk_size=C)` and the residual
model testable without the real mixer cells.
"""
import jax
import jax.numpy as jnp

from ltmjax.cells.base import Cell


def init(key, input_dim: int, hidden_dim: int, decay: float = 0.9):
  """Params {'w': [D, H], 'a_logit': [H]}; a starts near `decay`."""
  k_w, k_a = jax.random.split(key)
  logit = jnp.log(decay) - jnp.log1p(-decay)
  return {'w': jax.random.normal(k_w, (input_dim, hidden_dim)) / jnp.sqrt(input_dim),
          'a_logit': logit + 0.5 * jax.random.normal(k_a, (hidden_dim,))}


def initial_carry(params, batch_shape):
  return jnp.zeros(tuple(batch_shape) + params['a_logit'].shape, params['w'].dtype)


def step(params, h_BxH, x_BxD):
  h_BxH = jax.nn.sigmoid(params['a_logit']) * h_BxH + x_BxD @ params['w']
  return h_BxH, h_BxH


def chunk_step(params, h_BxH, x_BxCxD, mask_BxC):
  """C steps at once: padded steps are the identity map (a = 1, u = 0) and output zeros."""
  u_BxCxH = x_BxCxD @ params['w']
  a_BxCxH = jnp.broadcast_to(jax.nn.sigmoid(params['a_logit']), u_BxCxH.shape)
  if mask_BxC is not None:
    m = mask_BxC[..., None]
    a_BxCxH, u_BxCxH = jnp.where(m, a_BxCxH, 1), jnp.where(m, u_BxCxH, 0)

  def compose(first, second):
    (a1, u1), (a2, u2) = first, second
    return a1 * a2, a2 * u1 + u2
  a_BxCxH, u_BxCxH = jax.lax.associative_scan(compose, (a_BxCxH, u_BxCxH), axis=1)
  hs_BxCxH = a_BxCxH * h_BxH[:, None] + u_BxCxH
  ys_BxCxH = hs_BxCxH if mask_BxC is None else jnp.where(mask_BxC[..., None], hs_BxCxH, 0)
  return hs_BxCxH[:, -1], ys_BxCxH


LINEAR = Cell('toy_linear', init, initial_carry, step, chunk_step=chunk_step,
              options={'decay': 0.9})
