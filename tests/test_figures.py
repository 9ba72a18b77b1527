"""Figures fit for a paper: words on axes, chance / memoryless lines, a log axis for values
that span decades, overlapping curves that stay visible, labelled bands, heatmap cells that
say why they are empty on a colour scale of the values present, hardware and batch named.
The drawn Figure objects are inspected (`figures.save` is intercepted)."""
import copy
import json
import os
import shutil

import pytest

from ltmjax import figures, report, sweeps
from tests.test_sweeps import make_suite

SYNTHETIC = os.path.join(os.path.dirname(__file__), 'fixtures', 'synthetic')


@pytest.fixture
def drawn(monkeypatch):
  """stem -> the Figure `figures.save` was given."""
  got = {}
  monkeypatch.setattr(figures, 'save', lambda fig, stem: got.setdefault(os.path.basename(stem),
                                                                        fig) and [stem])
  return got


def _results(root=SYNTHETIC):
  results = report.load_results(root)
  for r in results:
    r['reference_metrics'] = ({'chance_recall_accuracy': 0.125} if r['task'] == 'copy'
                              else {'memoryless_mse': 1 / 24})
  return results


def test_learning_curves_have_words_chance_lines_log_mse_and_labelled_bands(drawn, tmp_path):
  root = tmp_path / 'synthetic'
  shutil.copytree(SYNTHETIC, root)
  for seed, mse in ((0, 0.002), (1, 0.001)):   # adding curves that end far below 1/24
    (root / 'adding_lstm' / f'seed{seed}' / 'metrics.jsonl').write_text(
        f'{{"step": 100, "split": "eval", "mse": 0.04}}\n{{"step": 200, "split": "eval", "mse": {mse}}}\n')
  figures.learning_curves(_results(str(root)), '/unused')
  copy_ax = drawn['curves_copy_t_100'].axes[0]
  assert copy_ax.get_ylabel() == 'recall accuracy (%)' and copy_ax.get_xlabel() == 'training step'
  labels = copy_ax.get_legend().get_texts()
  texts = [t.get_text() for t in labels]
  assert 'chance (12.5 %)' in texts and 'shaded: ± 1 std over seeds' in texts
  assert 'LSTM (n=2)' in texts and 'GRU (n=1)' in texts   # seeds with a metrics.jsonl
  chance = [l for l in copy_ax.get_lines() if l.get_label().startswith('chance')]
  assert chance and chance[0].get_ydata()[0] == pytest.approx(12.5)
  adding_ax = drawn['curves_adding_t_100'].axes[0]
  assert adding_ax.get_ylabel() == 'mean squared error'
  assert adding_ax.get_yscale() == 'log'   # 0.01-0.05 and the memoryless 1/24
  assert copy_ax.get_yscale() == 'linear'


def test_identical_curves_stay_distinguishable(drawn):
  results = _results()
  twin = [copy.deepcopy(r) for r in results if r['model'] == 'lstm' and r['task'] == 'copy']
  for r in twin:   # a second model with exactly the LSTM's curves
    r.update(model_label='Twin', model_order=9, _path=r['_path'])
  figures.learning_curves(results + twin, '/unused')
  lines = {l.get_label(): l for l in drawn['curves_copy_t_100'].axes[0].get_lines()}
  a, b = lines['LSTM (n=2)'], lines['Twin (n=2)']
  assert list(a.get_ydata()) == list(b.get_ydata())
  assert (a.get_marker(), a.get_linestyle()) != (b.get_marker(), b.get_linestyle())
  assert a.get_markersize() != b.get_markersize()   # concentric, not hidden
  styles = [figures.style(m, 'ABCDEFGH') for m in 'ABCDEFGH']
  assert len({(s['marker'], s['color']) for s in styles}) == 8


def test_two_configurations_of_a_model_are_two_lines_as_in_the_table(drawn):
  results = _results()
  variant = [copy.deepcopy(r) for r in results if r['model'] == 'lstm' and r['task'] == 'copy']
  for r in variant:   # the LSTM again with another config key: a row of its own in the table
    r['config'] = dict(r['config'], model=dict(r['config']['model'], peephole=True))
  figures.learning_curves(results + variant, '/unused')
  labels = [l.get_label() for l in drawn['curves_copy_t_100'].axes[0].get_lines()]
  rows = [row.label for row in report.build_table(results + variant).rows
          if row.label.startswith('LSTM')]
  assert len(rows) == 2 and [f'{row} (n=2)' for row in rows] == labels[:2]


def test_heatmap_cells_say_why_they_are_empty_and_the_scale_spans_the_values(drawn, tmp_path):
  root = make_suite(str(tmp_path / 'suite'))
  tables = sweeps.length_tables(report.load_results(root))
  figures.length_heatmaps(tables, '/unused')
  fig = drawn['heatmap_babilong_qa1_2_facts_t_1024']
  ax = fig.axes[0]
  texts = [t.get_text().replace('\n', ' ') for t in ax.texts]
  assert 'OOM' in texts and 'over its positions' in texts
  image = ax.get_images()[0]
  values = [v for v in image.get_array().compressed()]
  assert image.norm.vmin == pytest.approx(min(values)) and image.norm.vmax == pytest.approx(
      max(values))
  assert 'accuracy (%)' in ax.get_title()


