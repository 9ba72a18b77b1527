"""The suite runner (skip / resume / dry run / commands / SLURM, with a fake trainer), the
shipped suites, and the efficiency benchmark on tiny lengths."""
import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from ltmjax import experiments, models, slurm, suites as suite_defs
from ltmjax.experiments import Cell, Suite

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the checkout
MODEL_NAMES = tuple(models.MODELS)   # every suite row is a registered model

TINY = Suite('tiny', 'two cells, two seeds',
             (Cell('a', 'configs/x.py:lstm'), Cell('b', 'configs/x.py:gru', (('train.steps', 5),))),
             seeds=(0, 1), overrides=(('train.log_every', 1),))


def _complete(workdir, value=0.75):
  """A result.json as the trainer writes it: cell b trains a GRU, the seed is the folder's."""
  os.makedirs(workdir, exist_ok=True)
  seed = int(re.search(r'seed(\d+)$', workdir).group(1))
  label = 'GRU' if os.path.basename(os.path.dirname(workdir)) == 'b' else 'LSTM'
  with open(os.path.join(workdir, 'result.json'), 'w') as f:
    json.dump({'status': 'complete', 'steps': 5, 'model': label.lower(), 'model_label': label,
               'task': 'copy', 'git_revision': 'abc1234',
               'task_label': 'Copy (T=20)', 'seed': seed, 'metrics': {'recall_accuracy': value},
               'primary_metric': 'recall_accuracy', 'higher_is_better': True,
               'config': {'task': {'blank_len': 20}}}, f)


class FakeTrainer:
  """Stands in for `python -m ltmjax.main`: records argv, writes result.json (or fails)."""

  def __init__(self, fail=(), no_result=()):
    self.calls, self.fail, self.no_result = [], fail, no_result

  def __call__(self, argv, log_path, cwd):
    workdir = argv[argv.index('--workdir') + 1]
    self.calls.append(argv)
    assert os.path.isabs(workdir) and cwd == os.getcwd()   # configs/ paths are relative to it
    with open(log_path, 'a') as log:
      log.write('training...\n')
      if any(workdir.endswith(p) for p in self.fail):
        log.write('error: the loss became NaN\n')
        return 1
    if not any(workdir.endswith(p) for p in self.no_result):
      _complete(workdir)
      with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
        f.write('{"step": 5, "split": "eval", "recall_accuracy": 0.75}\n')
    return 0


def test_plan_workdirs_and_args(tmp_path):
  runs = experiments.plan(TINY, str(tmp_path))
  assert [r.label for r in runs] == ['a seed0', 'a seed1', 'b seed0', 'b seed1']
  assert runs[3].workdir == os.path.join(str(tmp_path), 'tiny', 'b', 'seed1')
  assert runs[3].args(TINY) == ['--config', 'configs/x.py:gru', '--workdir', runs[3].workdir,
                                '--config.seed=1', '--config.train.log_every=1',
                                '--config.train.steps=5']
  assert [r.label for r in experiments.plan(TINY, 'r', only=['b*'], seeds=[7])] == ['b seed7']
  with pytest.raises(ValueError, match='matches no cell'):
    experiments.plan(TINY, 'r', only=['zzz'])


