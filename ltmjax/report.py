"""result.json files -> the paper-style comparison table (Markdown, LaTeX, CSV).

    python -m ltmjax.report results/quickstart --format md [--out FILE] [--published]
                            [--reference results/quickstart]

(The BABILong layout of length sweeps, models x evaluation lengths: `python -m ltmjax.sweeps`.)

Everything a table needs comes from the result.json files (this module names no task and
no model): columns are `task_label`s ordered by `column_order` (the task family's rank in
the task registry, then its setting such as T); rows are `model_label`s ordered by
`model_order` (the model registry's order). Older files without these keys sort by label.
Each cell is the mean ± std (sample std, ddof=1) over seeds of the task's `primary_metric`,
followed by the number of seeds, e.g. `98.7 ± 0.3 (3)`. Accuracies print as percentages,
other metrics (MSE, loss, bpc) as numbers; the best entry of each column is bold (md/tex) or
flagged (csv), with `higher_is_better` from result.json.

A cell only averages runs of one configuration: runs of a (model, task) that differ in any
config key but the seed and the bookkeeping keys (IGNORED_KEYS) go to separate rows,
labelled by the keys that differ. Only runs with "status": "complete" and steps > 0 count.

Averages are computed as the published tables compute them: a benchmark average (e.g. 'LRA
Avg', defined in published.json with its footnote) is the mean over the columns whose
result.json carries that `benchmark` tag, shown only when the table has one column for each
of the benchmark's tasks, and only for rows with a number in every one of them. Path-X is
its own column, in no average. `--published` adds the reference rows of
`ltmjax/published.json` (their values for the columns present here, each row cited; a value
of another setting, e.g. LRA's ListOps beside a shorter ListOps, only in the rows tagged
'reference, different setting' at the end, where its 'otherwise' says so);
`--reference DIR` adds, under each row, the same row from other (e.g. committed) results.
Nothing is ever guessed: a missing cell is '—'. Output is deterministic, so committed
tables rebuild byte for byte.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ltmjax.tables import (MISSING, RENDERERS, Benchmark, Column, Entry, Row,  # noqa: F401
                           Table, format_number, is_percent, mean_std, natural_key, render)
from ltmjax import tables
from ltmjax.errors import ArgumentParser, ConfigError, one_line_errors
from ltmjax.workdir import flatten
from ltmjax.published_rows import (  # noqa: F401  (load_published: the CLIs' entry point)
    DIFFERENT_SETTING, averages, cite, config_value, load_published, normalise, published_rows)

# Config keys that never split a row: the seed, and what only says where or how often
# a run logs and saves (a workdir-like path, a data folder, the checkpoint cadence) or on
# which devices it ran (the data a run sees does not depend on the device layout).
IGNORED_KEYS = re.compile(r'^(seed|train\.(progress|log_every)|ckpt\..*|parallel\..*'
                          r'|.*(dir|_path))$')

# Config keys whose value names a row's variant in words: 'LTM-T (associative, unit memory)',
# not 'LTM-T (model.memory_mode="associative", model.memory_norm="unit")'.
VALUE_NAMES_VARIANT = {'model.memory_mode': '{}', 'model.memory_norm': '{} memory'}


class ReportError(ConfigError):
  """The results cannot give a table that is right; the one-line message says what to do."""


def is_finished(result: Dict[str, Any]) -> bool:
  """Whether a run may enter a table: "status": "complete" and at least one step trained."""
  return result.get('status') == 'complete' and int(result.get('steps') or 0) > 0


def load_results(root: str) -> List[Dict[str, Any]]:
  """Every finished result.json under `root` (recursively), in sorted path order."""
  results, left_out = [], 0
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
    if is_finished(result):
      result['_path'] = path
      results.append(result)
    elif result.get('status') == 'complete':   # complete with 0 steps: say so, once
      left_out += 1
  if left_out:
    print(f'report: left out {left_out} run(s) under {root} marked complete with 0 steps',
          file=sys.stderr)
  results = sorted(results, key=lambda r: r['_path'])
  check_one_run_per_seed(results)
  return results


def run_key(result: Dict[str, Any]):
  """What makes a run one sample of a table cell: its config without the seed and the
  bookkeeping keys (IGNORED_KEYS), and its seed."""
  seed = result.get('seed', result.get('config', {}).get('seed'))
  return (result.get('model_label'), result.get('task_label'), _signature(result), seed)


def check_one_run_per_seed(results: List[Dict[str, Any]]) -> None:
  """ReportError naming both folders when two runs share a config and a seed: a cell would
  count one seed twice (e.g. a copied or resumed run beside the original)."""
  seen: Dict[Any, str] = {}
  for r in results:
    key = run_key(r)
    where = os.path.dirname(r.get('_path', '')) or '(a result without a path)'
    if key in seen:
      raise ReportError(
          f'{seen[key]} and {where} are two runs of one config with seed {key[3]}: a table '
          'would count that seed twice; move or delete one of them (or give it another seed)')
    seen[key] = where


def _signature(result) -> Tuple[Tuple[str, str], ...]:
  """The run's configuration, bookkeeping keys left out, as a hashable value."""
  flat = flatten(result.get('config', {}))
  return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in flat.items()
                      if not IGNORED_KEYS.match(k)))


