"""Suite runner: a grid of configs x seeds, run one by one, then the suite's table and figures.

    python -m ltmjax.experiments list
    python -m ltmjax.experiments run quickstart [--only 'copy_*'] [--seeds 0,1,2]
                                     [--dry-run] [--print-commands] [--slurm]
    python -m ltmjax.experiments report quickstart

A suite (experiments/suites.py) names cells, each a config file with its argument
(`configs/copy.py:gru,cpu`) and config overrides, and the seeds to run them with. Run k of
cell c lives in results/<suite>/<c>/seed<k> and is trained by a subprocess

    python -m ltmjax.main --config configs/copy.py:gru,cpu --workdir results/<suite>/<c>/seed<k>
                          --config.seed=k [--config.a.b=v ...]

whose output goes to run.log in that directory, so a crashed cell does not stop the suite.
A run whose result.json says "status": "complete" is skipped; a half-finished one is started
again and the trainer resumes it from its checkpoint. Afterwards the table
(ltmjax.report) goes to stdout and to results/<suite>/table.{md,tex,csv}, the figures to
results/<suite>/figures/.
"""
from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITES_FILE = os.path.join(REPO_ROOT, 'experiments', 'suites.py')
Override = Tuple[str, object]


@dataclasses.dataclass(frozen=True)
class Cell:
  """One configuration of a suite: a config file with its argument, plus overrides."""
  name: str                              # directory name under results/<suite>/
  config: str                            # 'configs/copy.py:gru,cpu', relative to the repo root
  overrides: Tuple[Override, ...] = ()   # (('train.steps', 500), ...) -> --config.train.steps=500

  @property
  def config_file(self) -> str:
    return self.config.split(':', 1)[0]


@dataclasses.dataclass(frozen=True)
class Suite:
  """A grid of cells x seeds that reproduces one table."""
  name: str
  description: str
  cells: Tuple[Cell, ...]
  seeds: Tuple[int, ...] = (0, 1, 2)
  overrides: Tuple[Override, ...] = ()   # applied to every cell (before the cell's own)
  slurm: Tuple[Tuple[str, str], ...] = (('time', '24:00:00'), ('gres', 'gpu:1'),
                                        ('cpus-per-task', '8'), ('mem', '64G'))
  published: bool = True                 # add the published reference rows to the table


@dataclasses.dataclass(frozen=True)
class Run:
  """Seed `seed` of `cell`, trained in `workdir`."""
  cell: Cell
  seed: int
  workdir: str

  @property
  def label(self) -> str:
    return f'{self.cell.name} seed{self.seed}'

  def args(self, suite: Suite) -> List[str]:
    """The ltmjax.main flags of this run."""
    args = ['--config', self.cell.config, '--workdir', self.workdir, f'--config.seed={self.seed}']
    for key, value in suite.overrides + self.cell.overrides:
      args.append(f'--config.{key}={value}')
    return args