def test_heatmap_marks_a_length_a_model_was_not_evaluated_at(drawn, tmp_path):
  root = make_suite(str(tmp_path / 'suite'))
  tables = sweeps.length_tables(report.load_results(root))
  qa1 = next(t for t in tables if 'QA1' in t.label)
  next(r for r in qa1.table.rows if r.label == 'Transformer').entries.pop('4K')
  figures.length_heatmaps([qa1], '/unused')
  texts = [t.get_text() for t in drawn['heatmap_babilong_qa1_2_facts_t_1024'].axes[0].texts]
  assert 'not run' in texts


def test_efficiency_figure_names_hardware_and_batch(drawn):
  records = [{'model': m, 'model_label': label, 'seq_len': n, 'status': 'complete',
              'steps_per_second': 100.0 / n, 'peak_memory_bytes': 2 ** 20 * n, 'batch_size': 32,
              'device': 'gpu', 'device_kind': 'NVIDIA H100 80GB HBM3', 'num_devices': 1}
             for m, label in (('lstm', 'LSTM'), ('transformer', 'Transformer')) for n in (64, 128)]
  records.append(dict(records[-1], seq_len=256, status='oom'))
  figures.efficiency_figure(records, '/unused/eff')
  fig = drawn['eff']
  assert 'batch 32' in fig._suptitle.get_text() and 'H100' in fig._suptitle.get_text()
  speed = fig.axes[0]
  assert speed.get_ylabel() == 'training steps per second'
  assert any(l.get_label() == 'Transformer: oom' for l in speed.get_lines())


def _write_run(root, task, task_cfg, model, label, seed, value, curve):
  path = root / f'{task}_{task_cfg.get("blank_len")}_{model}' / f'seed{seed}'
  path.mkdir(parents=True)
  seq_len = task_cfg['blank_len'] + 2 * task_cfg['length']
  (path / 'result.json').write_text(json.dumps({
      'model': model, 'model_label': label, 'task': task,
      'task_label': f'Copy (T={task_cfg["blank_len"]})', 'seed': seed,
      'metrics': {'recall_accuracy': value}, 'primary_metric': 'recall_accuracy',
      'higher_is_better': True, 'status': 'complete', 'steps': 20, 'seq_len': seq_len,
      'column_order': [0, seq_len], 'config': {'task': task_cfg}}))
  (path / 'metrics.jsonl').write_text(''.join(
      json.dumps({'step': s, 'split': split, 'recall_accuracy': v}) + '\n'
      for s, v in curve for split in ('train', 'eval')))


def test_figures_are_written(tmp_path):
  res = tmp_path / 'suite'
  for t in (20, 40):
    for model, label in (('lstm', 'LSTM'), ('gru', 'GRU')):
      for seed in (0, 1):
        _write_run(res, 'copy', {'blank_len': t, 'length': 10}, model, label, seed, 0.5 + 0.1 * seed,
                   [(10, 0.1), (20, 0.3 + 0.1 * seed)])
  paths = figures.suite_figures(str(res), str(tmp_path / 'figs'))
  names = sorted(os.path.basename(p) for p in paths)
  assert names == ['curves_copy_t_20.pdf', 'curves_copy_t_20.png', 'curves_copy_t_40.pdf',
                   'curves_copy_t_40.png', 'length_copy.pdf', 'length_copy.png']
  for p in paths:
    assert os.path.getsize(p) > 1000
  assert figures.task_length({'task': 'mqar', 'seq_len': 256}) == 256
  assert figures.task_length({'task': 'mqar'}) is None   # an older result.json: no sweep
  assert figures.read_eval_curve(os.path.dirname(str(next(res.rglob('metrics.jsonl')))),
                                 'recall_accuracy') == {10: 0.1, 20: pytest.approx(0.3, abs=0.11)}


def test_efficiency_figure(tmp_path):
  records = [{'model': m, 'model_label': label, 'seq_len': n, 'status': 'complete',
              'steps_per_second': 100.0 / n, 'peak_memory_bytes': 2 ** 20 * n}
             for m, label in (('lstm', 'LSTM'), ('transformer', 'Transformer')) for n in (64, 128)]
  records.append({'model': 'transformer', 'model_label': 'Transformer', 'seq_len': 256,
                  'status': 'oom'})
  paths = figures.efficiency_figure(records, str(tmp_path / 'eff'))
  assert [os.path.basename(p) for p in paths] == ['eff.png', 'eff.pdf']
  assert all(os.path.getsize(p) > 1000 for p in paths)
