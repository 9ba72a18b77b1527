"""Every CLI after a run (report, sweeps, figures, evaluate, sample, experiments, launch.sh and
its modes, and main's checks of issue 22) answers --help, and refuses a bad value with one
line, exit code 2, and nothing written.

The table of bad inputs (command -> the words its one line must hold), each row run in its
own subprocess, two at a time; none gets as far as compiling a model.
"""
import concurrent.futures
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNTHETIC = os.path.join(ROOT, 'tests', 'fixtures', 'synthetic')
PY = [sys.executable, '-m']
COPY = ['--config', 'configs/copy.py:lstm,cpu']
PASSKEY = ['--config', 'configs/passkey.py:lstm,cpu']


def _prepare(tmp):
  """An empty folder, a filler folder of binary files, a run copied beside itself (seed 0
  twice) and an evaluate-able folder (config.json only: the flags fail before it is read)."""
  os.makedirs(os.path.join(tmp, 'empty'))
  os.makedirs(os.path.join(tmp, 'binary'))
  with open(os.path.join(tmp, 'binary', 'a.txt'), 'wb') as f:
    f.write(bytes(range(256)) * 64)
  src = os.path.join(SYNTHETIC, 'copy_lstm', 'seed0', 'result.json')
  for name in ('copy_lstm', 'copy_lstm_resumed'):
    os.makedirs(os.path.join(tmp, 'twice', name, 'seed0'))
    with open(src) as f, open(os.path.join(tmp, 'twice', name, 'seed0', 'result.json'), 'w') as g:
      g.write(f.read())
  os.makedirs(os.path.join(tmp, 'run'))


def rows(tmp):
  """(name, argv, words the one line must hold, a path that must not appear)."""
  out = os.path.join(tmp, 'out')
  w = lambda name: ['--workdir', os.path.join(tmp, name)]  # noqa: E731
  launch = [os.path.join(ROOT, 'launch.sh')]
  return [
      ('report: a folder with no runs', PY + ['ltmjax.report', os.path.join(tmp, 'empty'),
                                              '--out', out], ['no finished run'], out),
      ('report: one seed twice', PY + ['ltmjax.report', os.path.join(tmp, 'twice'), '--out', out],
       ['copy_lstm/seed0 and', 'copy_lstm_resumed/seed0', 'seed 0', 'twice'], out),
      ('report: a metric no run has', PY + ['ltmjax.report', SYNTHETIC, '--metric', 'acuracy',
                                            '--out', out], ["'acuracy'", 'recall_accuracy'], out),
      ('report: not a folder', PY + ['ltmjax.report', os.path.join(tmp, 'nope')],
       ['is not a directory'], None),
      ('report: unknown format', PY + ['ltmjax.report', SYNTHETIC, '--format', 'xls'],
       ["invalid choice: 'xls'"], None),
      ('report: --out in a missing folder', PY + ['ltmjax.report', SYNTHETIC, '--out',
                                                  os.path.join(tmp, 'nope', 't.md')],
       ['--out', 'cannot write it'], os.path.join(tmp, 'nope')),
      ('figures: --out under a file', PY + ['ltmjax.figures', SYNTHETIC, '--out',
                                            os.path.join(tmp, 'binary', 'a.txt', 'f')],
       ['--out', 'cannot make that folder'], None),
      ('sweeps: no run with a sweep', PY + ['ltmjax.sweeps', SYNTHETIC, '--out', out],
       ['no finished run with a length_sweep.json'], out),
      ('figures: a folder with no runs', PY + ['ltmjax.figures', os.path.join(tmp, 'empty'),
                                               '--out', out], ['no finished run'], out),
      ('evaluate: examples not a multiple of the batch',
       PY + ['ltmjax.evaluate', '--workdir', os.path.join(tmp, 'run'), '--lengths', '1k',
             '--examples', '10', '--batch', '8'], ['--examples 10', '--batch 8', '8 or 16'],
       os.path.join(tmp, 'run', 'length_sweep.json')),
      ('evaluate: bad length', PY + ['ltmjax.evaluate', '--workdir', os.path.join(tmp, 'run'),
                                     '--lengths', '1q'], ["'1q'"], None),
      ('sample: temperature not a number',
       PY + ['ltmjax.sample', '--config', 'configs/char_lm.py:lstm,cpu', '--temperature', 'hot']
       + w('s1'), ['temperature'], os.path.join(tmp, 's1')),
      ('main: shrinking curriculum', PY + ['ltmjax.main'] + PASSKEY + [
          '--config.train.curriculum=0:256,10:128'] + w('m1'),
       ['must not shrink', '10:128 follows 0:256'], os.path.join(tmp, 'm1')),
      ('main: binary filler folder', PY + ['ltmjax.main'] + PASSKEY + [
          f'--config.task.filler_dir={tmp}/binary'] + w('m2'),
       ['holds binary data', 'not text'], os.path.join(tmp, 'm2')),
      ('main: eval examples not a multiple of the batch', PY + ['ltmjax.main'] + COPY + [
          '--config.train.eval_examples=1000'] + w('m3'),
       ['train.eval_examples=1000', 'train.eval_batch_size=256', '768 or 1024'],
       os.path.join(tmp, 'm3')),
      ('main: unknown schedule', PY + ['ltmjax.main'] + COPY + ['--config.opt.schedule=cosin']
       + w('m4'), ["opt.schedule='cosin'", 'wsd'], os.path.join(tmp, 'm4')),
      ('main: a run inside results/', PY + ['ltmjax.main'] + COPY + [
          '--workdir', 'results/quickstart/copy_lstm/seed9'], ['inside results/', 'runs/'],
       os.path.join(ROOT, 'results', 'quickstart', 'copy_lstm', 'seed9')),
      ('launch.sh: malformed --fake-devices', launch + ['--fake-devices', '2x'] + COPY,
       ['--fake-devices 2x', 'whole number'], None),
      ('launch.sh: --fake-devices 0', launch + ['--fake-devices=0', 'test'],
       ['--fake-devices 0'], None),
      ('suite: one seed twice', launch + ['suite', 'quickstart', '--seeds', '0,0', '--dry-run'],
       ['--seeds 0,0', 'each seed once'], None),
      ('suite: runs into results/', launch + ['suite', 'quickstart', '--results', 'results',
                                              '--dry-run'], ['inside results/'], None),
      ('suite: --set without a value', launch + ['suite', 'quickstart', '--set', 'train.steps',
                                                 '--dry-run'], ["--set 'train.steps'"], None),
      ('suite: an abbreviated flag', launch + ['suite', 'quickstart', '--seed', '1', '--dry-run'],
       ['unrecognized arguments: --seed'], None),
      ('experiments report: no runs', PY + ['ltmjax.experiments', 'report', 'quickstart',
                                            '--results', os.path.join(tmp, 'empty')],
       ['no complete result.json'], os.path.join(tmp, 'empty', 'quickstart')),
  ]


