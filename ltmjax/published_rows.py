"""The published reference rows of a table (ltmjax/published.json): which published value
applies to which column (the same setting, or a "reference, different setting" row), their
citations, and the benchmark averages computed as the papers compute them. Used by
`ltmjax.report` (rows x tasks) and `ltmjax.sweeps` (rows x lengths)."""
from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Dict, List, Optional

from ltmjax.tables import Benchmark, Column, Entry, Row

PUBLISHED_PATH = os.path.join(os.path.dirname(__file__), 'published.json')
# The tag of a published number of another setting than the column's (see published_rows).
DIFFERENT_SETTING = 'reference, different setting'


def normalise(name: str) -> str:
  return re.sub(r'[^a-z0-9]', '', str(name).lower())


def load_published(path: Optional[str] = None) -> Dict[str, Any]:
  with open(path or PUBLISHED_PATH) as f:
    return json.load(f)


def config_value(config: Dict[str, Any], dotted: str):
  value = config
  for part in dotted.split('.'):
    if not isinstance(value, dict) or part not in value:
      return None
    value = value[part]
  return value


def cite(text: str, citations: List[str]) -> int:
  if text not in citations:
    citations.append(text)
  return citations.index(text) + 1


def _entry(v) -> Entry:
  return Entry(float(v), n=0) if isinstance(v, (int, float)) else Entry(text=str(v))


def _same_setting(value: Dict[str, Any], col: Column) -> bool:
  """Whether a published value applies to `col`: its 'when' holds for every run's config and
  its 'benchmark' (if any) is the column's (the task says when it is the benchmark's setting)."""
  when = value.get('when', {})
  return (all(config_value(c, k) == v for c in col.configs for k, v in when.items())
          and value.get('benchmark', col.benchmark) == col.benchmark)


def published_rows(published, columns, citations: List[str]) -> List[Row]:
  """The published rows for `columns`; a value of another setting whose 'otherwise' is
  'reference' goes to a row of the "reference (different setting)" block at the end (never a
  contender), any other such value is left out."""
  aliases: Dict[str, str] = {}
  for canonical, names in published.get('aliases', {}).items():
    for name in [canonical] + list(names):
      aliases[normalise(name)] = normalise(canonical)
  rows, elsewhere = [], []
  for spec in published.get('rows', []):
    values = {normalise(k): v for k, v in spec['values'].items()}
    entries, others = {}, {}
    for col in columns:
      merged, other = {}, {}
      # A label that names a published column (Path-X, ListOps) is matched alone; otherwise
      # the task-wide value first, then the exact task label's (more specific) value.
      label_key = normalise(col.key)
      names = (col.key,) if label_key in aliases else (col.task, col.key)
      for name in names:
        value = values.get(aliases.get(normalise(name), normalise(name)))
        if value is None:
          continue
        if _same_setting(value, col):
          merged.update(value)
        elif value.get('otherwise') == 'reference':
          other.update(value)
      if col.metric in merged:
        entries[col.key] = _entry(merged[col.metric])
      elif col.metric in other:
        others[col.key] = _entry(other[col.metric])
    if entries or others:
      note = cite(published['sources'][spec['source']], citations)
    if entries:
      rows.append(Row(spec['label'], entries, tag=spec.get('tag', 'published'), note=note,
                      contender=spec.get('contender', True), measured=False))
    if others:
      elsewhere.append(Row(spec['label'], others, tag=DIFFERENT_SETTING, note=note,
                           contender=False, measured=False))
  return rows + elsewhere


def averages(rows: List[Row], columns: List[Column], benchmarks: Dict[str, Any]
              ) -> List[Benchmark]:
  """The benchmark averages this table can show, filled into each row that has them all."""
  shown = []
  for key in sorted(benchmarks):
    spec = benchmarks[key]
    cols = [c for c in columns if c.benchmark == key]
    # One column per task of the benchmark, or the average would not be the published one.
    if len(cols) != spec['tasks'] or len({c.task for c in cols}) != spec['tasks']:
      continue
    bench = Benchmark(key, spec['header'], spec['tasks'], spec['footnote'])
    shown.append(bench)
    for row in rows:
      got = [row.entries.get(c.key) for c in cols]
      if all(e is not None and e.text is None and not math.isnan(e.mean) for e in got):
        row.avg[bench.header] = sum(e.mean for e in got) / len(got)
  return shown
