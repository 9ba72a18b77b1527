"""Suite runner: a grid of configs x seeds, run one by one, then the suite's table and figures.

    python -m ltmjax.experiments list
    python -m ltmjax.experiments run quickstart [--only 'copy_*'] [--seeds 0,1,2]
                                     [--dry-run] [--print-commands] [--slurm]
                                     [--results runs] [--reference results]
    python -m ltmjax.experiments report quickstart

A suite (`ltmjax.suites`) names cells, each a config file with its argument
(`configs/copy.py:gru,cpu`, relative to the folder the runner is started from: the checkout)
and config overrides, and the seeds to run them with. Run k of cell c lives in
runs/<suite>/<c>/seed<k> (`--results` changes `runs`; runs/ is ignored by git) and is
trained by a subprocess

    python -m ltmjax.main --config configs/copy.py:gru,cpu --workdir runs/<suite>/<c>/seed<k>
                          --config.seed=k [--config.a.b=v ...]

whose output goes to run.log in that directory, so a crashed cell does not stop the suite.
A cell with `evaluate` flags is then evaluated at other lengths (`python -m ltmjax.evaluate
--workdir DIR <flags>`, also into run.log) unless DIR/length_sweep.json already holds them.
A run whose result.json says "status": "complete" is skipped; a half-finished one is started
again and the trainer resumes it from its checkpoint. Afterwards the table (ltmjax.report)
goes to runs/<suite>/table.{md,tex,csv} (and the length sweeps' BABILong layout to
runs/<suite>/lengths.{md,tex,csv}) and the figures to runs/<suite>/figures/; the table
printed to stdout also shows, under each row, the committed reference results of
results/<suite>/ (`--reference`) with the git revision they were made at.
"""
from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from ltmjax import registry, slurm
from ltmjax import suites as suites_lib
from ltmjax.errors import ArgumentParser, ConfigError, one_line_errors
from ltmjax.suites import Cell, Suite  # noqa: F401  (Cell: re-exported for suite authors)

RESULTS_DIR = 'runs'          # where suites train (ignored by git)
REFERENCE_DIR = 'results'     # the committed reference results, one folder per suite


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


def load_suites() -> Dict[str, Suite]:
  """The SUITES dict of `ltmjax.suites` (found through the installed package)."""
  from ltmjax import suites
  return suites.SUITES


def get_suite(name: str, suites: Optional[Dict[str, Suite]] = None) -> Suite:
  return registry.lookup(load_suites() if suites is None else suites, name, 'suite')


