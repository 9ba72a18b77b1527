"""Several processes: the topology changes no number, fast failure, preemption and resume.

Hosts are faked with local processes (coordinator on 127.0.0.1) that each see 2 fake
CPU devices; the references run in this pytest process on its fake devices.
"""
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ltmjax import checkpoint, distributed, parallel, train
from ltmjax.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVERRIDES = {'train.steps': 4, 'train.batch_size': 8, 'train.eval_batch_size': 8,
             'train.eval_examples': 16, 'train.log_every': 2, 'train.eval_every': 4,
             'train.progress': False, 'ckpt.every': 4, 'model.hidden': 16, 'model.embed_dim': 8,
             'opt.warmup_steps': 0, 'opt.learning_rate': 0.01, 'task.blank_len': 4,
             'task.length': 3}


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def cli_args(workdir, overrides=OVERRIDES):
  return ['--config', 'configs/copy.py:cpu', '--workdir', str(workdir)] + [
      f'--config.{k}={v}' for k, v in overrides.items()]


def start(args, devices=2, **kw):
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  return subprocess.Popen([sys.executable, '-m', 'ltmjax.main', *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(proc, timeout=240):
  out, err = proc.communicate(timeout=timeout)
  return proc.returncode, out + err


def load_config(config_arg, overrides):
  path, _, arg = config_arg.partition(':')
  spec = importlib.util.spec_from_file_location('config_module', os.path.join(ROOT, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg or None)
  with config.unlocked():
    for key, value in overrides.items():
      group, name = key.split('.')
      config[group][name] = value
  return config


def copy_config(overrides):
  return load_config('configs/copy.py:cpu', overrides)


def launch(config_arg, workdir, overrides, processes=2, devices=2):
  """`processes` processes of `devices` devices each, joined into one run in `workdir`."""
  port = free_port()
  args = ['--config', config_arg, '--workdir', str(workdir)] + [
      f'--config.{k}={v}' for k, v in overrides.items()]
  return [start(args + ['--coordinator', f'127.0.0.1:{port}', '--num_processes',
                        str(processes), '--process_id', str(i), '--distributed_timeout', '120'],
                devices=devices) for i in range(processes)]


def final_params(workdir, abstract_state):
  with checkpoint.Checkpointer(checkpoint.directory_of(str(workdir)), read_only=True) as ckpt:
    state, data_state, step = ckpt.restore(abstract_state)
  return jax.tree.map(np.asarray, state['params']), data_state, step


# Every run below has 4 devices in all: 1 process x 4 (this pytest process, whose first 4
# fake devices make the mesh) or 2 processes x 2. Checkpoints at steps 2 and 4 (both kept).
TOPOLOGY = {'train.steps': 4, 'train.log_every': 2, 'train.eval_every': 4, 'ckpt.every': 2,
            'train.progress': False, 'parallel.data': 4}
TOPOLOGY_CASES = [
    ('configs/quickstart.py', {'train.eval_examples': 256}),
    # 100 training expressions make 3 batches of 32 per epoch: step 4 is in the second epoch.
    # The 64 test expressions are 2 eval batches of 32 (4 devices x 8; 2 processes x 16).
    ('configs/listops.py:lstm,cpu', {'task.train_examples': 100, 'task.val_examples': 16,
                                     'task.test_examples': 64, 'task.workers': 1,
                                     'train.eval_batch_size': 32,
                                     'model.hidden': 16, 'model.embed_dim': 8}),
]


@pytest.mark.parametrize('config_arg, overrides', TOPOLOGY_CASES,
                         ids=[c[0].split('/')[1] for c in TOPOLOGY_CASES])
def test_data_and_training_do_not_depend_on_the_topology(tmp_path, config_arg, overrides):
  overrides = dict(TOPOLOGY, **overrides)
  if 'listops' in config_arg:   # generated here once, so that the processes only read it
    overrides['task.data_dir'] = str(tmp_path / 'tfds')
  config = load_config(config_arg, overrides)
  task, model = train.build(config)
  procs = launch(config_arg, tmp_path / 'two', overrides)   # 2 processes x 2 devices
  one = train.run(config, str(tmp_path / 'one'))            # meanwhile 1 process x 4 devices
  results = [finish(p) for p in procs]
  for code, text in results:
    assert code == 0, text[-3000:]
  # The two processes' checkpoint of step 2, resumed here on 1 process x 4 devices.
  shutil.copytree(tmp_path / 'two' / 'checkpoints' / '2', tmp_path / 'moved' / 'checkpoints' / '2')
  moved = train.run(config, str(tmp_path / 'moved'))
  assert moved['status'] == 'complete'

  # Parameters restored here on one device: a checkpoint of 4 devices reshards on load.
  with config.unlocked():
    config.parallel.data = 1
  abstract = train.Trainer(config, task, model, parallel.make_mesh(
      config.parallel, devices=jax.devices()[:1])).abstract_state
  reference, data_state, step = final_params(tmp_path / 'one', abstract)
  assert step == 4
  for run in ('two', 'moved'):
    params, run_data_state, run_step = final_params(tmp_path / run, abstract)
    assert (run_step, run_data_state) == (step, data_state), run
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference)):
      np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5, err_msg=run)
    result = json.load(open(tmp_path / run / 'result.json'))
    for name, value in one['metrics'].items():   # the same eval set on both topologies
      np.testing.assert_allclose(result['metrics'][name], value, atol=1e-5, err_msg=name)
  # Process 0 alone wrote the logs of the two-process run: each step once.
  steps = [json.loads(l)['step'] for l in open(tmp_path / 'two' / 'metrics.jsonl')]
  assert steps == [2, 4, 4]
  assert json.load(open(tmp_path / 'two' / 'result.json'))['num_devices'] == 4


