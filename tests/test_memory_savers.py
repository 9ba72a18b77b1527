"""Memory savers: gradient accumulation, bf16 compute with fp32 state, rematerialisation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltmjax import config_lib, parallel, tasks, train
from ltmjax.models import memory_transformer as ltmt_model
from ltmjax.models import recurrent, transformer


def lstm_config(batch_size=16, accumulate=1, dtype='float32', steps=20):
  c = config_lib.base_config(model='lstm', task='copy')
  c.task.update(blank_len=6, length=3, alphabet=4)   # every example has the same 3 targets
  c.model.update(hidden=16, embed_dim=8)
  # A constant rate: the same schedule whatever train.steps, so one fp32 trainer serves all.
  c.opt.update(schedule='constant', warmup_steps=0, learning_rate=1e-2,
               accumulate_steps=accumulate)
  c.train.update(steps=steps, batch_size=batch_size, eval_batch_size=8, eval_examples=8,
                 progress=False, dtype=dtype)
  c.parallel.data = 1
  return config_lib.lock(c)


def make_trainer(config):
  task, model = train.build(config)
  return train.Trainer(config, task, model,
                       parallel.make_mesh(config.parallel, jax.devices()[:1]))


@pytest.fixture(scope='module')
def fp32_trainer():
  return make_trainer(lstm_config())


def step(trainer, state, batch):
  return trainer.train_step(state, parallel.global_batch(batch, trainer.batch_sharding))


def test_accumulating_k_micro_batches_equals_one_big_batch(fp32_trainer):
  # Two updates: 2 x 16 rows, and 4 micro-batches of 8 rows with accumulate_steps=2.
  big, small = fp32_trainer, make_trainer(lstm_config(8, accumulate=2))
  state_big = big.init_state(jax.random.PRNGKey(0))
  state_small = small.init_state(jax.random.PRNGKey(0))
  stream = big.task.train_iterator()
  for _ in range(2):
    batch = next(stream)
    state_big, _ = step(big, state_big, batch)
    before = jax.device_get(state_small['params'])
    state_small, _ = step(small, state_small, {k: v[:8] for k, v in batch.items()})
    # The first micro-batch only accumulates: the parameters have not moved yet.
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state_small['params'])):
      np.testing.assert_array_equal(a, b)
    state_small, _ = step(small, state_small, {k: v[8:] for k, v in batch.items()})
  for a, b in zip(jax.tree.leaves(state_big['params']), jax.tree.leaves(state_small['params'])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-5)
  with pytest.raises(ValueError, match='multiple of opt.accumulate_steps'):
    make_trainer(lstm_config(8, accumulate=3))


def test_bfloat16_compute_keeps_float32_state_and_tracks_float32(fp32_trainer):
  losses = {}
  for dtype, trainer in (('float32', fp32_trainer),
                         ('bfloat16', make_trainer(lstm_config(dtype='bfloat16')))):
    state = trainer.init_state(jax.random.PRNGKey(0))
    stream = trainer.task.train_iterator()
    losses[dtype] = []
    for _ in range(20):
      state, metrics = step(trainer, state, next(stream))
      losses[dtype].append(float(metrics['loss']))
    for leaf in jax.tree.leaves((state['params'], state['opt_state'])):
      if jnp.issubdtype(leaf.dtype, jnp.floating):
        assert leaf.dtype == jnp.float32
  fp32, bf16 = np.array(losses['float32']), np.array(losses['bfloat16'])
  assert np.all(np.isfinite(bf16))
  assert not np.array_equal(fp32, bf16)   # the compute really was bf16
  np.testing.assert_allclose(bf16, fp32, rtol=0.05, atol=0.01)
  assert bf16[-5:].mean() < 0.8 * bf16[:3].mean()   # and it learns


def value_and_grads(module, params, inputs):
  """Loss = sum(outputs * fixed random weights): its value and parameter gradients."""
  weights = jax.random.normal(jax.random.PRNGKey(1),
                              jax.eval_shape(module.apply, {'params': params}, inputs).shape)
  loss = lambda p: (module.apply({'params': p}, inputs) * weights).sum()  # noqa: E731
  return jax.jit(jax.value_and_grad(loss))(params)


def copy_spec():
  cfg = config_lib.base_config(model='lstm', task='copy').task
  cfg.update(blank_len=6, length=3, alphabet=4)
  return tasks.get('copy')(cfg, seed=0, batch_size=2, eval_batch_size=2).spec


def test_transformer_remat_keeps_values_and_gradients():
  spec = copy_spec()   # T = 12, causal, per-token outputs
  tokens = jax.random.randint(jax.random.PRNGKey(2), (2, spec.seq_len), 0, spec.input_dim)
  cfg = dict(transformer.default_config(), dim=16, heads=2, layers=1, mlp_dim=32, dropout=0.0)
  plain, rematted = (transformer.build(dict(cfg, remat=r), spec) for r in ('none', 'full'))
  params = jax.jit(plain.init)(jax.random.PRNGKey(0), tokens)['params']
  (v0, g0), (v, g) = (value_and_grads(m, params, tokens) for m in (plain, rematted))
  np.testing.assert_allclose(v, v0, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g0), strict=True):
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)


def test_remat_switches_reach_the_computation():
  # LTM-T's and the recurrent models' remat keep their numbers (tests/test_ltmt.py,
  # tests/test_recurrence.py); here: each config switch changes the gradient computation.
  spec = copy_spec()
  tokens = jnp.zeros((2, spec.seq_len), jnp.int32)

  def grad_jaxpr(module):
    params = jax.eval_shape(module.init, jax.random.PRNGKey(0), tokens)['params']
    return str(jax.make_jaxpr(jax.grad(lambda p: module.apply({'params': p}, tokens).sum()))(
        params))
  t_cfg = dict(transformer.default_config(), dim=16, heads=2, layers=1, mlp_dim=32)
  assert 'remat2[' not in grad_jaxpr(transformer.build(dict(t_cfg, remat='none'), spec))
  assert 'policy=DotsSaveable' in grad_jaxpr(transformer.build(dict(t_cfg, remat='dots'), spec))
  l_cfg = dict(ltmt_model.default_config(), dim=16, heads=2, layers=1, mlp_dim=32, segment=4,
               memory_slots=2)
  assert (grad_jaxpr(ltmt_model.build(dict(l_cfg, remat=False), spec))
          != grad_jaxpr(ltmt_model.build(dict(l_cfg, remat=True), spec)))
  jaxprs = []
  for remat in (False, True):
    r_cfg = config_lib.base_config(model='lstm', task='copy').model
    r_cfg.update(hidden=16, embed_dim=8, remat=remat)
    jaxprs.append(grad_jaxpr(recurrent.build(r_cfg, spec)))
  assert jaxprs[0] != jaxprs[1]
