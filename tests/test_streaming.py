"""The carry API: chunks fed in turn with the carry == the whole sequence in one call."""
import chex
import jax
import jax.numpy as jnp
import ml_collections
from absl.testing import parameterized

from ltmjax import models
from ltmjax.errors import ConfigError
from ltmjax.tasks.base import TaskSpec

SIZES = {'lstm': dict(layers=2, hidden=12, embed_dim=8), 'gru': dict(hidden=12, embed_dim=8),
         'ltmt': dict(dim=16, heads=2, layers=1, mlp_dim=32, segment=4, memory_slots=3)}
LENGTH, CHUNK = 21, 8   # 3 chunks, the last one padded; LTM-T segments of 4 line up


def _model(name, output_kind, pool, **changes):
  cfg = dict(models.get(name).default_config(), name=name, pool=pool, **SIZES[name])
  cfg.update(changes)
  spec = TaskSpec('tokens', 11, output_kind, 5, LENGTH, causal=output_kind == 'token')
  return models.build(ml_collections.ConfigDict(cfg), spec)


def _data():
  x_BxT = jax.random.randint(jax.random.PRNGKey(0), (2, LENGTH), 1, 11)
  mask_BxT = jnp.arange(LENGTH)[None] < jnp.array([[LENGTH], [13]])   # row 1 right-padded
  return x_BxT, mask_BxT


def _stream(model, variables, x_BxT, mask_BxT, chunk=CHUNK):
  """Outputs of each chunk (the last one padded to `chunk` with mask False) and the carry."""
  carry, outs = model.apply(variables, x_BxT.shape[0], method='initial_carry'), []
  step = jax.jit(lambda v, c, x, m: model.apply(v, x, m, carry=c, return_carry=True))
  for start in range(0, LENGTH, chunk):
    pad = ((0, 0), (0, max(0, start + chunk - LENGTH)))
    out, carry = step(variables, carry, jnp.pad(x_BxT[:, start:start + chunk], pad),
                      jnp.pad(mask_BxT[:, start:start + chunk], pad))
    outs.append(out)
  return outs, carry


class StreamingTest(parameterized.TestCase):

  @parameterized.parameters(('lstm', ('sequence', 'last')), ('lstm', ('token', 'last')),
                            ('gru', ('sequence', 'mean')), ('ltmt', ('sequence', 'mean')),
                            ('ltmt', ('sequence', 'last')), ('ltmt', ('token', 'last')))
  def test_streaming_equals_full_sequence(self, name, head):
    model = _model(name, *head)
    x_BxT, mask_BxT = _data()
    variables = model.init(jax.random.PRNGKey(1), x_BxT, mask_BxT)
    full = jax.jit(model.apply)(variables, x_BxT, mask_BxT)
    outs, carry = _stream(model, variables, x_BxT, mask_BxT)
    if head[0] == 'sequence':
      chex.assert_trees_all_close(outs[-1], full, atol=1e-5)
    else:   # per-token logits at the real positions
      streamed = jnp.concatenate(outs, axis=1)[:, :LENGTH]
      chex.assert_trees_all_close(streamed * mask_BxT[..., None], full * mask_BxT[..., None],
                                  atol=1e-5)
    # The carry round-trips: the whole sequence's final carry is the streamed one.
    _, whole = jax.jit(lambda v: model.apply(v, x_BxT, mask_BxT, return_carry=True))(variables)
    chex.assert_trees_all_close(carry, whole, atol=1e-5)

  def test_two_halves_with_the_carry(self, name='ltmt'):
    # apply on [x1; x2] == apply x1, then x2 from x1's carry (no mask, no padding).
    model = _model(name, 'token', 'last')
    x_BxT = _data()[0][:, :16]
    variables = model.init(jax.random.PRNGKey(2), x_BxT)
    whole, carry_all = model.apply(variables, x_BxT, return_carry=True)
    first, carry = model.apply(variables, x_BxT[:, :8], return_carry=True)
    second, carry = model.apply(variables, x_BxT[:, 8:], carry=carry, return_carry=True)
    chex.assert_trees_all_close(jnp.concatenate([first, second], 1), whole, atol=1e-5)
    chex.assert_trees_all_close(carry, carry_all, atol=1e-5)
    # The carry matters: the second half from a fresh carry differs.
    fresh = model.apply(variables, x_BxT[:, 8:])
    self.assertGreater(float(jnp.abs(fresh - second).max()), 1e-3)

  def test_bidirectional_takes_no_carry(self):
    model = _model('lstm', 'sequence', 'last', bidirectional=True)
    x_BxT, mask_BxT = _data()
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(1), x_BxT, mask_BxT)
    with self.assertRaisesRegex(ConfigError, 'unidirectional'):
      jax.eval_shape(lambda v: model.apply(v, x_BxT, mask_BxT, return_carry=True), variables)
