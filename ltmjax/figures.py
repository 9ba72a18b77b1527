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
from typing import Dict, List, Optional, Sequence, Tuple

from matplotlib.figure import Figure

from ltmjax import report, sweeps
from ltmjax.errors import ArgumentParser, ConfigError, one_line_errors
from ltmjax.tables import format_number, is_percent, mean_std, natural_key


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


# Words for metric names on axes (anything else: its name with spaces).
METRIC_WORDS = {'accuracy': 'accuracy', 'recall_accuracy': 'recall accuracy',
                'digit_accuracy': 'digit accuracy', 'mse': 'mean squared error',
                'loss': 'cross-entropy loss', 'bpc': 'bits per character'}
MARKERS = 'osD^vPX*'
LINESTYLES = ('-', '--', '-.', ':')


def axis_label(metric: str) -> str:
  """'recall_accuracy' -> 'recall accuracy (%)', 'mse' -> 'mean squared error'."""
  words = METRIC_WORDS.get(metric, metric.replace('_', ' '))
  return words + (' (%)' if is_percent(metric) else '')


def style(model_label: str, labels: Sequence[str]) -> Dict[str, object]:
  """Colour, marker, line style and marker size of a model's line: each model differs in all
  four, and earlier models draw larger hollow markers, so identical curves stay visible
  (concentric markers, dashes over a solid line)."""
  i = list(labels).index(model_label)
  return dict(color=f'C{i % 10}', marker=MARKERS[i % len(MARKERS)],
              linestyle=LINESTYLES[i % len(LINESTYLES)], ms=max(9 - 1.7 * i, 3),
              mfc='none', mew=1.4, lw=max(2.2 - 0.4 * i, 1.0))


def _color(model_label: str, labels: Sequence[str]) -> str:
  return str(style(model_label, labels)['color'])


def reference_values(runs: Sequence[dict], metric: str) -> List[tuple]:
  """[(label, value)] of the analytic chance / memoryless values of `metric` the runs record
  (result.json's reference_metrics), e.g. ('chance', 0.125)."""
  out = {}
  for r in runs:
    refs = r.get('reference_metrics') or {}
    for kind in ('chance', 'memoryless'):
      value = refs.get(f'{kind}_{metric}')
      if isinstance(value, (int, float)):
        out[kind] = float(value)
  return sorted(out.items())


def draw_references(ax, runs: Sequence[dict], metric: str, scale: float) -> List[float]:
  """Dotted horizontal lines at the chance / memoryless values, labelled; their values."""
  values = []
  for kind, value in reference_values(runs, metric):
    shown = value * scale
    text = format_number(shown, scale != 1.0, 1) + (' %' if scale != 1.0 else '')
    ax.axhline(shown, color='0.35', ls=':', lw=1.2,
               label=f'{"chance" if kind == "chance" else "memoryless baseline"} ({text})')
    values.append(shown)
  return values


def log_if_spread(ax, values: Sequence[float], percent: bool) -> None:
  """A log y axis where the (positive, non-percent) values span a decade or more."""
  positive = [v for v in values if v is not None and v > 0]
  if not percent and positive and max(positive) / min(positive) >= 10:
    ax.set_yscale('log')


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


def row_labels(results) -> Tuple[Dict[int, str], List[str]]:
  """(id(result) -> the label of its table row, those labels in table order): the model label,
  with the config keys that set its runs apart where a model has several configurations
  (e.g. 'LTM-T (xl)' beside 'LTM-T (gated)'), so that a figure never pools two table rows."""
  variant = report._variants(results)
  label = {id(r): f"{r['model_label']} ({variant[id(r)]})" if variant[id(r)] else r['model_label']
           for r in results}
  rank = report._model_rank(results, lambda r: label[id(r)])
  return label, sorted(rank, key=lambda m: (rank[m], natural_key(m)))


def _figure(runs):
  """(metric, scale, figure, axes) for a plot of `runs`' primary metric (accuracies in %)."""
  metric = runs[0]['primary_metric']
  fig = Figure(figsize=(5.5, 3.8))
  return metric, 100.0 if is_percent(metric) else 1.0, fig, fig.add_subplot()


def _finish(fig, ax, xlabel: str, metric: str, scale: float, title: str, stem: str,
            band: bool = False) -> List[str]:
  """Labels, grid and legend of a `_figure`, then its files; `band` adds the legend entry of
  the shaded ± std bands."""
  from matplotlib.patches import Patch
  ax.set_xlabel(xlabel)
  ax.set_ylabel(axis_label(metric))
  ax.set_title(title)
  ax.grid(alpha=0.3, which='both')
  handles, labels = ax.get_legend_handles_labels()
  if band:
    handles.append(Patch(color='0.5', alpha=0.25, lw=0))
    labels.append('shaded: ± 1 std over seeds')
  ax.legend(handles, labels, fontsize=7, title='model (n = seeds)', title_fontsize=7)
  return save(fig, stem)