def test_skips_complete_and_resumes_partial_runs(tmp_path, capsys):
  runs = experiments.plan(TINY, str(tmp_path))
  _complete(runs[0].workdir)                                   # a seed0: done
  os.makedirs(os.path.join(runs[1].workdir, 'checkpoints'))    # a seed1: half-finished
  assert [experiments.run_status(r.workdir) for r in runs] == ['complete', 'partial', 'pending',
                                                               'pending']
  fake = FakeTrainer()
  outcome = experiments.execute(TINY, runs, runner=fake, python='PY')
  assert outcome == {'a seed0': 'skipped', 'a seed1': 'complete', 'b seed0': 'complete',
                     'b seed1': 'complete'}
  assert [c[c.index('--workdir') + 1] for c in fake.calls] == [
      os.path.abspath(r.workdir) for r in runs[1:]]
  assert fake.calls[0][:3] == ['PY', '-m', 'ltmjax.main']
  assert fake.calls[-1][-2:] == ['--config.train.steps=5', '--config.train.progress=false']
  out = capsys.readouterr().out.splitlines()
  assert len(out) == 4
  assert re.match(r'\[1/4\] a seed0 +complete, skipped  recall_accuracy=75.0%', out[0])
  assert 'resuming ... complete in' in out[1] and 'running ... complete in' in out[2]
  with open(os.path.join(runs[1].workdir, 'run.log')) as f:
    assert 'ltmjax.main' in f.read()
  # A second pass trains nothing.
  fake2 = FakeTrainer()
  assert set(experiments.execute(TINY, runs, runner=fake2).values()) == {'skipped'}
  assert fake2.calls == []


def test_failed_cell_does_not_stop_the_suite(tmp_path, capsys):
  runs = experiments.plan(TINY, str(tmp_path))
  fake = FakeTrainer(fail=('a/seed0',), no_result=('b/seed1',))
  outcome = experiments.execute(TINY, runs, runner=fake)
  assert outcome == {'a seed0': 'failed', 'a seed1': 'complete', 'b seed0': 'complete',
                     'b seed1': 'incomplete'}
  out = capsys.readouterr().out
  assert 'FAILED (exit 1)' in out and 'error: the loss became NaN' in out
  assert os.path.join('a', 'seed0', 'run.log') in out
  assert experiments.run_status(runs[0].workdir) == 'partial'   # re-run (resumed) next time


def test_main_dry_run_print_commands_and_missing_config(tmp_path, capsys, monkeypatch):
  res = str(tmp_path / 'res')
  suites = {'tiny': TINY}
  _complete(os.path.join(res, 'tiny', 'a', 'seed0'))
  assert experiments.main(['run', 'tiny', '--results', res, '--dry-run'], suites=suites) == 0
  out = capsys.readouterr().out.splitlines()
  assert out[0].split() == ['complete', 'a', 'seed0', 'configs/x.py:lstm',
                            os.path.join(res, 'tiny', 'a', 'seed0')]
  assert out[1].split()[0] == 'pending'
  assert out[4] == '4 runs: 1 complete, 0 partial, 3 pending'
  assert out[5] == 'warning: configs/x.py does not exist (cells a, b)'

  assert experiments.main(['run', 'tiny', '--results', res, '--print-commands', '--only', 'b'],
                          suites=suites) == 0
  assert capsys.readouterr().out.splitlines() == [
      f'./launch.sh --config configs/x.py:gru --workdir {res}/tiny/b/seed{s} --config.seed={s} '
      '--config.train.log_every=1 --config.train.steps=5' for s in (0, 1)]

  fake = FakeTrainer()
  assert experiments.main(['run', 'tiny', '--results', res], runner=fake, suites=suites) == 2
  assert fake.calls == [] and 'configs/x.py does not exist' in capsys.readouterr().err
  assert experiments.main(['run', 'nope'], suites=suites) == 2
  assert "unknown suite 'nope'; known suites: tiny" in capsys.readouterr().err

  # With the config file present (relative to the current folder) the suite runs, then
  # renders its table and figures; the printed table has the committed reference beside.
  (tmp_path / 'configs').mkdir()
  (tmp_path / 'configs' / 'x.py').write_text('')
  monkeypatch.chdir(tmp_path)
  _complete(os.path.join('results', 'tiny', 'a', 'seed0'), value=0.5)
  fake = FakeTrainer()
  code = experiments.main(['run', 'tiny', '--results', res], runner=fake, suites=suites)
  assert code == 0 and len(fake.calls) == 3
  out = capsys.readouterr().out
  assert '| LSTM | **75.0 ± 0.0 (2)** |\n| LSTM (reference) [1] | 50.0 (1) |\n' in out
  assert '[1] reference results in results/tiny, made at git revision abc1234' in out
  for name in ('table.md', 'table.tex', 'table.csv', 'figures/curves_copy_t_20.png'):
    assert os.path.getsize(os.path.join(res, 'tiny', name)) > 0
  with open(os.path.join(res, 'tiny', 'table.md')) as f:   # the files: this run alone
    assert 'reference' not in f.read()
  # The default: runs/<suite>, beside (never into) the committed results/<suite>.
  assert experiments.main(['run', 'tiny', '--dry-run'], suites=suites) == 0
  assert capsys.readouterr().out.split('\n')[0].split()[-1] == os.path.join('runs', 'tiny', 'a',
                                                                             'seed0')
  assert experiments.main(['run', 'tiny', '--seeds', 'a,b', '--dry-run'], suites=suites) == 2
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and '--seeds' in err and 'Traceback' not in err


