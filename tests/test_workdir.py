"""Faults a run survives: broken checkpoints, two runs on one workdir, kill -9, Ctrl-C, a
changed config; and the pieces behind them (the lock, config.json, log truncation)."""
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ltmjax import checkpoint, distributed, metrics, train, workdir
from ltmjax.errors import ConfigError, RunError
from tests.test_train import state_of, tiny_config   # 12 steps: checkpoints every 4, keep 2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def final_state(path, config):
  state = state_of(path, config)
  return int(state['step']), state


def logged_steps(path, split='train'):
  return [r['step'] for r in map(json.loads, open(os.path.join(path, 'metrics.jsonl')))
          if r['split'] == split]


def delete_array_files(step_dir):
  for root, _, files in os.walk(os.path.join(step_dir, 'state')):
    if os.sep + 'd' in root:
      for f in files:
        os.remove(os.path.join(root, f))


def truncate_data_metadata(step_dir):
  open(os.path.join(step_dir, 'data', 'metadata'), 'w').close()


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('once'))
  config = tiny_config(steps=12)
  train.run(config, path)
  return final_state(path, config)


@pytest.mark.parametrize('corrupt', [delete_array_files, truncate_data_metadata])
def test_a_broken_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, uninterrupted,
                                                                   corrupt, caplog):
  config, path = tiny_config(steps=12), str(tmp_path)
  train.run(config, path, stop_at=8)   # checkpoints 4 and 8
  corrupt(os.path.join(path, 'checkpoints', '8'))
  # A tool reads the newest checkpoint that restores, and moves nothing; the step it returns
  # (the "resumed from" line, the preemption check) is the restored one, not the broken one.
  task, model = train.build(config)
  trainer = train.Trainer(config, task, model, train.parallel.make_mesh(config.parallel))
  with checkpoint.Checkpointer(os.path.join(path, 'checkpoints'), read_only=True) as ckpt:
    step4, _, restored_step = ckpt.restore(trainer.abstract_state)
  step4 = jax.device_get(step4)
  assert restored_step == int(step4['step']) == 4
  if corrupt is delete_array_files:   # sampling reads only the (broken) parameters
    params = checkpoint.restore_params(path, step4['params'])
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(step4['params']), strict=True):
      np.testing.assert_array_equal(a, b)
  assert not os.path.exists(os.path.join(path, 'checkpoints.unrestorable'))
  caplog.set_level(logging.INFO, logger='ltmjax')
  result = train.run(config, path)
  assert result['steps'] == 12
  messages = [r.getMessage() for r in caplog.records]
  assert any('step 8' in m and 'does not restore' in m and 'took step 4' in m for m in messages)
  assert sum(m.startswith('resumed from step ') for m in messages) == 1
  assert f'resumed from step 4 in {path}' in messages, messages
  aside = os.listdir(os.path.join(path, 'checkpoints.unrestorable'))
  assert len(aside) == 1 and aside[0].startswith('8-')   # kept, not deleted
  step, state = final_state(path, config)
  want_step, want = uninterrupted
  assert step == want_step == 12
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(want), strict=True):
    np.testing.assert_array_equal(a, b)
  assert logged_steps(path) == [2, 4, 6, 8, 10, 12]   # 6 and 8 were logged again, once


def test_no_restorable_checkpoint_stops_naming_the_folder(tmp_path):
  config, path = tiny_config(steps=12), str(tmp_path)
  train.run(config, path, stop_at=8)
  for s in ('4', '8'):
    truncate_data_metadata(os.path.join(path, 'checkpoints', s))
  with pytest.raises(RunError, match=f'none of the 2 checkpoints in {path}/checkpoints restores'):
    train.run(config, path)
  assert sorted(os.listdir(os.path.join(path, 'checkpoints'))) == ['4', '8']   # untouched


# ------------------------------------------------------------------ the pieces, in-process

