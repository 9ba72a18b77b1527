"""Initialisers the recurrent cells share."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def orthogonal_blocks(key, hidden_dim: int, num_gates: int, dtype):
  """Recurrent weights [H, G*H] with each gate's block orthogonal (stable long-range gradients)."""
  keys = jax.random.split(key, num_gates)
  init = jax.nn.initializers.orthogonal()
  return jnp.concatenate([init(k, (hidden_dim, hidden_dim), dtype) for k in keys], axis=-1)