def _variant_word(key: str, value) -> str:
  if key in VALUE_NAMES_VARIANT and isinstance(value, str) and value != MISSING:
    return VALUE_NAMES_VARIANT[key].format(value.strip('"'))
  return f'{key}={value}'


def _variants(results) -> Dict[int, str]:
  """id(result) -> '' or the config keys that set its runs apart from others of its cell."""
  cells: Dict[Tuple[str, str], Dict[tuple, list]] = {}
  for r in results:
    cells.setdefault((r['model_label'], r['task_label']), {}).setdefault(
        _signature(r), []).append(r)
  # The keys that split any cell of a model split all its cells, so that its rows line up
  # across columns (a cell with one configuration is still named by those keys).
  split: Dict[str, set] = {}
  for (model, _), groups in cells.items():
    flats = [dict(sig) for sig in groups]
    split.setdefault(model, set()).update(
        k for f in flats for k in f if len({f2.get(k) for f2 in flats}) > 1)
  variant = {}
  for (model, _), groups in cells.items():
    flats = {sig: dict(sig) for sig in groups}
    keys = sorted(split[model])
    for sig, runs in groups.items():
      text = ', '.join(_variant_word(k, flats[sig].get(k, MISSING)) for k in keys)
      for r in runs:
        variant[id(r)] = text
  return variant


def columns(results, metric: Optional[str] = None) -> List[Column]:
  """The table's columns: one per task_label, in `column_order` (then label) order."""
  by_label: Dict[str, Column] = {}
  orders: Dict[str, list] = {}
  for r in results:
    col = by_label.get(r['task_label'])
    if col is None:
      name = metric or r['primary_metric']
      hib = r['higher_is_better'] if metric is None else is_percent(metric)
      col = by_label[r['task_label']] = Column(r['task_label'], r['task'], name, bool(hib),
                                               is_percent(name), [], r.get('benchmark', ''),
                                               chance=_chance(r, name))
    elif col.benchmark != r.get('benchmark', ''):
      col.benchmark = ''   # runs that disagree about the benchmark enter no average
    col.configs.append(r.get('config', {}))
    col.eval_examples = min(filter(None, (col.eval_examples, _eval_examples(r))), default=None)
    if r.get('column_order') is not None:
      orders.setdefault(col.key, []).append(list(r['column_order']))

  def order(c: Column):
    known = orders.get(c.key)
    return (0, min(known), natural_key(c.key)) if known else (1, [], natural_key(c.key))
  return sorted(by_label.values(), key=order)


def _chance(result: Dict[str, Any], metric: str) -> Optional[float]:
  """The run's analytic chance / memoryless value of `metric` (display units), or None."""
  refs = result.get('reference_metrics') or {}
  for name in (f'chance_{metric}', f'memoryless_{metric}'):
    if isinstance(refs.get(name), (int, float)):
      return float(refs[name]) * (100.0 if is_percent(metric) else 1.0)
  return None


def _eval_examples(result: Dict[str, Any]) -> Optional[int]:
  """How many examples the reported metric averages (`_eval_examples` of a length sweep's
  row, else train.eval_examples), or None where not recorded."""
  n = result.get('_eval_examples') or (result.get('config', {}).get('train') or {}).get(
      'eval_examples')
  return int(n) if isinstance(n, (int, float)) and n > 0 else None


def _model_rank(results, label_of) -> Dict[Any, float]:
  """Row key -> the smallest `model_order` of its runs (inf where older files lack it)."""
  rank: Dict[Any, float] = {}
  for r in results:
    order = r.get('model_order')
    key = label_of(r)
    rank[key] = min(rank.get(key, math.inf), math.inf if order is None else order)
  return rank


def model_labels_in_order(results) -> List[str]:
  """The `model_label`s of `results` in table order: `model_order`, then the label."""
  rank = _model_rank(results, lambda r: r['model_label'])
  return sorted(rank, key=lambda m: (rank[m], natural_key(m)))


def _measured_rows(results, columns, configs: Optional[dict] = None) -> List[Row]:
  """One row per (model label, configuration variant), in model-registry order; `configs`,
  if given, gets (row label, column key) -> the set of run configurations in that cell."""
  metric_of = {c.key: c for c in columns}
  variant = _variants(results)
  samples: Dict[Tuple[str, str], Dict[str, List[float]]] = {}
  results = [r for r in results if r['task_label'] in metric_of]
  rank = _model_rank(results, lambda r: (r['model_label'], variant[id(r)]))
  for r in results:
    col = metric_of[r['task_label']]
    key = (r['model_label'], variant[id(r)])
    if configs is not None:
      label = f'{key[0]} ({key[1]})' if key[1] else key[0]
      configs.setdefault((label, col.key), set()).add(_signature(r))
    value = r.get('metrics', {}).get(col.metric)
    per_col = samples.setdefault(key, {})
    if value is not None:
      per_col.setdefault(col.key, []).append(float(value) * (100.0 if col.percent else 1.0))
  rows = []
  for key in sorted(samples, key=lambda k: (rank[k], natural_key(k[0]), k[1] != '',
                                            natural_key(k[1]))):
    entries = {}
    for col_key, values in samples[key].items():
      mean, std = mean_std(values)
      entries[col_key] = Entry(mean, std, len(values))
    label, variant_text = key
    rows.append(Row(f'{label} ({variant_text})' if variant_text else label, entries))
  return rows


