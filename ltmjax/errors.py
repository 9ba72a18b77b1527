"""Errors that end a run with one line for the user (and a non-zero exit code).

Also the command-line side of it: `ArgumentParser` (a bad flag is a ConfigError) and
`one_line_errors` (a main() that turns a ConfigError into one line and exit code 2).
"""
import argparse
import functools
import sys
from typing import Callable


class RunError(Exception):
  """A run cannot go on (NaN loss, missing data, ...); the message names the fix."""
  exit_code = 1


class ConfigError(ValueError):
  """The config names something unknown or holds a bad value; the message lists the choices."""
  exit_code = 2


class ArgumentParser(argparse.ArgumentParser):
  """argparse whose bad-flag message is one line (a ConfigError), not usage + message, and
  that takes no abbreviations (`--seed 1` must not pass for `--seeds 1`)."""

  def __init__(self, *args, **kwargs):
    kwargs.setdefault('allow_abbrev', False)
    super().__init__(*args, **kwargs)

  def error(self, message):
    raise ConfigError(f'{message} ({self.prog} --help lists the flags)')


def one_line_errors(main: Callable[..., int]) -> Callable[..., int]:
  """Wraps a command's main(argv): a ConfigError becomes one line on stderr and exit code 2."""
  @functools.wraps(main)
  def wrapped(*args, **kwargs) -> int:
    try:
      return main(*args, **kwargs)
    except ConfigError as e:
      text = str(e).strip().splitlines()
      print(f'error: {text[0] if text else type(e).__name__}', file=sys.stderr)
      return e.exit_code
  return wrapped
