"""result.json files -> the paper-style comparison table (Markdown, LaTeX, CSV).

    python -m ltmjax.report results/quickstart --format md [--out FILE] [--published]

Rows are models (`model_label`), columns are tasks (`task_label`); each cell is the mean
± std (sample std, ddof=1) over seeds of the task's `primary_metric`, followed by the number
of seeds, e.g. `98.7 ± 0.3 (3)`. Accuracies print as percentages, other metrics (MSE,
loss, bpc) as numbers. The best entry of each column is bold (md/tex) or flagged (csv),
with `higher_is_better` from result.json. When every column is an accuracy, an 'Avg'
column is added as the Long Range Arena paper prints it: the mean over tasks, for rows that
have every task (otherwise '—'). `--published` adds the reference rows of
`ltmjax/published.json` (only their values for columns present here, each row cited).
Only result.json files with "status": "complete" are read; nothing is ever guessed:
a missing cell is '—'. Output is deterministic, so committed tables rebuild byte for byte.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence

MISSING = '—'
MODEL_ORDER = ('lstm', 'gru', 'transformer', 'ltmt')
TASK_ORDER = ('copy', 'adding', 'selective_copy', 'mqar', 'listops', 'text', 'retrieval', 'image',
              'cifar10', 'pathfinder', 'pathx', 'mnist', 'permuted_mnist', 'fashion_mnist',
              'char_lm')   # LRA's column order for its tasks; other tasks follow by name
PUBLISHED_PATH = os.path.join(os.path.dirname(__file__), 'published.json')


@dataclasses.dataclass
class Column:
  key: str                  # the task_label
  task: str                 # the task name (registry key)
  metric: str
  higher_is_better: bool
  percent: bool
  configs: List[Dict[str, Any]]


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
  tag: Optional[str] = None   # None for our runs, 'published' / 'analytic' for references
  note: Optional[int] = None  # citation number
  contender: bool = True      # competes for the best mark
  avg: Optional[float] = None


@dataclasses.dataclass
class Table:
  columns: List[Column]
  rows: List[Row]
  show_avg: bool
  best: Dict[str, List[int]]  # column key (or 'Avg') -> indices of the best rows
  citations: List[str]


def is_percent(metric: str) -> bool:
  """Accuracy-like metrics print as percentages."""
  return 'accuracy' in metric or metric in ('success', 'acc')


def natural_key(text: str):
  """Sort key that orders 'T=100' before 'T=1000'."""
  return [(0, int(p), '') if p.isdigit() else (1, 0, p.lower()) for p in re.split(r'(\d+)', text)]


def normalise(name: str) -> str:
  return re.sub(r'[^a-z0-9]', '', str(name).lower())


def load_results(root: str) -> List[Dict[str, Any]]:
  """Every complete result.json under `root` (recursively), in sorted path order."""
  results = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    if 'result.json' not in filenames:
      continue
    path = os.path.join(dirpath, 'result.json')
    try:
      with open(path) as f:
        result = json.load(f)
    except (OSError, ValueError) as e:
      print(f'report: skipping unreadable {path}: {e}', file=sys.stderr)
      continue
    if result.get('status') == 'complete':
      result['_path'] = path
      results.append(result)
  return sorted(results, key=lambda r: r['_path'])


def load_published(path: Optional[str] = None) -> Dict[str, Any]:
  with open(path or PUBLISHED_PATH) as f:
    return json.load(f)


def _config_value(config: Dict[str, Any], dotted: str):
  value = config
  for part in dotted.split('.'):
    if not isinstance(value, dict) or part not in value:
      return None
    value = value[part]
  return value


def _mean_std(values: Sequence[float]):
  n = len(values)
  mean = sum(values) / n
  std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
  return mean, std


def _columns(results, metric: Optional[str]) -> List[Column]:
  by_label: Dict[str, Column] = {}
  for r in results:
    col = by_label.get(r['task_label'])
    if col is None:
      name = metric or r['primary_metric']
      hib = r['higher_is_better'] if metric is None else is_percent(metric)
      col = by_label[r['task_label']] = Column(r['task_label'], r['task'], name, bool(hib),
                                               is_percent(name), [])
    col.configs.append(r.get('config', {}))
  order = {t: i for i, t in enumerate(TASK_ORDER)}
  return sorted(by_label.values(),
                key=lambda c: (order.get(normalise(c.key), order.get(c.task, len(order))), c.task,
                               natural_key(c.key)))


def _our_rows(results, columns) -> List[Row]:
  samples: Dict[str, Dict[str, List[float]]] = {}
  rank: Dict[str, int] = {}
  metric_of = {c.key: c for c in columns}
  for r in results:
    col = metric_of[r['task_label']]
    value = r.get('metrics', {}).get(col.metric)
    rank[r['model_label']] = min(rank.get(r['model_label'], len(MODEL_ORDER)),
                                 MODEL_ORDER.index(r['model']) if r['model'] in MODEL_ORDER
                                 else len(MODEL_ORDER))
    per_col = samples.setdefault(r['model_label'], {})
    if value is not None:
      per_col.setdefault(col.key, []).append(float(value) * (100.0 if col.percent else 1.0))
  rows = []
  for label in sorted(samples, key=lambda m: (rank[m], natural_key(m))):
    entries = {}
    for key, values in samples[label].items():
      mean, std = _mean_std(values)
      entries[key] = Entry(mean, std, len(values))
    rows.append(Row(label, entries))
  return rows


def _published_rows(published, columns, citations: List[str]) -> List[Row]:
  aliases: Dict[str, str] = {}
  for canonical, names in published.get('aliases', {}).items():
    for name in [canonical] + list(names):
      aliases[normalise(name)] = normalise(canonical)
  rows = []
  for spec in published.get('rows', []):
    values = {normalise(k): v for k, v in spec['values'].items()}
    entries, matched = {}, set()
    for col in columns:
      merged = {}
      # A label that names a published column (Path-X, ListOps) is matched alone; otherwise
      # the task-wide value first, then the exact task label's (more specific) value.
      label_key = normalise(col.key)
      names = (col.key,) if label_key in aliases else (col.task, col.key)
      for name in names:
        key = aliases.get(normalise(name), normalise(name))
        value = values.get(key)
        if value is None:
          continue
        when = value.get('when', {})
        if all(_config_value(c, k) == v for c in col.configs for k, v in when.items()):
          merged.update(value)
          matched.add(key)
      if col.metric in merged:
        v = merged[col.metric]
        entries[col.key] = Entry(float(v), n=0) if isinstance(v, (int, float)) else Entry(text=str(v))
    if not entries:
      continue
    # The published average holds only when every task it averages over is a column here.
    numeric = {k for k, v in values.items()
               if any(isinstance(x, (int, float)) for m, x in v.items() if m != 'when')}
    avg = spec.get('avg') if numeric <= matched else None
    text = published['sources'][spec['source']]
    if text not in citations:
      citations.append(text)
    rows.append(Row(spec['label'], entries, tag=spec.get('tag', 'published'),
                    note=citations.index(text) + 1, contender=spec.get('contender', True),
                    avg=avg))
  return rows


def build_table(results: List[Dict[str, Any]], *, published: Optional[Dict[str, Any]] = None,
                metric: Optional[str] = None) -> Table:
  """The comparison table of `results` (result.json dicts), optionally with published rows.

  Args:
    results: result.json contents (as from `load_results`).
    published: the content of published.json, or None for no reference rows.
    metric: show this metric in every column instead of each task's primary metric.
  Returns:
    A `Table`; `render(table, fmt)` prints it.
  """
  columns = _columns(results, metric)
  rows = _our_rows(results, columns)
  citations: List[str] = []
  if published:
    rows += _published_rows(published, columns, citations)
  show_avg = len(columns) >= 2 and all(c.percent and c.higher_is_better for c in columns)
  if show_avg:
    for row in rows:
      if row.tag is None and all(not math.isnan(row.entries.get(c.key, Entry()).mean)
                                 for c in columns):
        row.avg = sum(row.entries[c.key].mean for c in columns) / len(columns)
  else:
    for row in rows:
      row.avg = None
  best = {}
  for key, hib in [(c.key, c.higher_is_better) for c in columns] + [('Avg', True)]:
    scored = [(i, (r.avg if key == 'Avg' else r.entries.get(key, Entry()).mean))
              for i, r in enumerate(rows) if r.contender]
    scored = [(i, v) for i, v in scored if v is not None and not math.isnan(v)]
    if scored:
      target = (max if hib else min)(v for _, v in scored)
      best[key] = [i for i, v in scored if v == target]
  return Table(columns, rows, show_avg, best, citations)


def format_number(x: float, percent: bool, digits: int = 1) -> str:
  """Percentages with `digits` decimals, other values with 4 (scientific below 1e-3)."""
  if math.isnan(x):
    return 'nan'
  if percent:
    return f'{x:.{digits}f}'
  if x == 0 or 1e-3 <= abs(x) < 1e5:
    return f'{x:.4f}'
  return f'{x:.2e}'


def _cell_text(entry: Optional[Entry], col: Column, published: bool) -> str:
  if entry is None:
    return MISSING
  if entry.text is not None:
    return entry.text
  if published:   # as the paper prints it: two decimals for percentages
    return format_number(entry.mean, col.percent, digits=2)
  mean = format_number(entry.mean, col.percent)
  if entry.n > 1:
    return f'{mean} ± {format_number(entry.std, col.percent)} ({entry.n})'
  return f'{mean} ({entry.n})'


def _grid(table: Table):
  """(header, body) of display strings and a parallel grid of best flags."""
  header = ['Model'] + [c.key for c in table.columns] + (['Avg'] if table.show_avg else [])
  body, flags = [], []
  for i, row in enumerate(table.rows):
    cells, marks = [], []
    for col in table.columns:
      cells.append(_cell_text(row.entries.get(col.key), col, row.tag is not None))
      marks.append(i in table.best.get(col.key, []))
    if table.show_avg:
      digits = 2 if row.tag is not None else 1
      cells.append(MISSING if row.avg is None else f'{row.avg:.{digits}f}')
      marks.append(i in table.best.get('Avg', []))
    body.append(cells)
    flags.append(marks)
  return header, body, flags


def _legend(table: Table) -> List[str]:
  parts = []
  for c in table.columns:
    unit = ' (%)' if c.percent else ''
    parts.append(f'{c.key}: {c.metric}{unit}, {"higher" if c.higher_is_better else "lower"} is better')
  return parts


def render_md(table: Table) -> str:
  header, body, flags = _grid(table)
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' + '---:|' * (len(header) - 1)]
  for row, cells, marks in zip(table.rows, body, flags):
    label = (row.label if row.tag is None else f'{row.label} ({row.tag})') + (f' [{row.note}]' if row.note else '')
    shown = [f'**{t}**' if m else t for t, m in zip(cells, marks)]
    lines.append('| ' + ' | '.join([label] + shown) + ' |')
  lines += ['', 'Mean ± std over seeds (number of seeds); best per column in bold. '
            + '; '.join(_legend(table)) + '.']
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
    label = _tex_escape((row.label if row.tag is None else f'{row.label} ({row.tag})')) + (f'$^{{{row.note}}}$' if row.note else '')
    shown = [f'\\textbf{{{_tex_escape(t)}}}' if m else _tex_escape(t) for t, m in zip(cells, marks)]
    lines.append(' & '.join([label] + shown) + ' \\\\')
  lines += ['\\bottomrule', '\\end{tabular}']
  if table.citations:
    lines += ['', '{\\footnotesize'] + [f'$^{{{i}}}$ {_tex_escape(c)}\\par'
                                       for i, c in enumerate(table.citations, 1)] + ['}']
  return '\n'.join(lines) + '\n'


def render_csv(table: Table) -> str:
  """One line per row: mean, std, n and a best flag (1/0) per column, numbers unrounded."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  header = ['model', 'source']
  for c in table.columns:
    unit = ' (%)' if c.percent else ''
    header += [f'{c.key} {c.metric}{unit}', f'{c.key} std', f'{c.key} n', f'{c.key} best']
  if table.show_avg:
    header += ['Avg', 'Avg best']
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
      std = '' if (row.tag is not None or e.text is not None) else f'{e.std:.6g}'
      line += [mean, std, e.n if row.tag is None else '', int(i in table.best.get(c.key, []))]
    if table.show_avg:
      line += ['' if row.avg is None else f'{row.avg:.6g}', int(i in table.best.get('Avg', []))]
    writer.writerow(line)
  return out.getvalue()