def reference_note(results: List[Dict[str, Any]], where: str) -> str:
  """The citation of reference rows: where they are and the git revisions that made them."""
  revisions = sorted({str(r.get('git_revision') or 'unknown') for r in results})
  return f'reference results in {where}, made at git revision {", ".join(revisions)}'


def build_table(results: List[Dict[str, Any]], *, published: Optional[Dict[str, Any]] = None,
                metric: Optional[str] = None,
                reference: Optional[List[Dict[str, Any]]] = None,
                reference_from: str = 'the reference directory',
                benchmarks: Optional[Dict[str, Any]] = None) -> Table:
  """The comparison table of `results` (result.json dicts), optionally with published rows.

  Args:
    results: result.json contents (as from `load_results`); unfinished runs are left out.
    published: the content of published.json, or None for no reference rows.
    metric: show this metric in every column instead of each task's primary metric.
    reference: other results (e.g. the committed ones) shown under our row of the same
      label, tagged 'reference' and cited with `reference_from` and their git revisions.
    benchmarks: average definitions; default: the 'benchmarks' of published.json.
  Returns:
    A `Table`; `render(table, fmt)` prints it.
  """
  results = [r for r in results if is_finished(r)]
  cols = columns(results, metric)
  ours_configs: Dict[tuple, set] = {}
  rows = _measured_rows(results, cols, ours_configs)
  citations: List[str] = []
  reference = [r for r in reference or [] if is_finished(r)
               and r['task_label'] in {c.key for c in cols}]
  if reference:
    note = cite(reference_note(reference, reference_from), citations)
    ref_configs: Dict[tuple, set] = {}
    ref_rows = _measured_rows(reference, cols, ref_configs)
    for ref in ref_rows:
      # A reference trained with another configuration than our row of its label says so.
      other = any(ref_configs[k] != ours_configs[k] for k in ref_configs
                  if k[0] == ref.label and k in ours_configs)
      ref.tag = 'reference, other config' if other else 'reference'
      ref.note, ref.contender = note, False
    ours = [r.label for r in rows]
    merged = []
    for row in rows:
      merged += [row] + [ref for ref in ref_rows if ref.label == row.label]
    rows = merged + [ref for ref in ref_rows if ref.label not in ours]
  if published:
    rows += published_rows(published, cols, citations)
  if benchmarks is None:
    benchmarks = load_published().get('benchmarks', {})
  shown = averages(rows, cols, benchmarks)
  best = {c.key: tables.best_rows(rows, c) for c in cols}
  for b in shown:
    scored = [(i, r.avg[b.header]) for i, r in enumerate(rows)
              if r.contender and r.avg.get(b.header) is not None]
    best[b.header] = tables.clear_best([(i, v, 0.0) for i, v in scored], True)
  return Table(cols, rows, shown, best, citations)


def report(root: str, fmt: str = 'md', *, published: bool = False,
           metric: Optional[str] = None, reference: Optional[str] = None) -> str:
  """The rendered table of every finished result.json under `root`."""
  results = load_results(root)
  if not results:
    raise ReportError(f'no finished run (result.json with "status": "complete") under {root}: '
                      'point it at a suite folder such as runs/<suite> or results/<suite>')
  known = sorted({k for r in results for k in r.get('metrics', {})})
  if metric is not None and metric not in known:
    raise ReportError(f'no run under {root} has the metric {metric!r}; known: '
                      + ', '.join(known))
  refs = load_results(reference) if reference else None
  return render(build_table(results, metric=metric,
                            published=load_published() if published else None,
                            reference=refs, reference_from=reference or ''), fmt)


@one_line_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = ArgumentParser(prog='python -m ltmjax.report', description=__doc__.split('\n')[0])
  parser.add_argument('root', help='directory searched recursively for result.json files')
  parser.add_argument('--format', default='md', choices=sorted(RENDERERS))
  parser.add_argument('--out', help='write here instead of stdout')
  parser.add_argument('--published', action='store_true',
                      help='add the reference rows of ltmjax/published.json')
  parser.add_argument('--metric', help="show this metric instead of each task's primary metric")
  parser.add_argument('--reference', help='results to show under each row (e.g. committed ones)')
  args = parser.parse_args(argv)
  for path in (args.root, args.reference):
    if path is not None and not os.path.isdir(path):
      raise ReportError(f'{path} is not a directory: give a folder of runs, e.g. '
                        'results/quickstart')
  text = report(args.root, args.format, published=args.published, metric=args.metric,
                reference=args.reference)
  tables.emit(text, args.out)
  return 0


if __name__ == '__main__':
  sys.exit(main())