HELP = [
    ('main', PY + ['ltmjax.main', '--help']),
    ('evaluate', PY + ['ltmjax.evaluate', '--help']),
    ('sample', PY + ['ltmjax.sample', '--help']),
    ('report', PY + ['ltmjax.report', '--help']),
    ('sweeps', PY + ['ltmjax.sweeps', '--help']),
    ('figures', PY + ['ltmjax.figures', '--help']),
    ('experiments', PY + ['ltmjax.experiments', '--help']),
    ('experiments run', PY + ['ltmjax.experiments', 'run', '--help']),
    ('launch.sh', [os.path.join(ROOT, 'launch.sh'), '--help']),
    ('launch.sh suite', [os.path.join(ROOT, 'launch.sh'), 'suite', '--help']),
    ('launch.sh slurm', [os.path.join(ROOT, 'launch.sh'), 'slurm', '--help']),
    ('launch.sh tpu', [os.path.join(ROOT, 'launch.sh'), 'tpu', '--help']),
    ('launch.sh report', [os.path.join(ROOT, 'launch.sh'), 'report', '--help']),
]


def _run(argv):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope='module')
def outcomes(tmp_path_factory):
  tmp = str(tmp_path_factory.mktemp('workflow'))
  _prepare(tmp)
  table = rows(tmp)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    outs = list(pool.map(_run, [r[1] for r in table] + [h[1] for h in HELP]))
  return {r[0]: (r, o) for r, o in zip(table + HELP, outs)}


@pytest.mark.parametrize('name', [r[0] for r in rows('TMP')])
def test_bad_input_is_one_line_exit_2_nothing_written(outcomes, name):
  (_, argv, words, absent), out = outcomes[name]
  assert out.returncode == 2, (out.stdout + out.stderr)[-2000:]
  lines = [l for l in out.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith('error: '), out.stderr[-2000:]
  assert out.stdout.strip() == '', out.stdout[-1000:]
  for word in words:
    assert word in lines[0], (word, lines[0])
  if absent:
    assert not os.path.exists(absent), os.listdir(absent) if os.path.isdir(absent) else absent


@pytest.mark.parametrize('name', [h[0] for h in HELP])
def test_every_cli_answers_help(outcomes, name):
  _, out = outcomes[name]
  assert out.returncode == 0, out.stderr[-2000:]
  assert 'usage' in out.stdout.lower(), out.stdout[-2000:]


def test_no_run_lock_is_committed_under_results():
  listed = subprocess.run(['git', 'ls-files', 'results'], cwd=ROOT, capture_output=True,
                          text=True).stdout.split()
  assert listed and not [p for p in listed if os.path.basename(p) == 'run.lock']
  ignored = subprocess.run(['git', 'check-ignore', 'results/x/y/seed0/run.lock'], cwd=ROOT,
                           capture_output=True, text=True)
  assert ignored.returncode == 0   # .gitignore keeps new ones out


def test_no_progress_bar_when_stderr_is_not_a_terminal(monkeypatch):
  """A log file (a suite's run.log, a SLURM log) gets log lines, never a bar's carriage returns."""
  from ltmjax import metrics

  class Pipe:
    def isatty(self):
      return False
  monkeypatch.setattr(sys, 'stderr', Pipe())
  assert metrics.Progress(10, 0, enabled=True)._bar is None
