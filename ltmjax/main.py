"""Usage: `python -m ltmjax.main --config configs/x.py[:arg] [--workdir DIR] [--config.a.b=v]`.

The only reader of flags. Trains and evaluates the config, resuming from DIR when it
holds a checkpoint, and writes DIR/config.json, DIR/result.json and DIR/metrics.jsonl.
Bad input (a config argument or key it does not know, a wrong type, a value out of range,
a batch that does not split over the devices, a workdir that cannot be written) is
checked before anything is compiled or written and ends with one line on stderr and exit
code 2; a failed run (NaN loss, missing data, a workdir held by another run) with exit
code 1; a preempted run (SIGTERM, or Ctrl-C) saves a checkpoint, says so in one line and
exits with 143 (130 for Ctrl-C; a second Ctrl-C leaves at once).
A workdir belongs to one config: resuming it under another one (except a longer
train.steps, train.progress and parallel.*) stops with the differing keys, unless
--allow_config_change is given.

Several processes (one per host): `--coordinator HOST:PORT --num_processes N
--process_id I` on each, or `--distributed` where JAX finds the job itself (SLURM,
Cloud TPU pods, Open MPI); see ltmjax/distributed.py and launch.sh.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from ltmjax import distributed, validate, workdir
from ltmjax.errors import ConfigError, RunError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file (configs/*.py[:arg]).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory (default: runs/<config>[_<arg>]).')
_DEBUG = flags.DEFINE_bool('debug', False, 'Show full tracebacks instead of one-line errors.')
_ALLOW_CHANGE = flags.DEFINE_bool('allow_config_change', False, 'Resume a workdir under a '
                                  'config that differs from its config.json (which is replaced).')
# The flags of a multi-process run, by the keyword of distributed.initialize that each sets.
_MULTI_PROCESS = {
    'coordinator': flags.DEFINE_string('coordinator', None, 'HOST:PORT of process 0 of a '
                                       'multi-process run (with --num_processes, --process_id).'),
    'num_processes': flags.DEFINE_integer('num_processes', None, 'Processes in the run.'),
    'process_id': flags.DEFINE_integer('process_id', None, 'This process: 0..num_processes-1.'),
    'auto': flags.DEFINE_bool('distributed', False, 'Join a multi-process run that JAX detects '
                              '(SLURM, Cloud TPU pod, Open MPI).'),
    'timeout_s': flags.DEFINE_integer('distributed_timeout', 300, 'Seconds to wait for the '
                                      'coordinator and for all processes to join.'),
    'heartbeat_s': flags.DEFINE_integer('heartbeat_timeout', 100, 'Seconds without a heartbeat '
                                        'after which a process counts as lost and the run stops.'),
}


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, 'results')   # committed reference results: never trained into


def check_not_in_results(path: str) -> None:
  """ConfigError when `path` lies inside the checkout's committed results/ folders: a run
  there would enter the reference tables (they are rebuilt from every result.json in it)."""
  real, results = os.path.realpath(path), os.path.realpath(RESULTS)
  if os.path.commonpath([real, results]) == results:
    raise ConfigError(f'--workdir {path} is inside results/, the committed reference results; '
                      'train in runs/ (e.g. --workdir runs/my_run) and copy a finished run into '
                      'results/ on purpose')


def default_workdir(config_arg: str) -> str:
  path, _, arg = config_arg.partition(':')
  name = os.path.splitext(os.path.basename(path))[0]
  if arg:
    name += '_' + ''.join(c if c.isalnum() or c in '-_.=' else '_' for c in arg)
  return os.path.join('runs', name)


def main(argv):
  if len(argv) > 1:
    raise ConfigError(f'unexpected argument {argv[1]!r}: flags take the form --name=value or '
                      '--name value (--help lists them)')
  # Orbax logs each save step by step through absl at INFO; keep the run's own lines.
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger('ltmjax').setLevel(logging.INFO)
  config = _CONFIG.value
  if config is None:
    raise ConfigError('--config is required, e.g. --config configs/quickstart.py')
  path = _WORKDIR.value or default_workdir(_config_argument(sys.argv))
  check_not_in_results(path)
  validate.config(config)
  fresh = not os.path.exists(path)
  workdir.prepare(path)
  # Before any other JAX call: the devices of all processes form one backend.
  if distributed.initialize(**{key: flag.value for key, flag in _MULTI_PROCESS.items()}):
    import jax
    tag = f'[process {jax.process_index()}] '

    def tag_record(record):  # tell the processes' log lines apart
      record.msg = tag + str(record.msg)
      return True
    logging.getLogger('ltmjax').addFilter(tag_record)
  import jax
  from ltmjax import parallel, train  # imports JAX: after flag parsing
  try:
    mesh = parallel.make_mesh(config.parallel)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  validate.devices(config, mesh)
  try:
    with contextlib.ExitStack() as stack:
      previous = None
      if jax.process_index() == 0:  # the writing process holds the workdir and its config.json
        stack.enter_context(workdir.Lock(path))
        previous = workdir.check_config(path, config.to_dict(), allow_change=_ALLOW_CHANGE.value)
      train.run(config, path, previous_config=previous)
  except ConfigError:
    if fresh and jax.process_index() == 0:
      workdir.remove_if_unused(path)   # bad task data (a filler folder, ...): leave nothing
    raise


def _config_argument(argv) -> str:
  for i, a in enumerate(argv):
    if a.startswith('--config='):
      return a.split('=', 1)[1]
    if a == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return 'run'


def _parse_flags(argv):
  if any(a in ('-h', '--help', '--helpshort', '-?') for a in argv[1:]):
    app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)
  config_arg = _config_argument(argv)
  if config_arg != 'run':
    _check_config_file(config_arg.split(':', 1)[0])
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    if '--debug' in argv:
      raise
    _fail(_flag_error(e, argv, config_arg))


def _check_config_file(path: str) -> None:
  if os.path.isfile(path):
    return
  folder = os.path.dirname(path) or '.'
  names = sorted(n for n in os.listdir(folder) if n.endswith('.py')) if os.path.isdir(folder) else []
  _fail(f'config file {path} not found' + (f'; {folder}/ holds {", ".join(names)}' if names else
                                           '; configs/ holds the experiment configs'))


def _flag_error(e: BaseException, argv, config_arg: str) -> str:
  """One line for an exception of flag parsing: ml_collections and absl wrap the cause."""
  chain = [e]
  while (chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 10:
    chain.append(chain[-1].__cause__ or chain[-1].__context__)
  ours = [x for x in chain if isinstance(x, ConfigError)
          and not str(x).startswith('Error whilst parsing')]
  if ours:
    return f'{config_arg}: {ours[0]}'
  key_errors = [x for x in chain if isinstance(x, KeyError)]
  if key_errors and not isinstance(e, flags.IllegalFlagValueError):
    return _unknown_key(str(key_errors[-1].args[0]) if key_errors[-1].args else '',
                        ' '.join(str(x) for x in chain), argv, config_arg)
  text = str(e).strip()
  if text.startswith('flag --config.'):
    flag, _, _ = text[len('flag '):].partition(': ')
    key = flag[len('--config.'):].split('=', 1)[0]
    cause = str(chain[-1])
    kind = next((k for pattern, k in (('for int()', 'an integer'), ('to float', 'a number'),
                                      ('boolean', 'true or false')) if pattern in cause), None)
    return f'{flag}: {key} must be {kind}' if kind else f'{flag}: {cause.splitlines()[0]}'
  if text.startswith('flag --config='):   # the config file failed in another way
    inner = chain[-1]
    return f'{config_arg}: {type(inner).__name__}: {str(inner).strip().splitlines()[-1]}'
  lines = [l for l in text.splitlines() if l.strip()]
  return lines[0] if lines else type(e).__name__


def _unknown_key(key: str, messages: str, argv, config_arg: str) -> str:
  """The message of an override of a key the config does not have."""
  overrides = [a[len('--config.'):] for a in argv if a.startswith('--config.')]
  flag = next((o for o in overrides if key in o.split('=', 1)[0].split('.')), key)
  dotted = flag.split('=', 1)[0]
  parts = dotted.split('.')
  at = parts.index(key) if key in parts else len(parts) - 1   # the component that is unknown
  parent = parts[:at]
  guess = re.search(r'Did you mean "([^"]+)"', messages)
  if guess:
    hint = f'did you mean {".".join(parent + [guess.group(1)] + parts[at + 1:])}?'
  else:
    keys = _keys_of(config_arg, parent)
    hint = f'{".".join(parent) or "the config"} has {", ".join(keys)}' if keys else ''
  return f'unknown config key {dotted!r} in --config.{flag}' + (f'; {hint}' if hint else '')


def _keys_of(config_arg: str, group) -> list:
  """The keys of a group of the config (for a message); [] where it cannot be loaded."""
  import importlib.util
  path, _, arg = config_arg.partition(':')
  try:
    spec = importlib.util.spec_from_file_location('_config_for_message', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    node = module.get_config(arg) if arg else module.get_config()
    for name in group:
      node = node[name]
    return sorted(node.keys())
  except Exception:  # pylint: disable=broad-except
    return []


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
  except KeyboardInterrupt:
    print('interrupted (Ctrl-C) before the training loop; nothing new was saved: run the same '
          'command again to resume from the last checkpoint', file=sys.stderr)
    sys.exit(130)
  except (ConfigError, RunError, ValueError, FileNotFoundError, KeyError) as e:
    if '--debug' in sys.argv:
      raise
    code = getattr(e, 'exit_code', 1 if isinstance(e, FileNotFoundError) else 2)
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    ours = isinstance(e, (ConfigError, RunError, FileNotFoundError))   # it says what to do
    _fail(text if ours else f'{text}  (--debug shows the traceback)', code)


if __name__ == '__main__':
  run_main()
