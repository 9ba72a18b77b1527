"""Figures of a suite (PNG and PDF, matplotlib without a display).

    python -m ltmjax.figures results/<suite> [--out DIR]

- learning curves: the eval primary metric against the step, one line per model (mean over
  seeds, shaded ± std), one figure per task column, from each run's metrics.jsonl;
- metric against sequence length (result.json's `seq_len`) for tasks run at several lengths;
- training steps/second and peak memory against length, from efficiency records
  (experiments/efficiency.py);
- heatmaps of the BABILong layout (`ltmjax.sweeps`): accuracy x evaluation length x model,
  one per trained task, from each run's length_sweep.json.
Figures are drawn on `matplotlib.figure.Figure` objects (no pyplot state).
"""
from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from typing import Dict, List, Optional, Sequence

from matplotlib.figure import Figure

from ltmjax import report, sweeps
from ltmjax.errors import ArgumentParser, ConfigError, one_line_errors
from ltmjax.tables import format_number, is_percent, mean_std


def slug(text: str) -> str:
  return re.sub(r'[^A-Za-z0-9]+', '_', text).strip('_').lower()


def save(fig: Figure, stem: str) -> List[str]:
  """Writes STEM.png and STEM.pdf (without time stamps, so reruns give the same PDF)."""
  os.makedirs(os.path.dirname(stem) or '.', exist_ok=True)
  paths = [stem + '.png', stem + '.pdf']
  fig.savefig(paths[0], dpi=150, bbox_inches='tight', metadata={'Software': None})
  fig.savefig(paths[1], bbox_inches='tight', metadata={'CreationDate': None, 'Creator': None,
                                                       'Producer': None})
  return paths


def _color(model_label: str, labels: Sequence[str]) -> str:
  return f"C{list(labels).index(model_label) % 10}"


def read_eval_curve(run_dir: str, metric: str) -> Dict[int, float]:
  """step -> eval `metric` from RUN_DIR/metrics.jsonl (a resumed run's repeated steps: last wins)."""
  curve = {}
  try:
    with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
      for line in f:
        try:
          rec = json.loads(line)
        except ValueError:
          continue  # a line cut short by a crash
        if rec.get('split') == 'eval' and metric in rec:
          curve[int(rec['step'])] = float(rec[metric])
  except OSError:
    pass
  return curve


def models_in_order(results) -> List[str]:
  """The model labels of `results` in table order (their `model_order`, then by label)."""
  return report.model_labels_in_order(results)


def _figure(runs):
  """(metric, scale, figure, axes) for a plot of `runs`' primary metric (accuracies in %)."""
  metric = runs[0]['primary_metric']
  fig = Figure(figsize=(5, 3.5))
  return metric, 100.0 if is_percent(metric) else 1.0, fig, fig.add_subplot()


def _finish(fig, ax, xlabel: str, metric: str, scale: float, title: str, stem: str) -> List[str]:
  """Labels, grid and legend of a `_figure`, then its files."""
  ax.set_xlabel(xlabel)
  ax.set_ylabel(metric + (' (%)' if scale != 1.0 else ''))
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  return save(fig, stem)


def learning_curves(results: List[dict], out_dir: str) -> List[str]:
  """One figure per task column: eval primary metric vs step, a line per model."""
  paths = []
  labels = models_in_order(results)
  for task_label in [c.key for c in report.columns(results)]:
    runs = [r for r in results if r['task_label'] == task_label]
    metric, scale, fig, ax = _figure(runs)
    drawn = False
    for model in [m for m in labels if any(r['model_label'] == m for r in runs)]:
      curves = [read_eval_curve(os.path.dirname(r['_path']), metric)
                for r in runs if r['model_label'] == model]
      curves = [c for c in curves if c]
      if not curves:
        continue
      steps = sorted(set().union(*curves))
      stats = [mean_std([c[s] * scale for c in curves if s in c]) for s in steps]
      mean = [m for m, _ in stats]
      ax.plot(steps, mean, marker='o', ms=3, color=_color(model, labels),
              label=f'{model} ({len(curves)})')
      if len(curves) > 1:
        ax.fill_between(steps, [m - s for m, s in stats], [m + s for m, s in stats],
                        color=_color(model, labels), alpha=0.2, lw=0)
      drawn = True
    if not drawn:
      continue
    paths += _finish(fig, ax, 'training step', metric, scale, task_label,
                     os.path.join(out_dir, f'curves_{slug(task_label)}'))
  return paths


def task_length(result: dict) -> Optional[float]:
  """The sequence length of a run's task (result.json's `seq_len`), or None if not recorded."""
  length = result.get('seq_len')
  return length if isinstance(length, (int, float)) else None


def length_sweeps(results: List[dict], out_dir: str) -> List[str]:
  """Primary metric vs sequence length, one figure per task run at two or more lengths."""
  paths = []
  labels = models_in_order(results)
  for task in sorted({r['task'] for r in results}):
    runs = [r for r in results if r['task'] == task and task_length(r) is not None]
    lengths = sorted({task_length(r) for r in runs})
    if len(lengths) < 2:
      continue
    metric, scale, fig, ax = _figure(runs)
    for model in [m for m in labels if any(r['model_label'] == m for r in runs)]:
      xs, ys, es = [], [], []
      for length in lengths:
        vals = [r['metrics'][metric] * scale for r in runs
                if r['model_label'] == model and task_length(r) == length and metric in r['metrics']]
        if vals:
          m, s = mean_std(vals)
          xs.append(length), ys.append(m), es.append(s)
      ax.errorbar(xs, ys, yerr=es, marker='o', ms=4, capsize=3, color=_color(model, labels),
                  label=model)
    ax.set_xscale('log')
    paths += _finish(fig, ax, 'sequence length', metric, scale, f'{task}: {metric} vs length',
                     os.path.join(out_dir, f'length_{slug(task)}'))
  return paths


