"""The trainer end to end (learning, bit-exact resume, NaN handling, crash-safe checkpoints)
and the public train-step builder it is made of."""
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ltmjax import checkpoint, config_lib, train
from ltmjax.errors import RunError


def tiny_config(task='copy', model='lstm', steps=8, dropout=0.0, **train_kw):
  c = config_lib.base_config(model=model, task=task)
  if task == 'copy':
    c.task.blank_len, c.task.length, c.task.alphabet = 4, 3, 4
  else:
    c.task.length = 12
  c.model.hidden, c.model.embed_dim, c.model.dropout = 16, 8, dropout
  c.opt.warmup_steps = 2
  c.train.update(steps=steps, batch_size=8, eval_batch_size=16, eval_examples=32,
                 log_every=2, eval_every=steps, progress=False, **train_kw)
  c.ckpt.every = 4
  c.parallel.data = 1
  return config_lib.lock(c)


def state_of(workdir, config):
  """The train state of the latest checkpoint in `workdir`."""
  task, model = train.build(config)
  trainer = train.Trainer(config, task, model, train.parallel.make_mesh(config.parallel))
  with checkpoint.Checkpointer(checkpoint.directory_of(workdir), read_only=True) as ckpt:
    state, _, _ = ckpt.restore(trainer.abstract_state)
  return jax.device_get(state)


def params_of(workdir, config):
  return state_of(workdir, config)['params']


def test_training_lowers_the_loss(tmp_path):
  config = tiny_config(task='adding', steps=60)
  with config.unlocked():
    config.opt.learning_rate = 1e-2
    config.train.eval_every = 60
  result = train.run(config, str(tmp_path))
  records = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  train_losses = [r['loss'] for r in records if r['split'] == 'train']
  assert np.mean(train_losses[-5:]) < 0.5 * np.mean(train_losses[:3])
  # result.json holds the DESIGN contract's fields.
  saved = json.load(open(tmp_path / 'result.json'))
  assert saved['status'] == 'complete' and saved['steps'] == 60
  assert saved['num_params'] == sum(x.size for x in jax.tree.leaves(params_of(tmp_path, config)))
  for key in ('config', 'metrics', 'wall_time_s', 'git_revision', 'task_label', 'model_label'):
    assert key in saved
  assert saved['metrics']['mse'] == pytest.approx(result['metrics']['mse'])
  assert saved['config']['model']['hidden'] == 16
  assert os.listdir(tmp_path / 'tensorboard')


def test_resume_with_dropout_is_bit_exact(tmp_path):
  # Dropout makes every step depend on the RNG: a restore that loses the saved key (or
  # draws masks that depend on where the run restarted) changes the parameters.
  config = tiny_config(steps=8, dropout=0.3)
  train.run(config, str(tmp_path / 'once'))
  stopped = train.run(config, str(tmp_path / 'twice'), stop_at=4)
  assert stopped == {'status': 'stopped', 'steps': 4}
  assert not (tmp_path / 'twice' / 'result.json').exists()
  train.run(config, str(tmp_path / 'twice'))
  once, twice = state_of(tmp_path / 'once', config), state_of(tmp_path / 'twice', config)
  assert int(twice['step']) == 8
  for a, b in zip(jax.tree.leaves(once), jax.tree.leaves(twice), strict=True):
    np.testing.assert_array_equal(a, b)   # params, optimizer state and rng
  # The resumed run logged steps 6 and 8 after the restart, and nothing twice.
  steps = [json.loads(l)['step'] for l in open(tmp_path / 'twice' / 'metrics.jsonl')
           if json.loads(l)['split'] == 'train']
  assert steps == [2, 4, 6, 8]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  config = tiny_config(task='adding', steps=12)
  train.run(config, str(tmp_path), stop_at=4)
  with config.unlocked():
    config.opt.learning_rate = 1e30   # blows the parameters up at once
  with pytest.raises(RunError, match='NaN/inf.*step 4'):
    train.run(config, str(tmp_path))
  with checkpoint.Checkpointer(str(tmp_path / 'checkpoints'), read_only=True) as ckpt:
    assert ckpt.latest_step() == 4
  for leaf in jax.tree.leaves(params_of(tmp_path, config)):
    assert np.all(np.isfinite(leaf))


def test_half_written_checkpoint_is_never_restored(tmp_path):
  config = tiny_config(steps=12)
  train.run(config, str(tmp_path), stop_at=8)
  ckpt_dir = tmp_path / 'checkpoints'
  # A crash while step 12 was being written leaves orbax's temporary directory behind.
  shutil.copytree(ckpt_dir / '8', ckpt_dir / '12.orbax-checkpoint-tmp')
  for f in (ckpt_dir / '12.orbax-checkpoint-tmp' / 'state').iterdir():
    if f.is_file():
      f.write_bytes(b'garbage')
  with checkpoint.Checkpointer(str(ckpt_dir), read_only=True) as ckpt:
    assert ckpt.latest_step() == 8
  result = train.run(config, str(tmp_path))
  assert result['steps'] == 12
  assert not (ckpt_dir / '12.orbax-checkpoint-tmp').exists()


def test_restore_params_for_tools(tmp_path):
  config = tiny_config(steps=4)
  train.run(config, str(tmp_path))
  task, model = train.build(config)
  trainer = train.Trainer(config, task, model, train.parallel.make_mesh(config.parallel))
  params = checkpoint.restore_params(str(tmp_path), trainer.abstract_state['params'])
  expected = params_of(tmp_path, config)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(expected)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(FileNotFoundError, match='no checkpoint'):
    checkpoint.restore_params(str(tmp_path / 'missing'), trainer.abstract_state['params'])


def test_step_s_draws_its_dropout_from_the_rng_folded_with_s():
  config = tiny_config(dropout=0.5)
  task, model = train.build(config)
  spec, loss_fn, tx = task.spec, task.loss_and_metrics, optax.sgd(0.1)
  state = train.init_state(model, spec, tx, jax.random.PRNGKey(3))
  step = jax.jit(train.make_train_step(model, spec, loss_fn, tx))
  batch = next(task.train_iterator())

  def loss_at(s):
    return float(step(dict(state, step=jnp.asarray(s, jnp.int32)), batch)[1]['loss'])

  def loss_with(rng):  # the step's loss by hand, dropout drawn from `rng`
    out = model.apply({'params': state['params']}, *train.model_args(batch, spec), train=True,
                      rngs={'dropout': rng})
    return float(loss_fn(out, batch)[0])
  losses = {s: loss_at(s) for s in (0, 1, 5)}
  assert len(set(losses.values())) == 3   # a new dropout mask at every step
  for s in (0, 5):
    assert losses[s] == pytest.approx(loss_with(jax.random.fold_in(state['rng'], s)), rel=1e-6)
  assert loss_at(5) == losses[5]          # and the same one when step s is run again
  # The eval step runs without dropout; the train step leaves the key itself unchanged.
  eval_loss = float(jax.jit(train.make_eval_step(model, spec, loss_fn))(state['params'],
                                                                        batch)['loss'])
  assert eval_loss not in losses.values()
  new_state, _ = step(state, batch)
  np.testing.assert_array_equal(new_state['rng'], state['rng'])
  assert int(new_state['step']) == 1