def plan(suite: Suite, results_dir: str = RESULTS_DIR, only: Sequence[str] = (),
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
  """One message per config file of `runs` not found under `root` (default: the current folder)."""
  root = os.getcwd() if root is None else root
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


def sweep_done(run: Run) -> bool:
  """Whether RUN/length_sweep.json holds every length the cell's `evaluate` asks for."""
  from ltmjax import evaluate, sweeps
  args = list(run.cell.evaluate)
  try:
    want = set(evaluate.parse_lengths(args[args.index('--lengths') + 1]))
  except (ValueError, IndexError, evaluate.EvalError):
    return False
  sweep = sweeps.read_sweep(run.workdir) or {}
  return want <= {int(r.get('length', -1)) for r in sweep.get('lengths', [])}


def _run_logged(runner, argv: Sequence[str], log_path: str):
  """Appends the command line to `log_path`, then runs it there: (exit code, '12s')."""
  with open(log_path, 'a') as log:
    log.write(f'\n# {time.strftime("%Y-%m-%d %H:%M:%S")} {shlex.join(argv)}\n')
  start = time.time()
  code = runner(argv, log_path, os.getcwd())  # configs/ paths are relative to it
  return code, f'{time.time() - start:.0f}s'


def evaluate_run(run: Run, runner, python: str, indent: str, out) -> bool:
  """The cell's length sweep after training (`python -m ltmjax.evaluate`, output to run.log),
  unless it asks for none or RUN/length_sweep.json holds it already; False where it failed
  (the run counts as failed; the suite goes on)."""
  if not run.cell.evaluate or sweep_done(run):
    return True
  argv = [python, '-m', 'ltmjax.evaluate', '--workdir', os.path.abspath(run.workdir)]
  argv += list(run.cell.evaluate)
  log_path = os.path.join(run.workdir, 'run.log')
  print(f'{indent} length sweep ...', end='', file=out, flush=True)
  code, took = _run_logged(runner, argv, log_path)
  if code == 0 and sweep_done(run):
    print(f' done in {took}', file=out, flush=True)
    return True
  print(f' FAILED (exit {code}) after {took}: {_last_line(log_path)}', file=out, flush=True)
  return False


def _train(suite: Suite, run: Run, runner, python: str, indent: str, out) -> str:
  """Trains (or resumes) one run, output to RUN/run.log: 'complete' | 'incomplete' | 'failed'."""
  os.makedirs(run.workdir, exist_ok=True)
  log_path = os.path.join(run.workdir, 'run.log')
  # The trainer's progress bar would fill the log with carriage returns: log lines instead.
  argv = [python, '-m', 'ltmjax.main'] + run.args(suite) + ['--config.train.progress=false']
  argv[argv.index('--workdir') + 1] = os.path.abspath(run.workdir)
  code, took = _run_logged(runner, argv, log_path)
  result = read_result(run.workdir)
  if code == 0 and result is not None and result.get('status') == 'complete':
    print(f' complete in {took}  {_summary(result)}', file=out, flush=True)
    return 'complete'
  if code == 0:
    print(f' stopped after {took} without a complete result.json; see {log_path}', file=out,
          flush=True)
    return 'incomplete'
  print(f' FAILED (exit {code}) after {took}: {_last_line(log_path)}\n'
        f'{indent} log: {log_path}', file=out, flush=True)
  return 'failed'


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
    else:
      print(f'{head} {"resuming" if before == "partial" else "running"} ...', end='', file=out,
            flush=True)
      outcome[run.label] = _train(suite, run, runner, python, ' ' * len(head), out)
    if (outcome[run.label] in ('skipped', 'complete')
        and not evaluate_run(run, runner, python, ' ' * len(head), out)):
      outcome[run.label] = 'failed'
  return outcome


def launch_commands(suite: Suite, runs: Sequence[Run]) -> List[str]:
  """One `./launch.sh ...` command line per run."""
  return [shlex.join(['./launch.sh'] + run.args(suite)) for run in runs]


def check_not_results(results_dir: str, reference: str = REFERENCE_DIR) -> None:
  """ConfigError when runs would be trained into the committed reference folder."""
  real, ref = os.path.realpath(results_dir), os.path.realpath(reference)
  if os.path.commonpath([real, ref]) == ref:
    raise ConfigError(f'--results {results_dir} is inside {reference}/, the committed reference '
                      f'results; train in {RESULTS_DIR}/ (the default) and copy the finished '
                      'runs there on purpose')


def reference_dir(suite: Suite, results_dir: str, reference: str = REFERENCE_DIR) -> Optional[str]:
  """`reference`/<suite> when it holds results and is not where this suite writes."""
  ref = os.path.join(reference, suite.name)
  here = os.path.join(results_dir, suite.name)
  if not os.path.isdir(ref) or os.path.realpath(ref) == os.path.realpath(here):
    return None
  return ref


def render(suite: Suite, results_dir: str = RESULTS_DIR, out=None,
           reference: str = REFERENCE_DIR) -> None:
  """Writes table.{md,tex,csv} and figures/ beside the runs; prints the table with the
  committed reference rows (from `reference`/<suite>, if any) under this run's."""
  out = sys.stdout if out is None else out
  from ltmjax import report
  suite_dir = os.path.join(results_dir, suite.name)
  results = report.load_results(suite_dir) if os.path.isdir(suite_dir) else []
  if not results:
    raise ConfigError(f'no complete result.json under {suite_dir} yet: no table (train it with '
                      f'python -m ltmjax.experiments run {suite.name.split("+")[0]})')
  published = report.load_published() if suite.published else None
  table = report.build_table(results, published=published)
  for fmt in ('md', 'tex', 'csv'):
    with open(os.path.join(suite_dir, f'table.{fmt}'), 'w') as f:
      f.write(report.render(table, fmt))
  ref_dir = reference_dir(suite, results_dir, reference)
  if ref_dir is not None:
    table = report.build_table(results, published=published, reference_from=ref_dir,
                               reference=report.load_results(ref_dir))
  print(f'\n{suite.name}: {suite.description}\n', file=out)
  print(report.render(table, 'md'), file=out)
  from ltmjax import sweeps
  lengths = sweeps.length_tables(results, published=published)
  if lengths:   # the BABILong layout of the cells evaluated at other lengths
    for fmt in ('md', 'tex', 'csv'):
      with open(os.path.join(suite_dir, f'lengths.{fmt}'), 'w') as f:
        f.write(sweeps.render_lengths(lengths, fmt))
    print(sweeps.render_lengths(lengths, 'md'), file=out)
  try:
    from ltmjax import figures
    paths = figures.suite_figures(suite_dir, os.path.join(suite_dir, 'figures'))
  except Exception as e:  # noqa: BLE001  (the table is written; a figure bug must not hide it)
    print(f'figures failed: {type(e).__name__}: {e}', file=out)
    paths = []
  print(f'written: {suite_dir}/table.md, table.tex, table.csv'
        + (', lengths.md, lengths.tex, lengths.csv' if lengths else '')
        + (f' and {len(paths)} figure files in {suite_dir}/figures' if paths else ''), file=out)


@one_line_errors
def main(argv: Optional[Sequence[str]] = None,
         runner: Callable[[Sequence[str], str, str], int] = subprocess_runner,
         suites: Optional[Dict[str, Suite]] = None) -> int:
  parser = ArgumentParser(prog='python -m ltmjax.experiments',
                          description='Run a suite of experiments and render its table.')
  sub = parser.add_subparsers(dest='command', required=True, parser_class=ArgumentParser)
  sub.add_parser('list', help='list the suites')
  for name in ('run', 'report'):
    p = sub.add_parser(name, help='train the suite, then render its table' if name == 'run'
                       else 'render the table and figures of what has finished')
    p.add_argument('suite')
    p.add_argument('--results', default=RESULTS_DIR,
                   help=f'where the runs go (default: {RESULTS_DIR}/<suite>)')
    p.add_argument('--reference', default=REFERENCE_DIR,
                   help=f'committed results shown beside them (default: {REFERENCE_DIR}/<suite>)')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='a config override on every cell, e.g. --set train.steps=20 for a smoke '
                        'run (repeatable); the runs go to <results>/<suite>+KEY=VALUE/')
    if name == 'run':
      p.add_argument('--only', action='append', default=[],
                     help='cell name glob (repeat or comma-separate), e.g. --only "copy_*"')
      p.add_argument('--seeds', help='comma-separated seeds instead of the suite\'s')
      p.add_argument('--dry-run', action='store_true', help='list the runs and their status')
      p.add_argument('--print-commands', action='store_true',
                     help='print one ./launch.sh command per run')
      p.add_argument('--slurm', action='store_true',
                     help='write runs/<suite>/slurm.sh, a SLURM array job (one index per run) '
                          'and the job that writes the table; submit with bash runs/<suite>/slurm.sh')
  args = parser.parse_args(argv)
  suites = load_suites() if suites is None else suites
  if args.command == 'list':
    for name in sorted(suites):
      s = suites[name]
      print(f'{name:<18} {len(s.cells):>3} cells x {len(s.seeds)} seeds  {s.description}')
    return 0
  try:
    suite = suites_lib.with_overrides(get_suite(args.suite, suites), args.set)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  if args.command == 'report':
    render(suite, args.results, reference=args.reference)
    return 0
  only = [p for item in args.only for p in item.split(',') if p]
  seeds = suites_lib.parse_seeds(args.seeds)
  check_not_results(args.results, args.reference)
  try:
    runs = plan(suite, args.results, only, seeds)
  except ValueError as e:
    raise ConfigError(str(e)) from None
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
    raise ConfigError(f'suite {suite.name!r} needs config files that are not there: '
                      + '; '.join(missing) + ' (run the other cells with --only)')
  if args.slurm:
    path = os.path.join(args.results, suite.name, 'slurm.sh')
    os.makedirs(os.path.join(args.results, suite.name, 'slurm'), exist_ok=True)
    with open(path, 'w') as f:
      f.write(slurm.script(suite, runs, args.results, report_args=[f'--set={s}' for s in args.set]))
    os.chmod(path, 0o755)
    print(f'wrote {path} ({len(runs)} array tasks); submit with: bash {path} (it builds the '
          'environment, submits the array and the job that writes the table)')
    return 0
  print(f'suite {suite.name}: {len(runs)} runs ({len(runs) // max(len(set(r.seed for r in runs)), 1)}'
        f' cells x {len(set(r.seed for r in runs))} seeds) in {os.path.join(args.results, suite.name)}')
  outcome = execute(suite, runs, runner=runner)
  try:
    render(suite, args.results, reference=args.reference)
  except ConfigError as e:   # no run finished: the outcome below says which failed
    print(f'no table: {e}')
  bad = [label for label, o in outcome.items() if o in ('failed', 'incomplete')]
  if bad:
    print(f'{len(bad)} of {len(runs)} runs did not complete: {", ".join(bad)}')
  return 1 if bad else 0


if __name__ == '__main__':
  sys.exit(main())