def test_missing_peers_end_with_one_line_within_the_timeout(tmp_path):
  port = free_port()   # nobody listens there
  t0 = time.time()
  # Process 1 waits for the coordinator's port; process 0 (alone) for the other process.
  procs = [start(cli_args(tmp_path / f'p{i}') + [
      f'--coordinator=127.0.0.1:{port + i}', '--num_processes=2', f'--process_id={i}',
      '--distributed_timeout=3']) for i in (1, 0)]
  (code1, text1), (code0, text0) = [finish(p, timeout=120) for p in procs]
  assert time.time() - t0 < 100
  for code, text, expected in ((code1, text1, 'cannot reach the coordinator at 127.0.0.1:'),
                               (code0, text0, 'not all 2 processes joined the coordinator')):
    assert code != 0, text[-2000:]
    errors = [l for l in text.splitlines() if l.startswith('error:')]
    assert len(errors) == 1 and expected in errors[0], text[-3000:]
    assert 'Check failure stack trace' not in text and 'Traceback' not in text, text[-3000:]


def test_sigterm_saves_a_checkpoint_and_a_relaunch_resumes(tmp_path):
  overrides = dict(OVERRIDES, **{'train.steps': 3000, 'train.log_every': 1,
                                 'train.eval_every': 3000, 'ckpt.every': 3000})
  proc = start(cli_args(tmp_path, overrides) + ['--config.parallel.data=1'], devices=1)
  metrics = tmp_path / 'metrics.jsonl'
  deadline = time.time() + 180
  while not (metrics.exists() and metrics.read_text().count('\n') >= 2):
    assert proc.poll() is None and time.time() < deadline, finish(proc)[1][-3000:]
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  code, text = finish(proc)
  assert code == distributed.PREEMPTED_EXIT_CODE, text[-3000:]
  line = [l for l in text.splitlines() if l.startswith('preempted:')]
  assert len(line) == 1 and 'run the same command again to resume' in line[0], text[-3000:]
  with checkpoint.Checkpointer(str(tmp_path / 'checkpoints'), read_only=True) as ckpt:
    saved = ckpt.latest_step()
  assert saved is not None and 2 <= saved < 3000 and f'step {saved} ' in line[0]

  # Relaunch (here, in this process): resumes from that step and finishes; fewer steps keep
  # the test short.
  overrides.update({'train.steps': saved + 2, 'parallel.data': 1})
  result = train.run(copy_config(overrides), str(tmp_path))
  assert result['status'] == 'complete' and result['steps'] == saved + 2
  steps = [json.loads(l)['step'] for l in open(metrics) if json.loads(l)['split'] == 'train']
  assert steps[-2:] == [saved + 1, saved + 2] and len(set(steps)) == len(steps)


def test_preemption_guard_turns_sigterm_into_a_request():
  before = signal.getsignal(signal.SIGTERM)
  with distributed.PreemptionGuard() as guard:
    assert not guard.requested(1)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)
    assert guard.requested(2)
  assert signal.getsignal(signal.SIGTERM) == before


def test_init_kwargs_forms():
  assert distributed.init_kwargs() is None
  kw = distributed.init_kwargs(coordinator='10.0.0.1:1234', num_processes=2, process_id=1,
                               timeout_s=7, heartbeat_s=9)
  assert kw == dict(coordinator_address='10.0.0.1:1234', num_processes=2, process_id=1,
                    initialization_timeout=7, heartbeat_timeout_seconds=9,
                    shutdown_timeout_seconds=9)
  with pytest.raises(ConfigError, match='go together'):
    distributed.init_kwargs(coordinator='10.0.0.1:1234')
  with pytest.raises(ConfigError, match='not in 0..1'):
    distributed.init_kwargs(coordinator='h:1', num_processes=2, process_id=2)
  # SLURM with one process per node: that process owns all the node's GPUs.
  env = {'SLURM_JOB_ID': '7', 'SLURM_GPUS_ON_NODE': '4', 'SLURM_NTASKS_PER_NODE': '1'}
  assert distributed.init_kwargs(auto=True, environ=env)['local_device_ids'] == [0, 1, 2, 3]
  env['SLURM_NTASKS_PER_NODE'] = '4'   # one process per GPU: JAX's own default
  assert 'local_device_ids' not in distributed.init_kwargs(auto=True, environ=env)


def test_stderr_filter_turns_an_abort_into_one_line():
  text = (b'20:07:56 INFO step 100\n'
          b'E1122 20:07:57.185746   27080 coordination_service.cc:1549] Use error polling: '
          b'UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):\n'
          b'1\nThe tasks have crashed. Check the task logs.\n'
          b'F1122 20:07:57.186359   27091 client.h:80] ' + distributed._FATAL.encode() +
          b'. absl::Status: UNAVAILABLE: The following tasks are unhealthy (stopped sending '
          b'heartbeats):\n1\nThe tasks have crashed.\n\nRPC: /xla.coordination.Coord'
          b'inationService/PollForError\n*** Check failure stack trace: ***\n    @ 0x7f SendToLog\n')
  src_r, src_w = os.pipe()
  dst_r, dst_w = os.pipe()
  os.write(src_w, text)
  os.close(src_w)
  distributed.filter_stream({'heartbeat_s': 10, 'address': 'h:1', 'processes': 2,
                             'timeout_s': 5}, src_r, dst_w)
  os.close(dst_w)
  out = os.read(dst_r, 65536).decode().splitlines()
  assert out[0] == '20:07:56 INFO step 100'
  assert len(out) == 2 and out[1].startswith('error: lost process 1: no heartbeat for 10s')