def load_suites(path: str = SUITES_FILE) -> Dict[str, Suite]:
  """The SUITES dict of experiments/suites.py (loaded by path: experiments/ is no package)."""
  spec = importlib.util.spec_from_file_location('ltmjax_suites', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.SUITES


def get_suite(name: str, suites: Optional[Dict[str, Suite]] = None) -> Suite:
  suites = load_suites() if suites is None else suites
  if name not in suites:
    raise ValueError(f'unknown suite {name!r}; known suites: {", ".join(sorted(suites))}')
  return suites[name]


def plan(suite: Suite, results_dir: str = 'results', only: Sequence[str] = (),
         seeds: Optional[Sequence[int]] = None) -> List[Run]:
  """The runs of `suite` (cells matching any `only` glob), in suite order."""
  cells = [c for c in suite.cells if not only or any(fnmatch.fnmatch(c.name, p) for p in only)]
  if only and not cells:
    raise ValueError(f'--only {",".join(only)} matches no cell of suite {suite.name!r}; cells: '
                     + ', '.join(c.name for c in suite.cells))
  seeds = suite.seeds if seeds is None else tuple(seeds)
  return [Run(c, s, os.path.join(results_dir, suite.name, c.name, f'seed{s}'))
          for c in cells for s in seeds]


def missing_configs(runs: Sequence[Run], root: Optional[str] = None) -> List[str]:
  """One message per config file of `runs` that does not exist, naming the cells that need it."""
  root = REPO_ROOT if root is None else root
  needed: Dict[str, List[str]] = {}
  for run in runs:
    names = needed.setdefault(run.cell.config_file, [])
    if run.cell.name not in names:
      names.append(run.cell.name)
  return [f'{path} does not exist (cells {", ".join(names)})' for path, names in needed.items()
          if not os.path.isfile(os.path.join(root, path))]


def read_result(workdir: str) -> Optional[dict]:
  try:
    with open(os.path.join(workdir, 'result.json')) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def run_status(workdir: str) -> str:
  """'complete' (result.json says so), 'partial' (started: resumes) or 'pending'."""
  result = read_result(workdir)
  if result is not None and result.get('status') == 'complete':
    return 'complete'
  if os.path.isdir(workdir) and os.listdir(workdir):
    return 'partial'
  return 'pending'


def subprocess_runner(argv: Sequence[str], log_path: str, cwd: str) -> int:
  """Runs `argv`, appending its stdout and stderr to `log_path`; returns the exit code."""
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  with open(log_path, 'a') as log:
    return subprocess.run(list(argv), stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                          env=env, check=False).returncode


def _last_line(path: str) -> str:
  try:
    with open(path, errors='replace') as f:
      lines = [l.strip() for l in f.read()[-4000:].splitlines() if l.strip()]
  except OSError:
    return ''
  return lines[-1][:160] if lines else ''


def _summary(result: dict) -> str:
  name = result.get('primary_metric', '')
  value = result.get('metrics', {}).get(name)
  if value is None:
    return ''
  from ltmjax import report
  if report.is_percent(name):
    return f'{name}={report.format_number(100 * value, True)}%'
  return f'{name}={report.format_number(value, False)}'


def execute(suite: Suite, runs: Sequence[Run], *,
            runner: Callable[[Sequence[str], str, str], int] = subprocess_runner,
            python: str = sys.executable, out=None) -> Dict[str, str]:
  """Trains every run that is not complete, one after the other.

  Returns:
    run label -> 'complete' | 'skipped' (was complete) | 'failed' | 'incomplete'.
  """
  out = sys.stdout if out is None else out
  outcome = {}
  width = len(str(len(runs)))
  for i, run in enumerate(runs, 1):
    head = f'[{i:>{width}}/{len(runs)}] {run.label:<32}'
    before = run_status(run.workdir)
    if before == 'complete':
      outcome[run.label] = 'skipped'
      print(f'{head} complete, skipped  {_summary(read_result(run.workdir))}', file=out, flush=True)
      continue
    print(f'{head} {"resuming" if before == "partial" else "running"} ...', end='', file=out,
          flush=True)
    os.makedirs(run.workdir, exist_ok=True)
    log_path = os.path.join(run.workdir, 'run.log')
    # The trainer's progress bar would fill the log with carriage returns: log lines instead.
    argv = [python, '-m', 'ltmjax.main'] + run.args(suite) + ['--config.train.progress=false']
    argv[argv.index('--workdir') + 1] = os.path.abspath(run.workdir)
    with open(log_path, 'a') as log:
      log.write(f'\n# {time.strftime("%Y-%m-%d %H:%M:%S")} {shlex.join(argv)}\n')
    start = time.time()
    code = runner(argv, log_path, REPO_ROOT)  # configs/ paths are relative to the repo root
    took = f'{time.time() - start:.0f}s'
    result = read_result(run.workdir)
    if code == 0 and result is not None and result.get('status') == 'complete':
      outcome[run.label] = 'complete'
      print(f' complete in {took}  {_summary(result)}', file=out, flush=True)
    elif code == 0:
      outcome[run.label] = 'incomplete'
      print(f' stopped after {took} without a complete result.json; see {log_path}', file=out,
            flush=True)
    else:
      outcome[run.label] = 'failed'
      print(f' FAILED (exit {code}) after {took}: {_last_line(log_path)}\n'
            f'{" " * len(head)} log: {log_path}', file=out, flush=True)
  return outcome


def launch_commands(suite: Suite, runs: Sequence[Run]) -> List[str]:
  """One `./launch.sh ...` command line per run."""
  return [shlex.join(['./launch.sh'] + run.args(suite)) for run in runs]


def slurm_script(suite: Suite, runs: Sequence[Run], results_dir: str = 'results') -> str:
  """A SLURM array job: array index i runs runs[i] through launch.sh (skipping it when done)."""
  log_dir = os.path.join(results_dir, suite.name, 'slurm')
  lines = ['#!/bin/bash', f'#SBATCH --job-name=ltmjax-{suite.name}',
           f'#SBATCH --array=0-{len(runs) - 1}', '#SBATCH --nodes=1', '#SBATCH --ntasks=1']
  lines += [f'#SBATCH --{k}={v}' for k, v in suite.slurm]
  lines += [f'#SBATCH --output={log_dir}/%A_%a.out',
            f'# {suite.name}: {suite.description}',
            f'# Submit with: sbatch {os.path.join(results_dir, suite.name, "slurm.sh")}',
            'set -euo pipefail', f'cd {shlex.quote(REPO_ROOT)}', '',
            'run() {  # run WORKDIR LAUNCH_ARGS...: skips a run whose result.json is complete',
            '  if grep -Eqs \'"status": *"complete"\' "$1/result.json"; then',
            '    echo "$1 is complete; skipping"; return 0', '  fi',
            '  shift', '  ./launch.sh "$@"', '}', '',
            'case "$SLURM_ARRAY_TASK_ID" in']
  for i, (run, cmd) in enumerate(zip(runs, launch_commands(suite, runs))):
    args = cmd[len('./launch.sh '):]
    lines.append(f'  {i}) run {shlex.quote(run.workdir)} {args} ;;')
  lines += ['  *) echo "no run for array index $SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;', 'esac']
  return '\n'.join(lines) + '\n'


def render(suite: Suite, results_dir: str = 'results', out=None) -> None:
  """Prints the suite's table and writes table.{md,tex,csv} and figures/ beside the runs."""
  out = sys.stdout if out is None else out
  from ltmjax import report
  suite_dir = os.path.join(results_dir, suite.name)
  results = report.load_results(suite_dir) if os.path.isdir(suite_dir) else []
  if not results:
    print(f'no complete result.json under {suite_dir} yet: no table', file=out)
    return
  table = report.build_table(results, published=report.load_published() if suite.published
                             else None)
  for fmt in ('md', 'tex', 'csv'):
    with open(os.path.join(suite_dir, f'table.{fmt}'), 'w') as f:
      f.write(report.render(table, fmt))
  print(f'\n{suite.name}: {suite.description}\n', file=out)
  print(report.render(table, 'md'), file=out)
  try:
    from ltmjax import figures
    paths = figures.suite_figures(suite_dir, os.path.join(suite_dir, 'figures'))
  except Exception as e:  # noqa: BLE001  (the table is written; a figure bug must not hide it)
    print(f'figures failed: {type(e).__name__}: {e}', file=out)
    paths = []
  print(f'written: {suite_dir}/table.md, table.tex, table.csv'
        + (f' and {len(paths)} figure files in {suite_dir}/figures' if paths else ''), file=out)


def main(argv: Optional[Sequence[str]] = None,
         runner: Callable[[Sequence[str], str, str], int] = subprocess_runner,
         suites: Optional[Dict[str, Suite]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m ltmjax.experiments',
                                   description='Run a suite of experiments and render its table.')
  sub = parser.add_subparsers(dest='command', required=True)
  sub.add_parser('list', help='list the suites')
  for name in ('run', 'report'):
    p = sub.add_parser(name, help='train the suite, then render its table' if name == 'run'
                       else 'render the table and figures of what has finished')
    p.add_argument('suite')
    p.add_argument('--results', default='results', help='results directory (default: results)')
    if name == 'run':
      p.add_argument('--only', action='append', default=[],
                     help='cell name glob (repeat or comma-separate), e.g. --only "copy_*"')
      p.add_argument('--seeds', help='comma-separated seeds instead of the suite\'s')
      p.add_argument('--dry-run', action='store_true', help='list the runs and their status')
      p.add_argument('--print-commands', action='store_true',
                     help='print one ./launch.sh command per run')
      p.add_argument('--slurm', action='store_true',
                     help='write results/<suite>/slurm.sh, a SLURM array job (one index per run)')
  args = parser.parse_args(argv)
  suites = load_suites() if suites is None else suites
  if args.command == 'list':
    for name in sorted(suites):
      s = suites[name]
      print(f'{name:<18} {len(s.cells):>3} cells x {len(s.seeds)} seeds  {s.description}')
    return 0
  try:
    suite = get_suite(args.suite, suites)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if args.command == 'report':
    render(suite, args.results)
    return 0
  only = [p for item in args.only for p in item.split(',') if p]
  seeds = [int(s) for s in args.seeds.split(',')] if args.seeds else None
  try:
    runs = plan(suite, args.results, only, seeds)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if args.dry_run:
    for run in runs:
      print(f'{run_status(run.workdir):<9} {run.label:<32} {run.cell.config}  {run.workdir}')
    counts = {s: sum(run_status(r.workdir) == s for r in runs) for s in ('complete', 'partial',
                                                                           'pending')}
    print(f'{len(runs)} runs: ' + ', '.join(f'{n} {s}' for s, n in counts.items()))
    missing = missing_configs(runs)
    for m in missing:
      print(f'warning: {m}')
    return 0
  if args.print_commands:
    print('\n'.join(launch_commands(suite, runs)))
    return 0
  missing = missing_configs(runs)
  if missing:
    print(f'error: suite {suite.name!r} needs config files that are not there:\n  '
          + '\n  '.join(missing) + '\n(run the other cells with --only)', file=sys.stderr)
    return 2
  if args.slurm:
    path = os.path.join(args.results, suite.name, 'slurm.sh')
    os.makedirs(os.path.join(args.results, suite.name, 'slurm'), exist_ok=True)
    with open(path, 'w') as f:
      f.write(slurm_script(suite, runs, args.results))
    os.chmod(path, 0o755)
    print(f'wrote {path} ({len(runs)} array tasks); submit with: sbatch {path}')
    return 0
  print(f'suite {suite.name}: {len(runs)} runs ({len(runs) // max(len(set(r.seed for r in runs)), 1)}'
        f' cells x {len(set(r.seed for r in runs))} seeds) in {os.path.join(args.results, suite.name)}')
  outcome = execute(suite, runs, runner=runner)
  render(suite, args.results)
  bad = [label for label, o in outcome.items() if o in ('failed', 'incomplete')]
  if bad:
    print(f'{len(bad)} of {len(runs)} runs did not complete: {", ".join(bad)}')
  return 1 if bad else 0


if __name__ == '__main__':
  sys.exit(main())
