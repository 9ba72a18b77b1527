"""A suite as a SLURM array job: the script `python -m ltmjax.experiments run SUITE --slurm` writes.

The script has two roles, picked by SLURM_ARRAY_TASK_ID:
  - on the login node (`bash runs/<suite>/slurm.sh`): builds the environment once
    (`./launch.sh`, with the `gpu` extra when the suite asks for a GPU), submits the array
    (one task per run) and a dependent job (`--dependency=afterany`) that writes the table
    and figures when every task has ended;
  - as array task i (`sbatch` sets the variable): trains run i through `srun ./launch.sh`
    (skipped when its result.json is complete), then its length sweep if the cell has one.
Every path in it is absolute (logs, workdirs, the checkout), so it runs from any folder.
Preemption and time limits: `--signal=TERM@<s>` asks the trainer to save a checkpoint
<s> seconds before the end (it exits 143), and the task then requeues itself
(`scontrol requeue`, with `--requeue` and `--open-mode=append`); the requeued task resumes
from that checkpoint. Progress bars are off (`train.progress=false`): logs hold lines.
`launch.sh` also builds `.venv` under a lock (flock), so tasks started by a plain
`sbatch slurm.sh` never race `pip install` either.
"""
from __future__ import annotations

import os
import shlex
from typing import List, Sequence

SIGNAL_SECONDS = 300   # time the trainer gets to write its checkpoint before the limit


def wants_gpu(slurm_options) -> bool:
  """Whether the suite's #SBATCH options ask for a GPU (gres=gpu..., gpus..., gpus-per-*)."""
  return any((k == 'gres' and 'gpu' in str(v)) or k.startswith('gpus') for k, v in slurm_options)


def script(suite, runs: Sequence, results_dir: str, checkout: str = '',
           report_args: Sequence[str] = ()) -> str:
  """The bash text of the array job of `runs` (experiments.Run) of `suite`.

  Args:
    suite: the `Suite` (its name, description and `slurm` #SBATCH options).
    runs: the runs, in array-index order.
    results_dir: where the runs live (made absolute here).
    checkout: the folder holding launch.sh and configs/ (default: the current one).
    report_args: extra flags of `python -m ltmjax.experiments report` (e.g. --set ...).
  """
  checkout = os.path.abspath(checkout or os.getcwd())
  suite_dir = os.path.join(os.path.abspath(results_dir), suite.name)
  log_dir = os.path.join(suite_dir, 'slurm')
  me = os.path.join(suite_dir, 'slurm.sh')
  q = shlex.quote
  extras = 'gpu' if wants_gpu(suite.slurm) else ''
  lines = ['#!/bin/bash', f'#SBATCH --job-name=ltmjax-{suite.name}',
           f'#SBATCH --array=0-{len(runs) - 1}', '#SBATCH --nodes=1', '#SBATCH --ntasks=1']
  lines += [f'#SBATCH --{k}={v}' for k, v in suite.slurm]
  lines += [f'#SBATCH --output={log_dir}/%A_%a.out',
            f'#SBATCH --signal=TERM@{SIGNAL_SECONDS}', '#SBATCH --requeue',
            '#SBATCH --open-mode=append',
            f'# {suite.name}: {suite.description}',
            f'# Submit with: bash {me}',
            '# (builds the environment once, submits the array and the job that writes the table)',
            'set -euo pipefail', f'cd {q(checkout)}',
            f'export LTMJAX_EXTRAS="${{LTMJAX_EXTRAS:-{extras}}}" PYTHONUNBUFFERED=1', '']
  report = shlex.join(['./launch.sh', 'python', '-m', 'ltmjax.experiments', 'report',
                       suite.name.split('+')[0], '--results', os.path.abspath(results_dir)]
                      + list(report_args))
  lines += [
      'if [[ -z "${SLURM_ARRAY_TASK_ID:-}" ]]; then   # the login node: build, then submit',
      '  ./launch.sh python -c "import ltmjax"   # the environment, once, before any task',
      f'  array=$(sbatch --parsable {q(me)})',
      f'  table=$(sbatch --parsable --dependency=afterany:"${{array%%;*}}" '
      f'--job-name=ltmjax-{suite.name}-table --output={q(log_dir)}/table_%j.out '
      f'--time=01:00:00 --ntasks=1 --cpus-per-task=2 --mem=8G '
      f'--wrap={q(f"cd {q(checkout)} && JAX_PLATFORMS=cpu {report}")})',
      '  echo "submitted array job $array and table job $table (after the array ends);'
      f' logs in {log_dir}"',
      '  exit 0', 'fi', '',
      'run() {  # run WORKDIR "EVALUATE FLAGS" LAUNCH_ARGS...: train unless complete, then sweep',
      '  local workdir="$1" evaluate="$2" code=0', '  shift 2',
      '  if grep -Eqs \'"status": *"complete"\' "$workdir/result.json"; then',
      '    echo "$workdir is complete; skipping"',
      '  else',
      '    srun --ntasks=1 ./launch.sh "$@" || code=$?',
      '    if [[ $code -eq 143 ]]; then   # SIGTERM before the limit: checkpoint saved, go again',
      '      echo "preempted; requeueing to resume from the checkpoint"',
      '      scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"; exit 0',
      '    fi',
      '    [[ $code -eq 0 ]] || exit $code',
      '  fi',
      '  if [[ -n "$evaluate" && ! -f "$workdir/length_sweep.json" ]]; then',
      '    # shellcheck disable=SC2086  (the flags are one word each)',
      '    srun --ntasks=1 ./launch.sh python -m ltmjax.evaluate --workdir "$workdir" $evaluate',
      '  fi',
      '}', '', 'case "$SLURM_ARRAY_TASK_ID" in']
  for i, run in enumerate(runs):
    workdir = os.path.abspath(run.workdir)
    args = run_args(suite, run, workdir)
    lines.append(f'  {i}) run {q(workdir)} {q(" ".join(run.cell.evaluate))} '
                 f'{shlex.join(args)} ;;')
  lines += ['  *) echo "no run for array index $SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;', 'esac']
  return '\n'.join(lines) + '\n'


def run_args(suite, run, workdir: str) -> List[str]:
  """The launch.sh flags of `run` with an absolute workdir and no progress bar."""
  args = list(run.args(suite))
  args[args.index('--workdir') + 1] = workdir
  return args + ['--config.train.progress=false']
