"""Lookups in the project's registries (plain dicts of name -> entry): one error for a bad name."""
from typing import Mapping, TypeVar

V = TypeVar('V')


def lookup(table: Mapping[str, V], name: str, kind: str) -> V:
  """table[name]; an unknown name raises a ValueError listing the known ones, e.g.
  "unknown cell 'lsmt'; known cells: gru, lstm, ltmt" (kind='cell')."""
  if name not in table:
    raise ValueError(f'unknown {kind} {name!r}; known {kind}s: {", ".join(sorted(table))}')
  return table[name]


def rank(table: Mapping[str, V], name: str, kind: str) -> int:
  """The position of `name` in `table` (the order of rows or columns in tables)."""
  lookup(table, name, kind)
  return list(table).index(name)
