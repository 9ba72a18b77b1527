"""The command line: one-line errors with exit code 2 for bad input; a run writes its files."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--config.train.steps=2', '--config.train.batch_size=8', '--config.train.eval_batch_size=8',
        '--config.train.eval_examples=8', '--config.model.hidden=8', '--config.parallel.data=1',
        '--config.train.progress=False']


def cli(*args, workdir):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', 'ltmjax.main', '--workdir', str(workdir), *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('override, expected', [
    ('--config.train.no_such_key=1', 'no_such_key'),
    ('--config.train.steps=many', 'steps'),
    ('--config.model.name=no_such_model', "unknown model 'no_such_model'; known models: "),
    ('--config.model.name=gru_peephole', 'known models'),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, override, expected):
  out = cli('--config', 'configs/quickstart.py', override, *TINY, workdir=tmp_path)
  assert out.returncode == 2, out.stderr[-2000:]
  lines = [l for l in out.stderr.strip().splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and expected in lines[0], out.stderr[-2000:]
  assert 'Traceback' not in out.stderr
  assert not os.path.exists(tmp_path / 'checkpoints')


def test_switching_model_by_name_names_the_fix(tmp_path):
  # The lstm config has no 'dim' etc.: switching the model is done in the config argument.
  out = cli('--config', 'configs/copy.py:cpu', '--config.model.name=gru', *TINY, workdir=tmp_path)
  assert out.returncode == 0, out.stderr[-2000:]   # same keys: gru shares lstm's group
  out = cli('--config', 'configs/adding.py:cpu', '--config.task.name=copy', *TINY,
            workdir=tmp_path / 'b')
  assert out.returncode == 2 and 'configs/copy.py:transformer' in out.stderr


def test_a_run_writes_result_and_metrics(tmp_path):
  out = cli('--config', 'configs/quickstart.py', *TINY, workdir=tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.load(open(tmp_path / 'result.json'))
  assert result['steps'] == 2 and result['task'] == 'copy' and result['model'] == 'lstm'
  records = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert {r['split'] for r in records} == {'train', 'eval'}
  # Running again finds the finished checkpoint and only rewrites the result.
  again = cli('--config', 'configs/quickstart.py', *TINY, workdir=tmp_path)
  assert again.returncode == 0 and 'resumed from step 2' in again.stderr