def test_lock_refuses_a_second_holder_and_ignores_a_dead_ones_file(tmp_path):
  (tmp_path / workdir.LOCK_FILE).write_text('999999999\n')   # left by a killed run
  holder = subprocess.Popen([sys.executable, '-c', (
      'import sys, time; from ltmjax import workdir\n'
      f'with workdir.Lock({str(tmp_path)!r}):\n'
      '  print("held", flush=True); time.sleep(60)')], cwd=ROOT, stdout=subprocess.PIPE,
      text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    with pytest.raises(RunError, match=f'in use by another run \\(process {holder.pid}\\)'):
      with workdir.Lock(str(tmp_path)):
        pass
  finally:
    holder.kill()
    holder.wait()
  with workdir.Lock(str(tmp_path)):   # the kernel released the dead holder's lock
    assert (tmp_path / workdir.LOCK_FILE).read_text().strip() == str(os.getpid())


def test_config_changes_allow_only_longer_runs_and_layout():
  old = tiny_config(steps=12).to_dict()
  new = tiny_config(steps=20).to_dict()
  new['train']['eval_every'] = old['train']['eval_every']
  new['parallel']['data'] = -1
  new['train']['progress'] = True
  assert workdir.config_changes(old, new) == []
  shorter = tiny_config(steps=6).to_dict()
  shorter['train']['eval_every'] = old['train']['eval_every']
  shorter['model']['hidden'] = 32
  shorter['opt']['learning_rate'] = 0.5
  assert workdir.config_changes(old, shorter) == ['model.hidden', 'opt.learning_rate',
                                                  'train.steps']


def test_check_config_refuses_another_config_only_when_there_is_a_run(tmp_path):
  path = str(tmp_path)
  workdir.check_config(path, tiny_config(steps=12).to_dict())
  other = tiny_config(steps=12).to_dict()
  other['model']['hidden'] = 32
  workdir.check_config(path, other)   # nothing to resume yet: config.json is replaced
  assert json.load(open(tmp_path / 'config.json'))['model']['hidden'] == 32
  os.makedirs(tmp_path / 'checkpoints' / '4')
  with pytest.raises(ConfigError, match=r'model.hidden 32 -> 16.*--allow_config_change'):
    workdir.check_config(path, tiny_config(steps=12).to_dict())
  workdir.check_config(path, tiny_config(steps=12).to_dict(), allow_change=True)
  assert json.load(open(tmp_path / 'config.json'))['model']['hidden'] == 16


def test_metrics_and_events_after_the_restored_step_are_dropped(tmp_path):
  writer = metrics.MetricsWriter(str(tmp_path))
  for step in (2, 4, 6, 8):
    writer.write(step, 'train', {'loss': float(step)})
  writer.close()
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 10, "spl')   # cut off by kill -9
  metrics.MetricsWriter(str(tmp_path), resume_step=4).close()
  assert logged_steps(str(tmp_path)) == [2, 4]
  from tensorboardX.proto import event_pb2
  scalar_steps = []
  for name in os.listdir(tmp_path / 'tensorboard'):
    raw = (tmp_path / 'tensorboard' / name).read_bytes()
    pos = 0
    while pos < len(raw):
      (n,) = struct.unpack('<Q', raw[pos:pos + 8])
      event = event_pb2.Event.FromString(raw[pos + 12:pos + 12 + n])
      scalar_steps += [event.step] if event.HasField('summary') else []
      pos += 12 + n + 4
  assert sorted(scalar_steps) == [2, 4]


def test_first_ctrl_c_asks_to_stop_and_a_second_one_is_not_caught():
  # The handler in force before (default_int_handler; SIG_IGN under a shell's `cmd &`) comes back.
  before = signal.getsignal(signal.SIGINT)
  with distributed.PreemptionGuard() as guard:
    assert not guard.requested(0)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.01)   # Python runs the handler between bytecodes
    assert guard.requested(1) and guard.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
  assert signal.getsignal(signal.SIGINT) is before
  assert distributed.Preempted(3, 'd', signal.SIGINT).exit_code == 130