def learning_curves(results: List[dict], out_dir: str) -> List[str]:
  """One figure per task column: eval primary metric vs step, a line per model, the chance
  or memoryless value as a dotted line."""
  paths = []
  row, labels = row_labels(results)
  for task_label in [c.key for c in report.columns(results)]:
    runs = [r for r in results if r['task_label'] == task_label]
    metric, scale, fig, ax = _figure(runs)
    drawn, band, values = False, False, []
    for model in [m for m in labels if any(row[id(r)] == m for r in runs)]:
      curves = [read_eval_curve(os.path.dirname(r['_path']), metric)
                for r in runs if row[id(r)] == model]
      curves = [c for c in curves if c]
      if not curves:
        continue
      steps = sorted(set().union(*curves))
      stats = [mean_std([c[s] * scale for c in curves if s in c]) for s in steps]
      mean = [m for m, _ in stats]
      ax.plot(steps, mean, label=f'{model} (n={len(curves)})', **style(model, labels))
      values += mean
      if len(curves) > 1:
        ax.fill_between(steps, [m - s for m, s in stats], [m + s for m, s in stats],
                        color=_color(model, labels), alpha=0.15, lw=0)
        band = True
      drawn = True
    if not drawn:
      continue
    values += draw_references(ax, runs, metric, scale)
    log_if_spread(ax, values, scale != 1.0)
    paths += _finish(fig, ax, 'training step', metric, scale, task_label,
                     os.path.join(out_dir, f'curves_{slug(task_label)}'), band=band)
  return paths


def task_length(result: dict) -> Optional[float]:
  """The sequence length of a run's task (result.json's `seq_len`), or None if not recorded."""
  length = result.get('seq_len')
  return length if isinstance(length, (int, float)) else None


def length_sweeps(results: List[dict], out_dir: str) -> List[str]:
  """Primary metric vs sequence length, one figure per task run at two or more lengths."""
  paths = []
  row, labels = row_labels(results)
  for task in sorted({r['task'] for r in results}):
    runs = [r for r in results if r['task'] == task and task_length(r) is not None]
    lengths = sorted({task_length(r) for r in runs})
    if len(lengths) < 2:
      continue
    metric, scale, fig, ax = _figure(runs)
    values, band = [], False
    for model in [m for m in labels if any(row[id(r)] == m for r in runs)]:
      xs, ys, es, n = [], [], [], 0
      for length in lengths:
        vals = [r['metrics'][metric] * scale for r in runs
                if row[id(r)] == model and task_length(r) == length and metric in r['metrics']]
        if vals:
          m, s = mean_std(vals)
          xs.append(length), ys.append(m), es.append(s)
          n = max(n, len(vals))
      ax.errorbar(xs, ys, yerr=es, capsize=3, label=f'{model} (n={n})', **style(model, labels))
      values += ys
      band = band or n > 1
    values += draw_references(ax, runs, metric, scale)
    log_if_spread(ax, values, scale != 1.0)
    ax.set_xscale('log')
    paths += _finish(fig, ax, 'sequence length (tokens)', metric, scale,
                     f'{task}: {axis_label(metric)} against length' + (
                         ' (bars: ± 1 std over seeds)' if band else ''),
                     os.path.join(out_dir, f'length_{slug(task)}'))
  return paths


def hardware_text(records: Sequence[dict]) -> str:
  """'batch 32, one NVIDIA H100 80GB HBM3' from efficiency records (all values that occur)."""
  batch = sorted({r.get('batch_size') for r in records if r.get('batch_size')})
  kinds = sorted({f'{r.get("num_devices", 1)} x {r.get("device_kind") or r.get("device", "?")}'
                  for r in records})
  return (f'batch {", ".join(map(str, batch)) or "?"}, ' + ', '.join(kinds)).replace('1 x ', 'one ')