RENDERERS = {'md': render_md, 'tex': render_tex, 'csv': render_csv}


def render(table: Table, fmt: str) -> str:
  if fmt not in RENDERERS:
    raise ValueError(f'unknown format {fmt!r}; known: {", ".join(sorted(RENDERERS))}')
  return RENDERERS[fmt](table)


def report(root: str, fmt: str = 'md', *, published: bool = False,
           metric: Optional[str] = None) -> str:
  """The rendered table of every complete result.json under `root`."""
  results = load_results(root)
  return render(build_table(results, published=load_published() if published else None,
                            metric=metric), fmt)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m ltmjax.report', description=__doc__.split('\n')[0])
  parser.add_argument('root', help='directory searched recursively for result.json files')
  parser.add_argument('--format', default='md', choices=sorted(RENDERERS))
  parser.add_argument('--out', help='write here instead of stdout')
  parser.add_argument('--published', action='store_true',
                      help='add the reference rows of ltmjax/published.json')
  parser.add_argument('--metric', help="show this metric instead of each task's primary metric")
  args = parser.parse_args(argv)
  if not os.path.isdir(args.root):
    parser.error(f'{args.root} is not a directory')
  text = report(args.root, args.format, published=args.published, metric=args.metric)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(text)
  else:
    sys.stdout.write(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
