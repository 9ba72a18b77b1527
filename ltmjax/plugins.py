"""Cells and models added without editing the package: the modules named in $LTMJAX_PLUGINS.

    LTMJAX_PLUGINS=my_cells.py ./launch.sh --config configs/copy.py:elman,cpu

A comma-separated list of Python files (`path/to/x.py`) or importable module names
(`mypkg.cells`), imported once by `ltmjax.models` before it builds the model registry, so
a cell a plugin puts in `ltmjax.cells.base.CELLS` (with a `family`) becomes a model that
every config and suite accepts. Subprocesses (sweeps, suites) inherit the variable.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from ltmjax.errors import ConfigError

ENV = 'LTMJAX_PLUGINS'


def _import_file(path: str) -> None:
  name = 'ltmjax_plugin_' + os.path.splitext(os.path.basename(path))[0]
  if name in sys.modules:
    return
  if not os.path.isfile(path):
    raise ConfigError(f'{ENV} names {path!r}, which is not a file; give an existing .py file '
                      'or an importable module name')
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    del sys.modules[name]
    raise


def load() -> None:
  """Imports every module named in $LTMJAX_PLUGINS (each once; a bad name is a ConfigError)."""
  for entry in (e.strip() for e in os.environ.get(ENV, '').split(',')):
    if entry.endswith('.py'):
      _import_file(entry)
    elif entry:
      try:
        importlib.import_module(entry)
      except ModuleNotFoundError as e:
        raise ConfigError(f'{ENV} names the module {entry!r}, which does not import ({e}); '
                          'fix the name, or add its folder to PYTHONPATH') from None
