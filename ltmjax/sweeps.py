"""The BABILong layout: a suite's length sweeps as tables of models x evaluation lengths.

    python -m ltmjax.sweeps results/memory_cpu --format md|tex|csv [--out FILE] [--published]

Each finished run (result.json) with a `length_sweep.json` beside it (written by
`python -m ltmjax.evaluate`) gives one value per evaluated length. Runs are grouped by the
task they were trained on (`task_label`, which names the training length T); each group is
one table whose rows are models (`model_label`, in registry order; runs that differ in
config get their own rows, as in `ltmjax.report`) and whose columns are the evaluation
lengths ('1K' = 1024 tokens, '1M' = 1024^2), every group with the same columns. A cell is the
mean ± std over seeds (n) of the task's primary metric, built by `report.build_table` itself
(each length a column), so the numbers, best marks and renderers are the comparison
table's. A length no seed could evaluate shows why in a word ('OOM', 'over its positions',
...) instead of '—'. `length_rows` of published.json add cited rows for the columns
present (other model sizes: context, never a contender for the best mark).
Output is deterministic, so committed tables rebuild byte for byte.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ltmjax import published_rows, report, tables
from ltmjax.errors import ArgumentParser, ConfigError, one_line_errors
from ltmjax.tables import Column, Entry, Row, Table, _tex_escape, natural_key, render

SWEEP_FILE = 'length_sweep.json'   # as ltmjax.evaluate writes it


@dataclasses.dataclass
class LengthTable:
  """One task group: `label` (the trained task_label) and its models x lengths Table."""
  label: str
  task: str
  metric: str
  table: Table
  context: List[str] = dataclasses.field(default_factory=list)   # published, off the columns


def length_label(length: int) -> str:
  """1024 -> '1K', 1048576 -> '1M', 1536 -> '1536' (K = 1024, as --lengths reads it)."""
  length = int(length)
  if length >= 2 ** 20 and length % 2 ** 20 == 0:
    return f'{length // 2 ** 20}M'
  if length >= 1024 and length % 1024 == 0:
    return f'{length // 1024}K'
  return str(length)


def read_sweep(run_dir: str) -> Optional[Dict[str, Any]]:
  """RUN_DIR/length_sweep.json, or None (absent or unreadable: said on stderr)."""
  path = os.path.join(run_dir, SWEEP_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    print(f'report: skipping unreadable {path}: {e}', file=sys.stderr)
    return None


def merge_rows(old: List[Dict[str, Any]], new: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """The rows of two sweeps of one run, one per length, in length order: a length evaluated
  again is replaced by its new row, the others are kept."""
  by_length = {int(r['length']): r for r in old if isinstance(r, dict) and 'length' in r}
  by_length.update({int(r['length']): r for r in new})
  return [by_length[n] for n in sorted(by_length)]


def write_sweep(run_dir: str, result: Dict[str, Any]) -> Dict[str, Any]:
  """Merges `result` (a sweep: its 'lengths' rows and how they were made) into
  RUN_DIR/length_sweep.json, atomically, and returns what was written. Each row keeps the
  `options` it was evaluated with, since rows of several calls sit side by side."""
  rows = [dict(r, options=result.get('options', {})) for r in result['lengths']]
  old = read_sweep(run_dir) or {}
  merged = dict(result, lengths=merge_rows(old.get('lengths', []), rows))
  path = os.path.join(run_dir, SWEEP_FILE)
  with open(path + '.tmp', 'w') as f:
    json.dump(merged, f, indent=2, sort_keys=True)
  os.replace(path + '.tmp', path)
  return merged


def format_sweep(result: Dict[str, Any]) -> str:
  """One run's sweep (length_sweep.json's content) as a Markdown table, a row per length."""
  head = ('| length | mode | accuracy | loss | examples | wall s | tokens/s | peak RSS MiB |\n'
          '|---:|:---|---:|---:|---:|---:|---:|---:|')
  lines = [f"{result['model']} on {result['task']} (trained at {result['trained_length']})", head]
  for r in result['lengths']:
    if r['mode'] == 'skipped':
      lines.append(f"| {r['length']} | skipped: {r['reason']} | | | | | | |")
      continue
    lines.append(f"| {r['length']} | {r['mode']} | {r['accuracy']:.4f} | {r['loss']:.4f} | "
                 f"{r['examples']} | {r['wall_s']:.2f} | {r['tokens_per_s']:.0f} | "
                 f"{r['peak_rss_mb']:.0f} |")
  return '\n'.join(lines)


def short_reason(reason: str) -> str:
  """'OOM: needs ~900 MiB ...' -> 'OOM'; 'over its positions (a learned ...)' -> 'over its positions'."""
  return re.split(r'[:(]', str(reason or 'skipped'), maxsplit=1)[0].strip() or 'skipped'


def sweep_results(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """One result-like dict per (run, evaluated length): the run's result.json with the length as
  its column (`task_label` = length label, `column_order` = [length]) and that length's
  metrics; a skipped length has no metrics and `_skipped` = its reason."""
  out = []
  for r in results:
    sweep = read_sweep(os.path.dirname(r['_path']))
    for row in (sweep or {}).get('lengths', []):
      length = int(row['length'])
      item = dict(r, task_label=length_label(length), column_order=[length], seq_len=length,
                  benchmark='', _group=r['task_label'], _group_order=r.get('column_order'),
                  metrics=dict(row.get('metrics') or {}), _eval_examples=row.get('examples'))
      if row.get('mode') == 'skipped':
        item['_skipped'] = short_reason(row.get('reason', ''))
      out.append(item)
  return out


def _published_rows(published: Dict[str, Any], results, columns: List[Column],
                    citations: List[str], context: List[str]) -> List[Row]:
  """Rows of published.json's `length_rows` that match this group's task and config, for
  the lengths that are columns here; their other lengths go to `context` as lines."""
  rows = []
  for spec in published.get('length_rows', []):
    metric = spec.get('metric', 'accuracy')
    if any(r['task'] != spec['task'] or any(published_rows.config_value(r.get('config', {}), k) != v
                                            for k, v in spec.get('when', {}).items())
           for r in results) or metric != columns[0].metric:
      continue
    note = published_rows.cite(published['sources'][spec['source']], citations)
    keys = {c.key for c in columns}
    by_length = {length_label(int(k)): v for k, v in spec['values'].items()}
    entries = {k: Entry(float(v), n=0) for k, v in by_length.items() if k in keys}
    if entries:
      rows.append(Row(spec['label'], entries, tag=spec.get('tag', 'published'), note=note,
                      contender=False, measured=False))
    for length in sorted((int(k) for k in spec['values']), key=int):
      if length_label(length) not in keys:
        context.append(f'{spec["label"]}: {metric} {spec["values"][str(length)]}'
                       f'{" %" if report.is_percent(metric) else ""} at {length:,} tokens '
                       f'[{note}] ({spec.get("tag", "published")})')
  return rows


def _skip_texts(items) -> Dict[Tuple[str, str], str]:
  """(row label, column key) -> the reason of a cell that only skipped runs reached."""
  variant = report._variants(items)
  measured, skipped = set(), {}
  for r in items:
    label = f"{r['model_label']} ({variant[id(r)]})" if variant[id(r)] else r['model_label']
    if '_skipped' in r:
      skipped.setdefault((label, r['task_label']), set()).add(r['_skipped'])
    else:
      measured.add((label, r['task_label']))
  return {k: ' / '.join(sorted(v)) for k, v in skipped.items() if k not in measured}


def length_tables(results: List[Dict[str, Any]], *,
                  published: Optional[Dict[str, Any]] = None) -> List[LengthTable]:
  """The BABILong-layout tables of finished runs with length sweeps, in column order."""
  items = sweep_results([r for r in results if report.is_finished(r)])
  groups: Dict[str, list] = {}
  for item in items:
    groups.setdefault(item['_group'], []).append(item)
  lengths = sorted({int(i['column_order'][0]) for i in items})

  def group_order(label):
    orders = [i['_group_order'] for i in groups[label] if i['_group_order'] is not None]
    return (0, min(orders), natural_key(label)) if orders else (1, [], natural_key(label))

  out = []
  for label in sorted(groups, key=group_order):
    group = groups[label]
    table = report.build_table(group, benchmarks={})
    metric, hib = group[0]['primary_metric'], bool(group[0]['higher_is_better'])
    have = {c.key: c for c in table.columns}
    # Every group shows the same lengths, so the tables (and the CSV) line up.
    table.columns = [have.get(length_label(n)) or Column(
        length_label(n), group[0]['task'], metric, hib, report.is_percent(metric), [], '')
        for n in lengths]
    for (row_label, col_key), text in _skip_texts(group).items():
      for row in table.rows:
        if row.label == row_label:
          row.entries[col_key] = Entry(text=text)
    context: List[str] = []
    if published:
      table.rows += _published_rows(published, group, table.columns, table.citations, context)
    out.append(LengthTable(label, group[0]['task'], metric, table, context))
  return out


def _heading(t: LengthTable) -> str:
  return f'{t.label}: {t.metric} by evaluation length'


def render_lengths(tables: List[LengthTable], fmt: str) -> str:
  """The tables one after the other: md sections, tex tabulars with a caption line, one CSV
  whose first column names the task group."""
  if not tables:
    return ''
  if fmt == 'csv':
    lines = []
    for i, t in enumerate(tables):
      head, *body = render(t.table, 'csv').splitlines()
      lines += ([f'task,{head}'] if i == 0 else []) + [f'{_csv_field(t.label)},{b}' for b in body]
    return '\n'.join(lines) + '\n'
  if fmt == 'tex':
    return '\n'.join(f'% {t.label}\n\\paragraph{{{_tex_escape(_heading(t))}}}\n' + render(t.table, 'tex')
                      + ''.join(f'{_tex_escape(c)}\\par\n' for c in _context(t)) for t in tables)
  return '\n'.join(f'### {_heading(t)}\n\n' + render(t.table, fmt)
                   + ''.join(f'{c}\n' for c in _context(t)) for t in tables)


def _context(t: LengthTable) -> List[str]:
  if not t.context:
    return []
  return ['Published context at other lengths (other model sizes and data; not comparable '
          'claims): ' + '; '.join(t.context) + '.']


def _csv_field(text: str) -> str:
  return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def report_lengths(root: str, fmt: str = 'md', *, published: bool = False) -> str:
  """The rendered BABILong-layout tables of every finished run with a sweep under `root`."""
  return render_lengths(length_tables(report.load_results(root),
                                      published=report.load_published() if published else None),
                        fmt)


@one_line_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = ArgumentParser(prog='python -m ltmjax.sweeps',
                                   description=__doc__.split('\n')[0])
  parser.add_argument('root', help='directory searched recursively for runs with a sweep')
  parser.add_argument('--format', default='md', choices=('csv', 'md', 'tex'))
  parser.add_argument('--out', help='write here instead of stdout')
  parser.add_argument('--published', action='store_true',
                      help="add published.json's length_rows (cited context)")
  args = parser.parse_args(argv)
  if not os.path.isdir(args.root):
    raise ConfigError(f'{args.root} is not a directory: give a folder of runs, e.g. '
                      'results/memory_cpu')
  text = report_lengths(args.root, args.format, published=args.published)
  if not text:
    raise ConfigError(f'no finished run with a {SWEEP_FILE} under {args.root}: run '
                 'python -m ltmjax.evaluate --workdir RUN --lengths ... first')
  tables.emit(text, args.out)
  return 0


if __name__ == '__main__':
  sys.exit(main())
