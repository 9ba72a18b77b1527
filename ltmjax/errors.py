"""Errors that end a run with one line for the user (and a non-zero exit code)."""


class RunError(Exception):
  """A run cannot go on (NaN loss, missing data, ...); the message names the fix."""
  exit_code = 1


class ConfigError(ValueError):
  """The config names something unknown or holds a bad value; the message lists the choices."""
  exit_code = 2