def efficiency_figure(records: List[dict], stem: str) -> List[str]:
  """Training steps/second and peak memory against sequence length, a line per model.

  Args:
    records: efficiency records (experiments/efficiency.py): model_label, seq_len, status,
      steps_per_second, peak_memory_bytes, batch_size, device_kind. A length that failed
      (status != 'complete', e.g. out of memory) is a cross on the top edge, with its status.
    stem: output path without extension.
  Returns:
    The written file paths.
  """
  ok = [r for r in records if r.get('status') == 'complete']
  labels = models_in_order(records) if records else []
  fig = Figure(figsize=(10, 4))
  ax_speed, ax_mem = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
  for model in labels:
    rows = sorted((r for r in ok if r['model_label'] == model), key=lambda r: r['seq_len'])
    xs = [r['seq_len'] for r in rows]
    ax_speed.plot(xs, [r['steps_per_second'] for r in rows], label=model, **style(model, labels))
    ax_mem.plot(xs, [r['peak_memory_bytes'] / 2 ** 20 for r in rows], label=model,
                **style(model, labels))
    for r in records:
      if r['model_label'] == model and r.get('status') != 'complete':
        for ax in (ax_speed, ax_mem):
          ax.plot([r['seq_len']], [1.0], marker='x', color=_color(model, labels), ms=8,
                  transform=ax.get_xaxis_transform(), clip_on=False,
                  label=f'{model}: {r.get("status", "failed")}')
  for ax, ylabel in ((ax_speed, 'training steps per second'), (ax_mem, 'peak memory (MiB)')):
    ax.set_xscale('log', base=2)
    ax.set_yscale('log')
    ax.set_xlabel('sequence length (tokens)')
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which='both')
  ax_speed.set_title('speed (higher is faster)', fontsize=9)
  ax_mem.set_title('memory (lower is smaller)', fontsize=9)
  if records:
    fig.suptitle(f'One training step (forward + backward + update), {hardware_text(records)}',
                 fontsize=10)
  if labels:
    ax_speed.legend(fontsize=8)
  return save(fig, stem)


def _text_colour(cmap, norm, value: float) -> str:
  """Black on light cells, white on dark ones (the cell colour's luminance)."""
  r, g, b, _ = cmap(norm(value))
  return 'black' if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else 'white'


def length_heatmaps(tables: List['sweeps.LengthTable'], out_dir: str) -> List[str]:
  """One heatmap per trained task: models (rows) x evaluation lengths (columns), colour and
  number the mean primary metric over seeds (accuracies in %). The colour scale spans the
  values present (and chance, marked on the colour bar), so small differences show; a cell
  without a number is hatched grey and says why: its skip reason ('OOM', 'over its
  positions', ...) or 'not run' (the length is not in that model's sweep). Only our rows."""
  import numpy as np
  from matplotlib import colormaps
  from matplotlib.colors import Normalize
  from matplotlib.patches import Rectangle
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
    chance = cols[0].chance
    bounds = [float(v) for v in value_RxL[np.isfinite(value_RxL)]]
    bounds += [chance] if chance is not None else []
    low, high = (min(bounds), max(bounds)) if bounds else (0.0, 1.0)
    if high - low < (1.0 if percent else 1e-9):
      high = low + (1.0 if percent else 1e-9)
    cmap, norm = colormaps['viridis'], Normalize(vmin=low, vmax=high)
    fig = Figure(figsize=(1.6 + 0.8 * len(cols), 1.5 + 0.5 * len(rows)))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(value_RxL), cmap=cmap, norm=norm, aspect='auto')
    for i in range(len(rows)):      # hatch the cells without a number
      for j in range(len(cols)):
        if not np.isfinite(value_RxL[i, j]):
          ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor='0.9', hatch='///',
                                 edgecolor='0.75', lw=0))
    for i, row in enumerate(rows):
      for j, col in enumerate(cols):
        entry = row.entries.get(col.key)
        if entry is not None and entry.text is None:
          ax.text(j, i, format_number(entry.mean, percent), ha='center', va='center',
                  fontsize=7, color=_text_colour(cmap, norm, entry.mean))
        else:
          reason = entry.text if entry is not None else 'not run'
          ax.text(j, i, textwrap.fill(reason, 9), ha='center', va='center', fontsize=6.5,
                  color='black', bbox=dict(facecolor='0.88', edgecolor='none', pad=1))
    ax.set_xticks(range(len(cols)), [c.key for c in cols])
    ax.set_yticks(range(len(rows)), [r.label for r in rows])
    ax.set_xlabel('evaluation length (tokens; K = 1024)')
    n = max((e.n for r in rows for e in r.entries.values() if e.text is None), default=0)
    ax.set_title(f'{t.label}: {axis_label(t.metric)}, mean of n={n} seeds', fontsize=9)
    bar = fig.colorbar(image, ax=ax, label=axis_label(t.metric))
    if chance is not None and low <= chance <= high:
      bar.ax.axhline(chance, color='red', lw=1.5)
      bar.ax.text(1.05, chance, ' chance', transform=bar.ax.get_yaxis_transform(),
                  color='red', fontsize=7, va='center', ha='left', clip_on=False)
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
  out = args.out or os.path.join(args.root, 'figures')
  try:
    os.makedirs(out, exist_ok=True)
  except OSError as e:
    raise ConfigError(f'--out {out}: cannot make that folder ({e.strerror}); give another --out')
  paths = suite_figures(args.root, out)
  print('\n'.join(paths))
  return 0


if __name__ == '__main__':
  sys.exit(main())
