"""The comparison table as a value, and its renderings: Markdown, LaTeX, CSV.

`ltmjax.report` builds a `Table` from result.json files; this module only formats it.
Output is deterministic (no dates, no dict-order dependence), so committed tables rebuild
byte for byte.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
import sys
from typing import Any, Dict, List, Optional, Sequence

from ltmjax.errors import ConfigError

MISSING = '—'


@dataclasses.dataclass
class Column:
  key: str                  # the task_label
  task: str                 # the task name (registry key)
  metric: str
  higher_is_better: bool
  percent: bool
  configs: List[Dict[str, Any]]
  benchmark: str = ''       # the published benchmark whose average this column enters
  chance: Optional[float] = None        # chance / memoryless value (display units), if known
  eval_examples: Optional[int] = None   # examples behind each run's number (noise at chance)


@dataclasses.dataclass
class Entry:
  mean: float = math.nan    # in display units (percent for accuracies)
  std: float = math.nan
  n: int = 0
  text: Optional[str] = None  # a published non-number such as 'FAIL'


@dataclasses.dataclass
class Row:
  label: str
  entries: Dict[str, Entry]
  tag: Optional[str] = None   # None for our runs; 'published' / 'analytic' / 'reference'
  note: Optional[int] = None  # citation number
  contender: bool = True      # competes for the best mark
  avg: Dict[str, float] = dataclasses.field(default_factory=dict)  # benchmark header -> mean
  measured: bool = True       # our runs (mean ± std (n)); False: a published number


@dataclasses.dataclass
class Benchmark:
  """An average column: the mean over the `tasks` columns tagged `key` (see report)."""
  key: str                  # the tag in result.json, e.g. 'lra'
  header: str               # e.g. 'LRA Avg'
  tasks: int                # how many tasks the published average covers
  footnote: str


@dataclasses.dataclass
class Table:
  columns: List[Column]
  rows: List[Row]
  benchmarks: List[Benchmark]  # the average columns shown, after the task columns
  best: Dict[str, List[int]]   # column key (or benchmark header) -> indices of the best rows
  citations: List[str]


def is_percent(metric: str) -> bool:
  """Accuracy-like metrics print as percentages."""
  return 'accuracy' in metric or metric in ('success', 'acc')


def natural_key(text: str):
  """Sort key that orders 'T=100' before 'T=1000'."""
  return [(0, int(p), '') if p.isdigit() else (1, 0, p.lower()) for p in re.split(r'(\d+)', text)]


def mean_std(values: Sequence[float]):
  """(mean, sample std with ddof=1; 0 for one value)."""
  n = len(values)
  mean = sum(values) / n
  std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
  return mean, std


def clear_best(scored: Sequence[tuple], higher_is_better: bool, chance: Optional[float] = None,
               chance_noise: float = 0.0) -> List[int]:
  """The rows that earn the best mark: [(row index, mean, std)] -> the indices of the best mean
  (ties share it), or [] where the best is within one std of the next value (the larger of
  the two stds) or not beyond `chance` by more than max(its std, `chance_noise`)."""
  scored = [(i, v, 0.0 if s is None or math.isnan(s) else s) for i, v, s in scored
            if v is not None and not math.isnan(v)]
  if not scored:
    return []
  sign = 1.0 if higher_is_better else -1.0
  target = max(sign * v for _, v, _ in scored)
  top = [(i, s) for i, v, s in scored if sign * v == target]
  spread = max(s for _, s in top)
  rest = [(sign * v, s) for _, v, s in scored if sign * v != target]
  if rest:
    nxt, nxt_std = max(rest)
    if target - nxt <= max(spread, nxt_std):
      return []
  if chance is not None and target - sign * chance <= max(spread, chance_noise):
    return []
  return [i for i, _ in top]


def chance_noise(col: 'Column') -> float:
  """Two binomial stds of an accuracy at chance over the column's eval examples (display
  units): a score this close to chance is noise. 0 where not an accuracy or unknown."""
  if col.chance is None or not col.percent or not col.eval_examples:
    return 0.0
  p = col.chance / 100.0
  return 200.0 * math.sqrt(p * (1.0 - p) / col.eval_examples)


def best_rows(rows: Sequence['Row'], col: 'Column') -> List[int]:
  """The rows of `rows` bold in column `col` (see `clear_best`); only contenders compete."""
  scored = []
  for i, row in enumerate(rows):
    e = row.entries.get(col.key)
    if row.contender and e is not None and e.text is None:
      scored.append((i, e.mean, e.std if row.measured else 0.0))
  return clear_best(scored, col.higher_is_better, col.chance, chance_noise(col))


def format_number(x: float, percent: bool, digits: int = 1) -> str:
  """Percentages with `digits` decimals, other values with 4 (scientific below 1e-3)."""
  if math.isnan(x):
    return 'nan'
  if percent:
    return f'{x:.{digits}f}'
  if x == 0 or 1e-3 <= abs(x) < 1e5:
    return f'{x:.4f}'
  return f'{x:.2e}'


def _cell_text(entry: Optional[Entry], col: Column, measured: bool) -> str:
  if entry is None:
    return MISSING
  if entry.text is not None:
    return entry.text
  if not measured:   # as the paper prints it: two decimals for percentages
    return format_number(entry.mean, col.percent, digits=2)
  mean = format_number(entry.mean, col.percent)
  if entry.n > 1:
    return f'{mean} ± {format_number(entry.std, col.percent)} ({entry.n})'
  return f'{mean} ({entry.n})'


def _row_label(row: Row) -> str:
  return row.label if row.tag is None else f'{row.label} ({row.tag})'


def _grid(table: Table):
  """(header, body) of display strings and a parallel grid of best flags."""
  header = ['Model'] + [c.key for c in table.columns] + [b.header for b in table.benchmarks]
  body, flags = [], []
  for i, row in enumerate(table.rows):
    cells, marks = [], []
    for col in table.columns:
      cells.append(_cell_text(row.entries.get(col.key), col, row.measured))
      marks.append(i in table.best.get(col.key, []))
    for b in table.benchmarks:
      avg = row.avg.get(b.header)
      cells.append(MISSING if avg is None else f'{avg:.{1 if row.measured else 2}f}')
      marks.append(i in table.best.get(b.header, []))
    body.append(cells)
    flags.append(marks)
  return header, body, flags


def _legend(table: Table) -> List[str]:
  """'<column>: <metric> (%), higher is better, chance 12.50' per column; one line for all
  when every column says the same (e.g. the lengths of a BABILong-layout table)."""
  def what(c):
    unit = ' (%)' if c.percent else ''
    text = f'{c.metric}{unit}, {"higher" if c.higher_is_better else "lower"} is better'
    if c.chance is not None:
      text += f', {"chance" if c.percent else "memoryless"} {format_number(c.chance, c.percent, 2)}'
    return text
  kinds = {what(c) for c in table.columns}
  if len(table.columns) > 1 and len(kinds) == 1:
    return [f'all columns: {kinds.pop()}']
  return [f'{c.key}: {what(c)}' for c in table.columns]


LEGEND = ('Mean ± std over n seeds (n in brackets). Bold: the best of a column, only where it '
          'beats the next by more than one std and chance by more than its noise (one std, and '
          'two binomial stds of an accuracy at chance over the eval examples).')


def render_md(table: Table) -> str:
  header, body, flags = _grid(table)
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' + '---:|' * (len(header) - 1)]
  for row, cells, marks in zip(table.rows, body, flags):
    label = _row_label(row) + (f' [{row.note}]' if row.note else '')
    shown = [f'**{t}**' if m else t for t, m in zip(cells, marks)]
    lines.append('| ' + ' | '.join([label] + shown) + ' |')
  lines += ['', LEGEND + ' ' + '; '.join(_legend(table)) + '.']
  lines += [f'{b.header}: {b.footnote}' for b in table.benchmarks]
  lines += [f'[{i}] {c}' for i, c in enumerate(table.citations, 1)]
  return '\n'.join(lines) + '\n'


def _tex_escape(text: str) -> str:
  table = {'\\': r'\textbackslash{}', '&': r'\&', '%': r'\%', '$': r'\$', '#': r'\#',
           '_': r'\_', '{': r'\{', '}': r'\}', '~': r'\textasciitilde{}', '^': r'\^{}',
           '—': '---', '±': '$\\pm$'}
  return ''.join(table.get(ch, ch) for ch in text)


def render_tex(table: Table) -> str:
  header, body, flags = _grid(table)
  lines = ['% Generated by ltmjax.report; needs \\usepackage{booktabs}.',
           '\\begin{tabular}{l' + 'c' * (len(header) - 1) + '}', '\\toprule',
           ' & '.join(_tex_escape(h) for h in header) + ' \\\\', '\\midrule']
  for row, cells, marks in zip(table.rows, body, flags):
    label = _tex_escape(_row_label(row)) + (f'$^{{{row.note}}}$' if row.note else '')
    shown = [f'\\textbf{{{_tex_escape(t)}}}' if m else _tex_escape(t) for t, m in zip(cells, marks)]
    lines.append(' & '.join([label] + shown) + ' \\\\')
  lines += ['\\bottomrule', '\\end{tabular}']
  notes = [_tex_escape(LEGEND + ' ' + '; '.join(_legend(table)) + '.') + '\\par']
  notes += [f'{_tex_escape(b.header)}: {_tex_escape(b.footnote)}\\par' for b in table.benchmarks]
  notes += [f'$^{{{i}}}$ {_tex_escape(c)}\\par' for i, c in enumerate(table.citations, 1)]
  lines += ['', '{\\footnotesize'] + notes + ['}']
  return '\n'.join(lines) + '\n'


def render_csv(table: Table) -> str:
  """One line per row: mean, std, n and a best flag (1/0) per column, numbers unrounded."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  header = ['model', 'source']
  for c in table.columns:
    unit = ' (%)' if c.percent else ''
    header += [f'{c.key} {c.metric}{unit}', f'{c.key} std', f'{c.key} n', f'{c.key} best']
  for b in table.benchmarks:
    header += [b.header, f'{b.header} best']
  writer.writerow(header)
  for i, row in enumerate(table.rows):
    source = 'ours' if row.tag is None else f'{row.tag}: {table.citations[row.note - 1]}'
    line = [row.label, source]
    for c in table.columns:
      e = row.entries.get(c.key)
      if e is None:
        line += ['', '', '', '']
        continue
      mean = e.text if e.text is not None else f'{e.mean:.6g}'
      std = '' if (not row.measured or e.text is not None) else f'{e.std:.6g}'
      line += [mean, std, e.n if row.measured else '', int(i in table.best.get(c.key, []))]
    for b in table.benchmarks:
      avg = row.avg.get(b.header)
      line += ['' if avg is None else f'{avg:.6g}', int(i in table.best.get(b.header, []))]
    writer.writerow(line)
  return out.getvalue()


RENDERERS = {'md': render_md, 'tex': render_tex, 'csv': render_csv}


def render(table: Table, fmt: str) -> str:
  if fmt not in RENDERERS:
    raise ValueError(f'unknown format {fmt!r}; known: {", ".join(sorted(RENDERERS))}')
  return RENDERERS[fmt](table)


def emit(text: str, out: Optional[str] = None) -> None:
  """Writes a rendered table to the file `out`, or to stdout when `out` is None."""
  if out:
    try:
      with open(out, 'w') as f:
        f.write(text)
    except OSError as e:
      raise ConfigError(f'--out {out}: cannot write it ({e.strerror}); give a file in an '
                        'existing, writable folder') from None
  else:
    sys.stdout.write(text)
