"""Sharded training on 8 fake CPU devices: (data, model) sharding changes layouts, not numbers."""
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ltmjax import attention as attn_lib
from ltmjax import checkpoint, config_lib, models, parallel, train
from ltmjax.models import memory_transformer as ltmt_model
from ltmjax.models import transformer


@pytest.fixture(autouse=True)
def attention_models(monkeypatch):
  """Registers the attention models here until the registry has them."""
  for name, module, label in (('transformer', transformer, 'Transformer'),
                              ('ltmt', ltmt_model, 'LTM-T')):
    if name not in models.MODELS:
      monkeypatch.setitem(models.MODELS, name,
                          models.ModelEntry(module.default_config, module.build, label))


def tiny_config(model='lstm', data=1, model_axis=1, **model_kw):
  c = config_lib.base_config(model=model, task='copy')
  c.task.update(blank_len=4, length=3, alphabet=4)   # T = 10
  if model == 'lstm':
    c.model.update(hidden=16, embed_dim=8)
  else:
    c.model.update(dim=16, heads=4, layers=1, mlp_dim=32, dropout=0.0)
  if model == 'ltmt':
    c.model.update(segment=5, memory_slots=2)
  c.model.update(**model_kw)
  # SGD with momentum: Adam would blow the ~1e-9 float noise of the key bias's (exactly
  # zero) gradient up to full-size updates, so a sharded step could not match to 1e-5.
  c.opt.update(name='sgd', b1=0.9, warmup_steps=0, learning_rate=0.1)
  c.train.update(steps=4, batch_size=8, eval_batch_size=8, eval_examples=8, progress=False)
  c.parallel.update(data=data, model=model_axis)
  return config_lib.lock(c)


@pytest.fixture(scope='module')
def initial_state():
  """The tiny Transformer's initial train state on one device, compiled once."""
  config = tiny_config('transformer')
  task, model = train.build(config)
  trainer = train.Trainer(config, task, model,
                          parallel.make_mesh(config.parallel, jax.devices()[:1]))
  return jax.device_get(trainer.init_state(jax.random.PRNGKey(0)))


def one_step(config, initial, devices=None):
  """One train step from `initial` (placed with the trainer's shardings)."""
  task, model = train.build(config)
  trainer = train.Trainer(config, task, model, parallel.make_mesh(config.parallel, devices))
  state = jax.device_put(initial, trainer.state_sharding)
  batch = parallel.global_batch(next(task.train_iterator()), trainer.batch_sharding)
  state, metrics = trainer.train_step(state, batch)
  return trainer, state, metrics


def assert_trees_close(a, b, tol=1e-5):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=tol, rtol=tol)


def test_transformer_sharded_over_data_and_model_equals_one_device(initial_state):
  _, ref, ref_metrics = one_step(tiny_config('transformer'), initial_state, jax.devices()[:1])
  trainer, state, metrics = one_step(tiny_config('transformer', data=4, model_axis=2),
                                     initial_state)
  assert_trees_close(state['params'], ref['params'])
  assert_trees_close(state['opt_state'], ref['opt_state'])
  assert metrics['loss'] == pytest.approx(float(ref_metrics['loss']), abs=1e-5)
  # Heads and MLP units are split over 'model' (2 of the 4 heads, 16 of 32 units per device);
  # the momentum follows its parameter.
  block = state['params']['block_0']
  query = block['attention']['query']['kernel']
  assert query.sharding.spec == P(None, 'model', None)
  assert query.addressable_shards[0].data.shape == (16, 2, 4)
  momentum = state['opt_state'][1][0].trace['block_0']['attention']['query']['kernel']
  assert momentum.sharding.spec == query.sharding.spec
  assert block['attention']['out']['kernel'].sharding.spec == P('model', None, None)
  assert block['mlp_in']['kernel'].sharding.spec == P(None, 'model')
  assert block['mlp_in']['kernel'].addressable_shards[0].data.shape == (16, 16)
  assert block['mlp_out']['kernel'].sharding.spec == P('model', None)
  assert trainer.batch_sharding.spec == P('data')
  assert dict(trainer.mesh.shape) == {'data': 4, 'seq': 1, 'model': 2}


@pytest.mark.skipif('ring' not in attn_lib.IMPLEMENTATIONS,
                    reason="ltmjax/attention.py does not dispatch implementation='ring' yet")