def _fake_slurm(tmp_path, exit_code=0):
  """A bin/ with fake sbatch / srun / scontrol that log their argv (srun exits `exit_code`)."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir(exist_ok=True)
  log = tmp_path / 'calls.log'
  for name, tail in (('sbatch', 'echo 4242'), ('srun', f'exit {exit_code}'), ('scontrol', '')):
    (bin_dir / name).write_text(f'#!/bin/bash\necho "{name} $*" >> {log}\n{tail}\n')
    (bin_dir / name).chmod(0o755)
  return dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}'), log


def test_slurm_script(tmp_path):
  res = str(tmp_path / 'res')
  gpu_suite = Suite('tiny', TINY.description, TINY.cells + (
      Cell('c', 'configs/x.py:ltmt', (), ('--lengths', '1k,4k', '--examples', '8')),),
      seeds=(0, 1), overrides=TINY.overrides)
  runs = experiments.plan(gpu_suite, res)
  script = slurm.script(gpu_suite, runs, res, checkout=str(tmp_path))
  assert '#SBATCH --array=0-5\n' in script and '#SBATCH --gres=gpu:1\n' in script
  # A GPU suite installs the gpu extra; logs and workdirs are absolute; the trainer gets
  # SIGTERM before the limit and the task requeues itself; no progress bars.
  assert 'export LTMJAX_EXTRAS="${LTMJAX_EXTRAS:-gpu}"' in script
  assert f'#SBATCH --output={res}/tiny/slurm/%A_%a.out\n' in script
  assert '#SBATCH --signal=TERM@300\n#SBATCH --requeue\n#SBATCH --open-mode=append\n' in script
  assert (f"  3) run {res}/tiny/b/seed1 '' --config configs/x.py:gru --workdir {res}/tiny/b/seed1 "
          '--config.seed=1 --config.train.log_every=1 --config.train.steps=5 '
          '--config.train.progress=false ;;') in script
  assert f"  4) run {res}/tiny/c/seed0 '--lengths 1k,4k --examples 8' " in script
  assert f'cd {tmp_path}\n' in script
  cpu = slurm.script(dataclasses.replace(gpu_suite, slurm=(('time', '01:00:00'),)), runs, res)
  assert 'LTMJAX_EXTRAS:-}' in cpu and '--gres' not in cpu
  path = tmp_path / 'slurm.sh'
  path.write_text(script)
  assert subprocess.run(['bash', '-n', str(path)]).returncode == 0
  # launch.sh stand-in: the checkout's launch.sh would build an environment.
  (tmp_path / 'launch.sh').write_text('#!/bin/bash\necho "launch $*" >> "$(dirname "$0")/calls.log"\n')
  (tmp_path / 'launch.sh').chmod(0o755)

  # On the login node: the environment once, then the array and the dependent table job.
  env, log = _fake_slurm(tmp_path)
  env.pop('SLURM_ARRAY_TASK_ID', None)
  done = subprocess.run(['bash', str(path)], env=env, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr
  calls = log.read_text().splitlines()
  assert calls[0] == 'launch python -c import ltmjax'
  assert calls[1] == f'sbatch --parsable {res}/tiny/slurm.sh'
  assert calls[2].startswith('sbatch --parsable --dependency=afterany:4242 ')
  assert f'python -m ltmjax.experiments report tiny --results {res}' in calls[2]
  # Array task 0, not complete: trained through srun; a complete one is skipped.
  log.unlink()
  env['SLURM_ARRAY_TASK_ID'] = '0'
  done = subprocess.run(['bash', str(path)], env=env, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr
  assert log.read_text().startswith(f'srun --ntasks=1 ./launch.sh --config configs/x.py:lstm '
                                    f'--workdir {res}/tiny/a/seed0')
  _complete(runs[0].workdir)
  log.unlink()
  done = subprocess.run(['bash', str(path)], env=env, capture_output=True, text=True)
  assert done.returncode == 0 and 'is complete; skipping' in done.stdout and not log.exists()
  # Preempted (the trainer saved and exited 143): the task requeues itself.
  env, log = _fake_slurm(tmp_path, exit_code=143)
  env.update(SLURM_ARRAY_TASK_ID='4', SLURM_ARRAY_JOB_ID='77')
  done = subprocess.run(['bash', str(path)], env=env, capture_output=True, text=True)
  assert done.returncode == 0 and log.read_text().splitlines()[-1] == 'scontrol requeue 77_4'


def test_suites_are_found_through_the_package_from_any_folder(tmp_path):
  done = subprocess.run([sys.executable, '-m', 'ltmjax.experiments', 'list'], cwd=tmp_path,
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr
  assert re.search(r'^quickstart +8 cells x 1 seeds', done.stdout, re.M)


def test_shipped_suites():
  suites = experiments.load_suites()
  assert {'quickstart', 'synthetic', 'synthetic_cpu', 'lra', 'sequential_images',
          'char_lm'} <= set(suites)
  for suite in suites.values():
    names = [c.name for c in suite.cells]
    assert len(names) == len(set(names)), suite.name
    for cell in suite.cells:
      path, _, arg = cell.config.partition(':')
      assert re.fullmatch(r'configs/\w+\.py', path), cell.config
      assert arg.split(',')[0] in MODEL_NAMES, cell.config
  quick = suites['quickstart']
  assert quick.seeds == (0,) and all('cpu' in c.config.split(':')[1].split(',') for c in quick.cells)
  assert {c.config.split(':')[0] for c in quick.cells} == {'configs/copy.py', 'configs/adding.py'}
  assert ({c.config.split(':')[1].split(',')[0] for c in quick.cells}
          == set(suite_defs.QUICKSTART_MODELS))
  cpu = suites['synthetic_cpu']   # every model and LTM-T 'xl' on each task, one step budget a task
  assert cpu.seeds == (0, 1, 2)
  for name, *_ in suite_defs.SYNTHETIC_CPU_TASKS:
    task_cells = [c for c in cpu.cells if c.name.startswith(name + '_')
                  and c.name[len(name) + 1:] in suite_defs.MODELS + ('ltmt_xl',)]
    assert len(task_cells) == len(suite_defs.MODELS) + 1, name
    assert len({c.config.split(':')[1].split(',', 1)[1] for c in task_cells}) == 1, name
  for name in ('sequential_images_cpu', 'listops_cpu'):   # every model once, one setting
    images = suites[name]
    assert images.seeds == (0, 1, 2) and not images.overrides, name
    assert sorted(c.config.split(':')[1].split(',')[0] for c in images.cells) == sorted(
        suite_defs.MODELS), name
    assert len({c.config.split(':')[1].split(',', 1)[1] for c in images.cells}) == 1, name
    assert not any(c.overrides for c in images.cells), name


def _cells_by_config_file():
  files = {}
  for suite in experiments.load_suites().values():
    for cell in suite.cells:
      cells = files.setdefault(cell.config_file, [])
      if all((c.config, c.overrides) != (cell.config, cell.overrides) for c in cells):
        cells.append(cell)
  return sorted(files.items())


@pytest.mark.parametrize('config_file,cells', _cells_by_config_file(),
                         ids=[f for f, _ in _cells_by_config_file()])
def test_suite_config_files_load(config_file, cells):
  """Each config file a suite names builds a config with each cell's argument and overrides."""
  path = os.path.join(REPO, config_file)
  if not os.path.isfile(path):
    pytest.skip(f'{config_file} is not written yet (needed by cells '
                f'{", ".join(c.name for c in cells)})')
  spec = importlib.util.spec_from_file_location('cfg', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for cell in cells:
    arg = cell.config.split(':', 1)[1]
    try:
      config = module.get_config(arg)
    except ValueError as e:
      if re.match(r'unknown (task|model) ', str(e)):
        pytest.skip(f'{cell.config}: {e} (not registered yet)')
      raise
    assert config.model.name == arg.split(',')[0], cell.config
    for key, _ in cell.overrides:
      node = config
      for part in key.split('.'):
        assert part in node, f'{cell.name}: override {key} is no config key'
        node = node[part]


def _efficiency():
  spec = importlib.util.spec_from_file_location('efficiency',
                                                os.path.join(REPO, 'experiments', 'efficiency.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_efficiency_on_tiny_lengths(tmp_path, capsys):
  eff = _efficiency()
  out = str(tmp_path / 'eff')
  assert eff.main(['--models', 'lstm', '--lengths', '16,32', '--batch', '2', '--steps', '2',
                   '--warmup', '1', '--set', 'hidden=8', '--set', 'embed_dim=4', '--out', out]) == 0
  for n in (16, 32):
    with open(os.path.join(out, f'lstm_{n}.json')) as f:
      record = json.load(f)
    assert record['status'] == 'complete' and record['seq_len'] == n
    assert record['steps_per_second'] > 0 and record['peak_memory_bytes'] > 0
    assert record['config']['hidden'] == 8 and record['batch_size'] == 2
    # 1 LSTM layer (4 * 8 * (4 + 8 + 1)) + embedding 256 * 4 + head 8 * 10 + 10
    assert record['num_params'] == 4 * 8 * 13 + 256 * 4 + 8 * 10 + 10
  table = open(os.path.join(out, 'table.md')).read()
  assert '| Model | 16 | 32 |' in table and '| LSTM |' in table
  assert os.path.getsize(os.path.join(out, 'efficiency.png')) > 0
  assert os.path.getsize(os.path.join(out, 'efficiency.pdf')) > 0
  # Records are kept: a second call measures nothing.
  capsys.readouterr()
  eff.main(['--models', 'lstm', '--lengths', '16', '--batch', '2', '--out', out])
  assert 'kept' in capsys.readouterr().out


def test_efficiency_records_oom_and_relative_table(monkeypatch):
  eff = _efficiency()

  def out_of_memory(*a, **k):
    raise RuntimeError('RESOURCE_EXHAUSTED: Out of memory while trying to allocate 80.00GiB')
  monkeypatch.setattr(eff, 'measure', out_of_memory)
  record = eff.benchmark('lstm', 16384, batch=2, steps=1, warmup=0)
  assert record['status'] == 'oom' and 'RESOURCE_EXHAUSTED' in record['error']
  base = {'batch_size': 8, 'device': 'gpu', 'device_kind': 'H100', 'status': 'complete'}
  records = [dict(base, model='transformer', model_label='Transformer', seq_len=1024,
                  steps_per_second=10.0, peak_memory_bytes=2 ** 30),
             dict(base, model='lstm', model_label='LSTM', seq_len=1024, steps_per_second=5.0,
                  peak_memory_bytes=2 ** 29),
             dict(record, model_label='LSTM', seq_len=2048, batch_size=8, device='gpu',
                  device_kind='H100')]
  text = eff.render_md(records)
  assert '| LSTM | 5.00 (0.50×) | OOM |' in text
  assert '| Transformer | 10.00 (1.00×) | — |' in text
  assert '| LSTM | 512.0 (0.50×) | OOM |' in text
  assert 'batch 8 on H100' in text