def efficiency_figure(records: List[dict], stem: str) -> List[str]:
  """Training steps/second and peak memory against sequence length, a line per model.

  Args:
    records: efficiency records (experiments/efficiency.py): model_label, seq_len, status,
      steps_per_second, peak_memory_bytes. Failed lengths (status != 'complete') are left out.
    stem: output path without extension.
  Returns:
    The written file paths.
  """
  ok = [r for r in records if r.get('status') == 'complete']
  labels = models_in_order(ok) if ok else []
  fig = Figure(figsize=(9, 3.5))
  ax_speed, ax_mem = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
  for model in labels:
    rows = sorted((r for r in ok if r['model_label'] == model), key=lambda r: r['seq_len'])
    xs = [r['seq_len'] for r in rows]
    ax_speed.plot(xs, [r['steps_per_second'] for r in rows], marker='o', label=model,
                  color=_color(model, labels))
    ax_mem.plot(xs, [r['peak_memory_bytes'] / 2 ** 20 for r in rows], marker='o', label=model,
                color=_color(model, labels))
  for ax, ylabel in ((ax_speed, 'training steps / second'), (ax_mem, 'peak memory (MiB)')):
    ax.set_xscale('log', base=2)
    ax.set_yscale('log')
    ax.set_xlabel('sequence length')
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which='both')
  if labels:
    ax_speed.legend(fontsize=8)
  return save(fig, stem)


def length_heatmaps(tables: List['sweeps.LengthTable'], out_dir: str) -> List[str]:
  """One heatmap per trained task: models (rows) x evaluation lengths (columns), colour and
  number the mean primary metric over seeds (accuracies in %, 0-100); a length no seed
  could evaluate is grey with its reason ('OOM', ...). Only our rows, not published ones."""
  import numpy as np
  paths = []
  for t in tables:
    rows = [r for r in t.table.rows if r.measured]
    cols = t.table.columns
    if not rows or not cols:
      continue
    percent = cols[0].percent
    value_RxL = np.full((len(rows), len(cols)), np.nan)
    for i, row in enumerate(rows):
      for j, col in enumerate(cols):
        entry = row.entries.get(col.key)
        if entry is not None and entry.text is None:
          value_RxL[i, j] = entry.mean
    fig = Figure(figsize=(1.0 + 0.7 * len(cols), 1.0 + 0.45 * len(rows)))
    ax = fig.add_subplot()
    ax.set_facecolor('0.85')   # cells without a number
    limits = dict(vmin=0.0, vmax=100.0) if percent else {}
    image = ax.imshow(np.ma.masked_invalid(value_RxL), cmap='viridis', aspect='auto', **limits)
    for i, row in enumerate(rows):
      for j, col in enumerate(cols):
        entry = row.entries.get(col.key)
        if entry is None:
          continue
        text = (textwrap.fill(entry.text, 10) if entry.text is not None
                else format_number(entry.mean, percent))
        dark = entry.text is None and percent and entry.mean > 60
        ax.text(j, i, text, ha='center', va='center', fontsize=7,
                color='black' if dark or entry.text is not None else 'white')
    ax.set_xticks(range(len(cols)), [c.key for c in cols])
    ax.set_yticks(range(len(rows)), [r.label for r in rows])
    ax.set_xlabel('evaluation length (tokens)')
    ax.set_title(t.label, fontsize=9)
    fig.colorbar(image, ax=ax, label=t.metric + (' (%)' if percent else ''))
    paths += save(fig, os.path.join(out_dir, f'heatmap_{slug(t.label)}'))
  return paths


def suite_figures(suite_dir: str, out_dir: str) -> List[str]:
  """Learning curves, length sweeps and length heatmaps of every complete run under `suite_dir`."""
  results = report.load_results(suite_dir)
  return (learning_curves(results, out_dir) + length_sweeps(results, out_dir)
          + length_heatmaps(sweeps.length_tables(results), out_dir))


@one_line_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = ArgumentParser(prog='python -m ltmjax.figures', description=__doc__.split('\n')[0])
  parser.add_argument('root', help='directory searched recursively for result.json files')
  parser.add_argument('--out', help='output directory (default: ROOT/figures)')
  args = parser.parse_args(argv)
  if not os.path.isdir(args.root):
    raise ConfigError(f'{args.root} is not a directory: give a folder of runs, e.g. '
                      'results/quickstart')
  if not report.load_results(args.root):
    raise ConfigError(f'no finished run (result.json with "status": "complete") under '
                      f'{args.root}: no figures')
  paths = suite_figures(args.root, args.out or os.path.join(args.root, 'figures'))
  print('\n'.join(paths))
  return 0


if __name__ == '__main__':
  sys.exit(main())
