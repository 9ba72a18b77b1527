"""Position encodings: sinusoidal (added to the inputs) and rotary (applied to queries and keys)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def sinusoidal_positions(length: int, dim: int, *, max_timescale: float = 10_000.0):
  """[T, D] float32 sin/cos position encodings (sin in the first half, cos in the second)."""
  half = dim // 2
  inv_freq = max_timescale ** (-np.arange(half, dtype=np.float32) / max(half, 1))
  angles_TxH = np.arange(length, dtype=np.float32)[:, None] * inv_freq[None, :]
  enc = np.concatenate([np.sin(angles_TxH), np.cos(angles_TxH)], axis=-1)
  if dim % 2:
    enc = np.concatenate([enc, np.zeros((length, 1), np.float32)], axis=-1)
  return jnp.asarray(enc)


def apply_rotary(x_BxLxNxK, positions_BxL, *, max_timescale: float = 10_000.0):
  """Rotary position embedding (RoPE): rotates feature pairs (k, k + K/2) by position·freq.

  After rotation q·k depends on the positions only through their difference.
  Args:
    x_BxLxNxK: queries or keys; K must be even.
    positions_BxL: int or float positions of each token.
  Returns:
    [B, L, N, K] in x's dtype (the rotation is computed in float32).
  """
  head = x_BxLxNxK.shape[-1]
  if head % 2:
    raise ValueError(f'rotary positions need an even head size, got {head}')
  half = head // 2
  inv_freq_H = max_timescale ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles_BxLx1xH = (positions_BxL.astype(jnp.float32)[..., None] * inv_freq_H)[:, :, None, :]
  sin, cos = jnp.sin(angles_BxLx1xH), jnp.cos(angles_BxLx1xH)
  x = x_BxLxNxK.astype(jnp.float32)
  x1, x2 = x[..., :half], x[..., half:]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_BxLxNxK.dtype)
