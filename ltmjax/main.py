"""Command line: `python -m ltmjax.main --config configs/x.py[:arg] [--workdir DIR] [--config.a.b=v]`.

The only reader of flags. Trains and evaluates the config, resuming from DIR when it
holds a checkpoint, and writes DIR/result.json and DIR/metrics.jsonl.
Bad input (unknown config key, wrong type, unknown model or task) ends with one line
on stderr and exit code 2; a failed run (NaN loss, missing data) with exit code 1; a
preempted run (SIGTERM) saves a checkpoint, says so in one line and exits with 143.

Several processes (one per host): `--coordinator HOST:PORT --num_processes N
--process_id I` on each, or `--distributed` where JAX finds the job itself (SLURM,
Cloud TPU pods, Open MPI); see ltmjax/distributed.py and launch.sh.
"""
from __future__ import annotations

import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from ltmjax import distributed
from ltmjax.errors import ConfigError, RunError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file (configs/*.py[:arg]).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory (default: runs/<config>[_<arg>]).')
_DEBUG = flags.DEFINE_bool('debug', False, 'Show full tracebacks instead of one-line errors.')
_COORDINATOR = flags.DEFINE_string('coordinator', None, 'HOST:PORT of process 0 of a '
                                   'multi-process run (with --num_processes, --process_id).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Processes in the run.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process: 0..num_processes-1.')
_DISTRIBUTED = flags.DEFINE_bool('distributed', False, 'Join a multi-process run that JAX '
                                 'detects (SLURM, Cloud TPU pod, Open MPI).')
_DIST_TIMEOUT = flags.DEFINE_integer('distributed_timeout', 300, 'Seconds to wait for the '
                                     'coordinator and for all processes to join.')
_HEARTBEAT = flags.DEFINE_integer('heartbeat_timeout', 100, 'Seconds without a heartbeat '
                                  'after which a process counts as lost and the run stops.')


def default_workdir(config_arg: str) -> str:
  path, _, arg = config_arg.partition(':')
  name = os.path.splitext(os.path.basename(path))[0]
  if arg:
    name += '_' + ''.join(c if c.isalnum() or c in '-_.=' else '_' for c in arg)
  return os.path.join('runs', name)


def validate(config) -> None:
  """Names and groups that the registries must know, checked before anything is built."""
  from ltmjax import models, tasks
  for group, registry in (('model', models), ('task', tasks)):
    name = config[group].name
    try:
      entry = registry.get(name)
    except ValueError as e:
      raise ConfigError(f'{group}.name: {e}') from None
    expected = set(entry.default_config()) | {'name'}
    actual = set(config[group].keys())
    if actual != expected:
      raise ConfigError(
          f'the {group} group does not fit {group} {name!r} (unexpected: '
          f'{", ".join(sorted(actual - expected)) or "none"}; missing: '
          f'{", ".join(sorted(expected - actual)) or "none"}); pick the {group} in the config '
          f'file argument (e.g. configs/copy.py:transformer) instead of overriding {group}.name')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  # Orbax logs each save step by step through absl at INFO; keep the run's own lines.
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger('ltmjax').setLevel(logging.INFO)
  config = _CONFIG.value
  if config is None:
    raise ConfigError('--config is required, e.g. --config configs/quickstart.py')
  workdir = _WORKDIR.value or default_workdir(_config_argument(sys.argv))
  validate(config)
  # Before any other JAX call: the devices of all processes form one backend.
  if distributed.initialize(coordinator=_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
                            process_id=_PROCESS_ID.value, auto=_DISTRIBUTED.value,
                            timeout_s=_DIST_TIMEOUT.value, heartbeat_s=_HEARTBEAT.value):
    import jax
    tag = f'[process {jax.process_index()}] '

    def tag_record(record):  # tell the processes' log lines apart
      record.msg = tag + str(record.msg)
      return True
    logging.getLogger('ltmjax').addFilter(tag_record)
  from ltmjax import train  # imports JAX: after flag parsing
  train.run(config, workdir)


def _config_argument(argv) -> str:
  for i, a in enumerate(argv):
    if a.startswith('--config='):
      return a.split('=', 1)[1]
    if a == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return 'run'


def _parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:  # ml_collections: an override of a missing key
    key = str(e).strip('"\'')
    _fail(f'unknown config key {key!r} in a --config.* override; the config file defines the '
          'keys (see its printout at the start of a run)')
  except (flags.Error, ValueError, TypeError) as e:
    msg = [l for l in str(e).strip().splitlines() if l.strip()]
    _fail(msg[-1] if msg else type(e).__name__)


def _fail(text: str, code: int = 2):
  print(f'error: {text}', file=sys.stderr)
  sys.exit(code)


def run_main():
  logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s',
                      datefmt='%H:%M:%S')
  try:
    app.run(main, flags_parser=_parse_flags)
  except distributed.Preempted as e:
    print(str(e), file=sys.stderr)
    sys.exit(e.exit_code)
  except (ConfigError, RunError, ValueError, FileNotFoundError, KeyError) as e:
    if '--debug' in sys.argv:
      raise
    code = getattr(e, 'exit_code', 1 if isinstance(e, FileNotFoundError) else 2)
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    _fail(f'{text}  (--debug shows the traceback)', code)


if __name__ == '__main__':
  run_main()
