"""Bad input through the real command line: one line naming the key or file, exit code != 0.

Every row of the table of issue 11 runs in its own subprocess (`python -m ltmjax.main`,
or `./launch.sh` where the row is about launch.sh); the rows run two at a time, and each
fails before JAX compiles anything, so the table takes seconds per row.
"""
import concurrent.futures
import os
import re
import subprocess
import sys

import pytest

from ltmjax import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPY = ['--config', 'configs/copy.py:lstm,cpu']
FAKE2 = '--xla_force_host_platform_device_count=2'


def _unwritable(tmp):
  """A folder this process cannot write to (root writes anywhere but in /sys)."""
  if os.getuid() == 0:
    return '/sys/ltmjax_cli_test_run'
  return os.path.join(tmp, 'readonly', 'run')


def _rows(tmp):
  """(name, argv after `python -m ltmjax.main` or `./launch.sh`, expected texts, env, launch)."""
  a_file = os.path.join(tmp, 'a_file')
  w = lambda name: ['--workdir', os.path.join(tmp, name)]  # noqa: E731
  return [
      ('model word typo', ['--config', 'configs/copy.py:lsmt,cpu'] + w('r1'),
       ["'lsmt'", ', '.join(list(models.MODELS) + ['cpu'])], None, False),
      ('cpu word typo', ['--config', 'configs/copy.py:lstm,cpuu'] + w('r2'), ["'cpuu'"], None,
       False),
      ('T not an integer', ['--config', 'configs/copy.py:lstm,cpu,T=abc'] + w('r3'),
       ['T must be an integer'], None, False),
      ('two models', ['--config', 'configs/copy.py:lstm,gru'] + w('r3b'), ['pick one'], None,
       False),
      ('missing config file', ['--config', 'configs/nope.py'] + w('r4'),
       ['configs/nope.py not found', 'copy.py'], None, False),
      ('negative steps', COPY + ['--config.train.steps=-5'] + w('r5'), ['train.steps=-5'], None,
       False),
      ('zero steps', COPY + ['--config.train.steps=0'] + w('r6'), ['train.steps=0'], None, False),
      ('zero batch', COPY + ['--config.train.batch_size=0'] + w('r7'), ['train.batch_size=0'],
       None, False),
      ('zero ckpt.every', COPY + ['--config.ckpt.every=0'] + w('r8'), ['ckpt.every=0'], None,
       False),
      ('negative width', COPY + ['--config.model.hidden=-4'] + w('r9'), ['model.hidden=-4'], None,
       False),
      ('nan learning rate', COPY + ['--config.opt.learning_rate=nan'] + w('r9b'),
       ['opt.learning_rate'], None, False),
      ('batch 63 on 2 devices', COPY + ['--config.train.batch_size=63'] + w('r10'),
       ['train.batch_size=63', '2 data-parallel devices'], {'XLA_FLAGS': FAKE2}, False),
      ('eval batch 255 on 2 devices', COPY + ['--config.train.eval_batch_size=255',
                                              '--config.train.eval_examples=1020'] + w('r11'),
       ['train.eval_batch_size=255', '2 data-parallel devices'], {'XLA_FLAGS': FAKE2}, False),
      ('unknown key', COPY + ['--config.train.stepz=200'] + w('r12'),
       ["'train.stepz'", 'did you mean train.steps?'], None, False),
      ('unknown group', COPY + ['--config.trian.steps=200'] + w('r12b'), ["'trian.steps'"],
       None, False),
      ('not a number', COPY + ['--config.train.steps=many'] + w('r12c'),
       ['train.steps must be an integer'], None, False),
      ('workdir is a file', COPY + ['--workdir', a_file], [a_file, 'is a file'], None, False),
      ('workdir not writable', COPY + ['--workdir', _unwritable(tmp)], ['not a writable folder'],
       None, False),
      ('Fashion-MNIST data absent',
       ['--config', 'configs/seq_mnist.py:fashion_mnist,cpu', '--config.task.data_dir=' +
        os.path.join(tmp, 'no_idx')] + w('r17'), ['no_idx', 'dataset-fashion-mnist'], None, False),
      ('launch.sh flags in any order',
       w('r19') + ['--config', 'configs/copy.py:lsmt'], ["'lsmt'"], None, True),
      ('suite seeds not integers', ['suite', 'quickstart', '--seeds', 'a,b', '--dry-run'],
       ['--seeds'], None, True),
      ("README's sample command before training",
       ['python', '-m', 'ltmjax.sample', '--config', 'configs/char_lm.py:lstm,cpu',
        '--prompt', 'MARA:', '--length', '20'] + w('r20'), ['no checkpoint in', 'r20'], None,
       True),
  ]


def _run(row):
  name, argv, expected, env, launch = row
  cmd = [os.path.join(ROOT, 'launch.sh')] + argv if launch else [sys.executable, '-m',
                                                                  'ltmjax.main'] + argv
  full_env = dict(os.environ, JAX_PLATFORMS='cpu', **(env or {}))
  out = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=240)
  return out


@pytest.fixture(scope='module')
def table(tmp_path_factory):
  tmp = str(tmp_path_factory.mktemp('cli'))
  open(os.path.join(tmp, 'a_file'), 'w').close()
  os.makedirs(os.path.join(tmp, 'readonly'), mode=0o500)
  rows = _rows(tmp)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    outs = list(pool.map(_run, rows))
  return {row[0]: (row, out) for row, out in zip(rows, outs)}


ROW_NAMES = [r[0] for r in _rows('TMP')]


@pytest.mark.parametrize('name', ROW_NAMES)
def test_bad_input_is_one_line(table, name):
  (_, argv, expected, _, _), out = table[name]
  text = (out.stdout + out.stderr).strip()
  assert out.returncode != 0, text[-2000:]
  assert 'Traceback' not in text, text[-3000:]
  lines = text.splitlines()
  assert 1 <= len(lines) <= 3, text[-3000:]
  for e in expected:
    assert e in text, (e, text)
  workdir = argv[argv.index('--workdir') + 1] if '--workdir' in argv else None
  if workdir and os.path.isdir(workdir):
    assert 'checkpoints' not in os.listdir(workdir), os.listdir(workdir)


def test_readme_commands_run_as_written():
  readme = open(os.path.join(ROOT, 'README.md')).read()
  # `python -m ltmjax.X` lines run through ./launch.sh python, or with .venv activated.
  assert './launch.sh python -m ltmjax.' in readme and 'source .venv/bin/activate' in readme
  modules = sorted(set(re.findall(r'python -m (ltmjax\.[a-z_]+) ', readme)) - {'ltmjax.sample'})
  assert modules, 'the README names no python -m command'
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    outs = list(pool.map(_run, [(m, ['python', '-m', m, '--help'], [], None, True)
                                for m in modules]))
  for module, out in zip(modules, outs):
    assert out.returncode == 0 and 'usage' in out.stdout.lower(), (module, out.stderr[-2000:])
  # TensorBoard: an extra of pyproject.toml that the README names.
  pyproject = open(os.path.join(ROOT, 'pyproject.toml')).read()
  assert re.search(r'^tensorboard = \["tensorboard', pyproject, re.M)
  assert 'LTMJAX_EXTRAS=tensorboard ./launch.sh python -m tensorboard.main --logdir runs' in readme