def test_transformer_with_ring_attention_over_seq_equals_one_device(initial_state):
  _, ref, _ = one_step(tiny_config('transformer'), initial_state, jax.devices()[:1])
  config = tiny_config('transformer', data=2, model_axis=2, attention='ring')
  with config.unlocked():
    config.parallel.seq = 2   # T = 10: 5 tokens per device
  trainer, state, _ = one_step(config, initial_state)
  assert dict(trainer.mesh.shape) == {'data': 2, 'seq': 2, 'model': 2}
  assert_trees_close(state['params'], ref['params'])


def abstract_trainer(config):
  task, model = train.build(config)
  return train.Trainer(config, task, model, parallel.make_mesh(config.parallel))


def test_ltmt_heads_and_mlp_follow_the_same_rules():
  # Layouts only (no compile): LTM-T's plain-dict parameters use the same names.
  state = abstract_trainer(tiny_config('ltmt', data=4, model_axis=2)).abstract_state
  layer = state['params']['ltmt']['layer_0']
  for part in ('read', 'write'):
    assert layer[part]['attention']['query']['kernel'].sharding.spec == P(None, 'model', None)
    assert layer[part]['attention']['out']['kernel'].sharding.spec == P('model', None, None)
  assert layer['read']['mlp_in']['kernel'].sharding.spec == P(None, 'model')
  assert layer['read']['mlp_out']['kernel'].sharding.spec == P('model', None)
  assert state['params']['ltmt']['memory'].sharding.spec == P()


def test_lstm_is_data_parallel_with_replicated_parameters():
  trainer = abstract_trainer(tiny_config('lstm', data=8))
  for leaf in jax.tree.leaves(trainer.abstract_state['params']):
    assert leaf.sharding.spec == P() and len(leaf.sharding.device_set) == 8
  batch = parallel.global_batch(next(trainer.task.train_iterator()), trainer.batch_sharding)
  assert batch['inputs'].addressable_shards[0].data.shape == (1, 10)   # 8 rows over 8 devices
  # Numbers: tests/test_multihost.py compares data-parallel LSTM training across processes.


def test_a_checkpoint_restores_on_another_mesh(tmp_path, initial_state):
  # Saved with heads on 2 devices (data=4), restored with heads on 4 and on 1 device.
  trainer = abstract_trainer(tiny_config('transformer', data=4, model_axis=2))
  state = jax.device_put(initial_state, trainer.state_sharding)
  assert state['params']['block_0']['mlp_in']['kernel'].sharding.spec == P(None, 'model')
  with checkpoint.Checkpointer(str(tmp_path), async_save=False) as ckpt:
    ckpt.save(1, state, {'step': 1})
  for data, model_axis, spec in ((2, 4, P(None, 'model', None)), (1, 1, P())):
    other_config = tiny_config('transformer', data=data, model_axis=model_axis)
    other = abstract_trainer(other_config)
    with checkpoint.Checkpointer(str(tmp_path), read_only=True) as ckpt:
      restored, _, _ = ckpt.restore(other.abstract_state)
    query = restored['params']['block_0']['attention']['query']['kernel']
    assert query.sharding.spec == spec and query.sharding.mesh.shape['model'] == model_axis
    assert_trees_close(restored, state, tol=0)


def test_make_mesh_sizes():
  cfg = lambda **kw: config_lib.lock(__import__('ml_collections').ConfigDict(  # noqa: E731
      dict(dict(data=-1, model=1), **kw)))
  assert dict(parallel.make_mesh(cfg()).shape) == {'data': 8, 'seq': 1, 'model': 1}
  assert dict(parallel.make_mesh(cfg(model=2, seq=2)).shape) == {'data': 2, 'seq': 2, 'model': 2}
  assert dict(parallel.make_mesh(cfg(data=2, model=-1)).shape) == {'data': 2, 'seq': 1,
                                                                    'model': 4}
  assert parallel.make_mesh(cfg(data=2, model=1)).devices.size == 2   # the first 2 devices
  with pytest.raises(ValueError, match='does not fit the 8 devices'):
    parallel.make_mesh(cfg(data=3, model=-1))
  with pytest.raises(ValueError, match='does not fit'):
    parallel.make_mesh(cfg(data=4, model=4))
  parallel.check_processes(parallel.make_mesh(cfg()))   # one process: any mesh is fine