# ------------------------------------------------------------------- through the real CLI

RUN = ['configs/copy.py:lstm,cpu', '--config.model.hidden=8', '--config.model.embed_dim=4',
       '--config.train.batch_size=4', '--config.train.eval_batch_size=8',
       '--config.train.eval_examples=8', '--config.train.progress=false',
       '--config.opt.schedule=constant', '--config.opt.warmup_steps=0',
       '--config.parallel.data=1']


def cli(path, *flags, steps):
  cmd = [sys.executable, '-m', 'ltmjax.main', '--config', *RUN, '--workdir', str(path),
         f'--config.train.steps={steps}', *flags]
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def wait_for_step(path, step, proc, timeout=120):
  deadline = time.time() + timeout
  while time.time() < deadline:
    assert proc.poll() is None, proc.communicate()
    try:
      if logged_steps(path) and logged_steps(path)[-1] >= step:
        return
    except (OSError, ValueError):
      pass
    time.sleep(0.05)
  raise AssertionError(f'no step {step} logged in {timeout} s')


def test_two_runs_on_one_workdir(tmp_path):
  flags = ['--config.train.log_every=5', '--config.ckpt.every=20',
           '--config.train.eval_every=60']
  a, b = cli(tmp_path, *flags, steps=60), cli(tmp_path, *flags, steps=60)
  outs = {p.pid: (p.wait(timeout=300), p.stderr.read()) for p in (a, b)}
  codes = sorted(code for code, _ in outs.values())
  assert codes == [0, 1], outs
  (loser, (_, text)), = [(pid, o) for pid, o in outs.items() if o[0] == 1]
  winner = a.pid if loser == b.pid else b.pid
  assert text.strip() == (f'error: {tmp_path} is in use by another run (process {winner}); '
                          'wait for it to end (or stop it), or use another --workdir')
  assert logged_steps(tmp_path) == list(range(5, 61, 5))
  assert logged_steps(tmp_path, 'eval') == [60]


def test_kill_9_ctrl_c_and_a_changed_config(tmp_path):
  flags = ['--config.train.log_every=10', '--config.ckpt.every=50',
           '--config.train.eval_every=100000']
  steps = 600
  # kill -9 after the first checkpoint: the resumed run logs each step once.
  proc = cli(tmp_path, *flags, steps=steps)
  wait_for_step(tmp_path, 120, proc)
  proc.kill()
  proc.wait()
  # Another config on this workdir is refused before anything is touched.
  for change, key in (('--config.model.hidden=16', 'model.hidden 8 -> 16'),
                      ('--config.opt.learning_rate=0.5', 'opt.learning_rate 0.01 -> 0.5')):
    out = cli(tmp_path, *flags, change, steps=steps)
    code, err = out.wait(timeout=120), out.stderr.read()
    assert code == 2 and key in err and '--allow_config_change' in err, err
    assert len(err.strip().splitlines()) == 1, err
  # Ctrl-C saves a checkpoint and says so in one line, exit 130.
  proc = cli(tmp_path, *flags, steps=steps)
  wait_for_step(tmp_path, 250, proc)
  proc.send_signal(signal.SIGINT)
  code, err = proc.wait(timeout=120), proc.stderr.read()
  assert code == 130, err
  assert 'Traceback' not in err
  saved = int(err.split('saved a checkpoint of step ')[1].split()[0])
  assert err.strip().splitlines()[-1].startswith('interrupted (Ctrl-C): saved a checkpoint')
  assert str(saved) in os.listdir(tmp_path / 'checkpoints')
  # A longer train.steps is accepted: the run continues from the Ctrl-C checkpoint to its end.
  done = cli(tmp_path, *flags, steps=steps + 30)
  code, err = done.wait(timeout=300), done.stderr.read()
  assert code == 0, err
  assert json.load(open(tmp_path / 'result.json'))['steps'] == steps + 30
  assert logged_steps(tmp_path) == list(range(10, steps + 31, 10))   # each step once
