"""The SLURM path on a real one-node cluster (Debian's slurm-wlm: slurmctld + slurmd, no GPU):
`suite quickstart --slurm` for a 2-task CPU array (copy LSTM, seeds 0 and 1, 20 steps), submitted
from the "login node" with `bash slurm.sh`; both runs finish and the dependent job writes the table.

Marked slow (about two minutes on 2 cores); skips where slurmctld/slurmd are not installed
(`apt-get install slurm-wlm`). Run it with `./launch.sh test tests/test_slurm_cluster.py -m slow`.
The daemons run as this user with auth/none, from a config in a temporary folder, on ports
16817/16818, and are stopped at the end.
"""
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow

CONF = """ClusterName=ltmjaxtest
SlurmctldHost={host}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/none
CredType=cred/none
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation={tmp}/state
SlurmdSpoolDir={tmp}/spool
SlurmctldPidFile={tmp}/slurmctld.pid
SlurmdPidFile={tmp}/slurmd.pid
SlurmctldPort=16817
SlurmdPort=16818
SlurmctldLogFile={tmp}/slurmctld.log
SlurmdLogFile={tmp}/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} CPUs={cpus} RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture
def cluster(tmp_path):
  """SLURM_CONF of a running one-node cluster (daemons stopped afterwards)."""
  if not (shutil.which('slurmctld') and shutil.which('slurmd') and shutil.which('sbatch')):
    pytest.skip('slurm-wlm is not installed (apt-get install slurm-wlm)')
  for sub in ('state', 'spool'):
    (tmp_path / sub).mkdir()
  conf = tmp_path / 'slurm.conf'
  import getpass
  conf.write_text(CONF.format(host=socket.gethostname().split('.')[0], user=getpass.getuser(),
                              tmp=tmp_path, cpus=os.cpu_count()))
  env = dict(os.environ, SLURM_CONF=str(conf))
  daemons = [subprocess.Popen([daemon, '-D', '-f', str(conf)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for daemon in ('slurmctld', 'slurmd')]
  try:
    for _ in range(60):
      state = subprocess.run(['sinfo', '-h', '-o', '%T'], env=env, capture_output=True, text=True)
      if state.stdout.strip() == 'idle':
        break
      time.sleep(1)
    else:
      pytest.skip(f'the one-node cluster did not come up: {state.stdout} {state.stderr}')
    yield env
  finally:
    for d in daemons:
      d.terminate()
    for d in daemons:
      d.wait(timeout=30)


def test_a_two_task_array_trains_both_runs_then_writes_the_table(cluster, tmp_path):
  results = tmp_path / 'runs'
  made = subprocess.run(
      [sys.executable, '-m', 'ltmjax.experiments', 'run', 'quickstart', '--only', 'copy_lstm',
       '--seeds', '0,1', '--results', str(results), '--set', 'train.steps=20',
       '--set', 'train.eval_every=20', '--set', 'ckpt.every=20', '--slurm'],
      cwd=ROOT, env=cluster, capture_output=True, text=True, timeout=120)
  assert made.returncode == 0, made.stderr
  suite_dir = results / 'quickstart+train.steps=20+train.eval_every=20+ckpt.every=20'
  submitted = subprocess.run(['bash', str(suite_dir / 'slurm.sh')], cwd=tmp_path, env=cluster,
                             capture_output=True, text=True, timeout=600)
  assert submitted.returncode == 0, submitted.stderr
  assert 'submitted array job' in submitted.stdout
  deadline = time.time() + 900
  while time.time() < deadline:
    queue = subprocess.run(['squeue', '-h'], env=cluster, capture_output=True, text=True)
    if not queue.stdout.strip():
      break
    time.sleep(5)
  logs = sorted((suite_dir / 'slurm').iterdir())
  text = '\n'.join(p.read_text(errors='replace') for p in logs)
  for seed in (0, 1):
    result = suite_dir / 'copy_lstm' / f'seed{seed}' / 'result.json'
    assert result.exists(), text[-3000:]
    assert '"status": "complete"' in result.read_text()
  table = (suite_dir / 'table.md').read_text()
  assert '| LSTM |' in table and '(2)' in table, table
  assert '\r' not in text   # no progress bars in the logs
  assert len([p for p in logs if p.name.startswith('table_')]) == 1
