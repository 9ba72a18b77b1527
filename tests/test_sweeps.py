"""The BABILong layout (ltmjax.sweeps) and its heatmap, on hand-written result.json + length_sweep.json.

Runs and the values they must give (sample std, ddof=1), group 'BABILong QA1 (2 facts, T=1024)':
  LSTM seeds 0, 1   1K: 0.9 1.0 -> 95.0 ± 7.1 (2)   4K: 0.8 0.6 -> 70.0 ± 14.1 (2)
                    64K: 0.5 0.5 -> 50.0 ± 0.0 (2)  1M: 0.3 0.1 -> 20.0 ± 14.1 (2)
  Transformer       1K: 0.7 -> 70.0 (1)  4K: 0.4 -> 40.0 (1)  64K: OOM  1M: over its positions
  LTM-T             1K: 0.95 -> 95.0 (1) 4K: 0.9 -> 90.0 (1)  64K: 85.0 (1)  1M: 80.0 (1)
Group 'Passkey (uniform depth, T=1024)': LSTM 1K: 0.5 -> 50.0 (1), 4K: 0.25 -> 25.0 (1).
"""
import csv
import io
import json
import os

import pytest

from ltmjax import figures, report, sweeps

QA1, PASSKEY = 'BABILong QA1 (2 facts, T=1024)', 'Passkey (uniform depth, T=1024)'
OOM = {'mode': 'skipped', 'reason': 'OOM: needs ~9000 MiB (XLA estimate) > --memory_cap_mb=4000'}
POS = {'mode': 'skipped', 'reason': 'over its positions (a learned table of 1024)'}


def _write(root, name, model, label, order, seed, sweep, task='babilong', group=QA1, kind='qa1'):
  path = os.path.join(root, name, f'seed{seed}')
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, 'result.json'), 'w') as f:
    json.dump({'model': model, 'model_label': label, 'model_order': order, 'task': task,
               'task_label': group, 'column_order': [9 if task == 'babilong' else 10, 1024],
               'seq_len': 1024, 'seed': seed, 'metrics': {'accuracy': 0.0},
               'primary_metric': 'accuracy', 'higher_is_better': True, 'status': 'complete',
               'steps': 10, 'config': {'seed': seed, 'model': {'name': model},
                                       'task': {'name': task, 'kind': kind, 'length': 1024}}}, f)
  rows = []
  for length, value in sweep.items():
    row = {'length': length, **value} if isinstance(value, dict) else {
        'length': length, 'mode': 'stream', 'metrics': {'accuracy': value, 'loss': 1.0},
        'accuracy': value, 'loss': 1.0, 'examples': 64}
    rows.append(row)
  with open(os.path.join(path, sweeps.SWEEP_FILE), 'w') as f:
    json.dump({'model': model, 'task': task, 'trained_length': 1024, 'lengths': rows}, f)


def make_suite(root):
  k, m = 1024, 1024 ** 2
  _write(root, 'qa1_lstm', 'lstm', 'LSTM', 0, 0, {k: 0.9, 4 * k: 0.8, 64 * k: 0.5, m: 0.3})
  _write(root, 'qa1_lstm', 'lstm', 'LSTM', 0, 1, {k: 1.0, 4 * k: 0.6, 64 * k: 0.5, m: 0.1})
  _write(root, 'qa1_transformer', 'transformer', 'Transformer', 2, 0,
         {k: 0.7, 4 * k: 0.4, 64 * k: OOM, m: POS})
  _write(root, 'qa1_ltmt', 'ltmt', 'LTM-T', 3, 0, {k: 0.95, 4 * k: 0.9, 64 * k: 0.85, m: 0.8})
  _write(root, 'passkey_lstm', 'lstm', 'LSTM', 0, 0, {k: 0.5, 4 * k: 0.25}, task='passkey',
         group=PASSKEY, kind='single')
  # A run without a sweep (not evaluated yet) adds nothing.
  os.makedirs(os.path.join(root, 'qa1_gru', 'seed0'))
  with open(os.path.join(root, 'qa1_gru', 'seed0', 'result.json'), 'w') as f:
    json.dump({'model': 'gru', 'model_label': 'GRU', 'task': 'babilong', 'task_label': QA1,
               'status': 'complete', 'steps': 10, 'metrics': {'accuracy': 0.5},
               'primary_metric': 'accuracy', 'higher_is_better': True}, f)
  return root


PUBLISHED = {'sources': {'babilong': 'Kuratov et al. 2024 (test source)'},
             'length_rows': [{'label': 'RMT (137M)', 'source': 'babilong', 'task': 'babilong',
                              'when': {'task.kind': 'qa1'}, 'metric': 'accuracy',
                              'values': {'1048576': 94.0, '131072': 96.0}},
                             {'label': 'ARMT (137M)', 'source': 'babilong', 'task': 'babilong',
                              'when': {'task.kind': 'qa1'}, 'values': {'50000000': 79.9}},
                             {'label': 'other kind', 'source': 'babilong', 'task': 'babilong',
                              'when': {'task.kind': 'qa2'}, 'values': {'1024': 1.0}}]}


def test_length_labels():
  assert [sweeps.length_label(n) for n in (500, 1024, 1536, 65536, 2 ** 20, 3 * 2 ** 20)] == \
      ['500', '1K', '1536', '64K', '1M', '3M']


def test_models_by_lengths_markdown(tmp_path):
  root = make_suite(str(tmp_path / 'suite'))
  lines = sweeps.report_lengths(root, 'md').splitlines()
  assert lines[0] == f'### {QA1}: accuracy by evaluation length'
  assert lines[2] == '| Model | 1K | 4K | 64K | 1M |'
  assert lines[4] == '| LSTM | **95.0 ± 7.1 (2)** | 70.0 ± 14.1 (2) | 50.0 ± 0.0 (2) | 20.0 ± 14.1 (2) |'
  assert lines[5] == '| Transformer | 70.0 (1) | 40.0 (1) | OOM | over its positions |'
  assert lines[6] == '| LTM-T | **95.0 (1)** | **90.0 (1)** | **85.0 (1)** | **80.0 (1)** |'
  assert not any('GRU' in l for l in lines)
  # One legend for columns that share a metric, not one per length.
  assert lines[8].endswith('all columns: accuracy (%), higher is better.'), lines[8]
  passkey = lines.index(f'### {PASSKEY}: accuracy by evaluation length')
  assert lines[passkey + 2] == '| Model | 1K | 4K | 64K | 1M |'   # the same columns
  assert lines[passkey + 4] == '| LSTM | **50.0 (1)** | **25.0 (1)** | — | — |'


def test_published_length_rows_are_cited_context(tmp_path):
  root = make_suite(str(tmp_path / 'suite'))
  results = report.load_results(root)
  qa1, passkey = sweeps.length_tables(results, published=PUBLISHED)
  rmt = qa1.table.rows[-1]
  assert (rmt.label, rmt.tag, rmt.contender) == ('RMT (137M)', 'published', False)
  assert set(rmt.entries) == {'1M'} and rmt.entries['1M'].mean == 94.0   # 128K is no column
  assert qa1.table.citations == ['Kuratov et al. 2024 (test source)']
  text = sweeps.render_lengths([qa1], 'md')
  assert '| RMT (137M) (published) [1] | — | — | — | 94.00 |' in text
  assert '| LTM-T | **95.0 (1)** | **90.0 (1)** | **85.0 (1)** | **80.0 (1)** |' in text
  # Lengths that are no column (128K, 50M) are context lines under the table.
  assert ('Published context at other lengths (other model sizes and data; not comparable '
          'claims): RMT (137M): accuracy 96.0 % at 131,072 tokens [1] (published); '
          'ARMT (137M): accuracy 79.9 % at 50,000,000 tokens [1] (published).') in text
  assert all(r.label != 'RMT (137M)' for r in passkey.table.rows) and not passkey.context
  assert all(r.label != 'other kind' for r in qa1.table.rows)       # its `when` differs


def test_csv_and_tex(tmp_path):
  root = make_suite(str(tmp_path / 'suite'))
  rows = list(csv.reader(io.StringIO(sweeps.report_lengths(root, 'csv'))))
  assert rows[0][:7] == ['task', 'model', 'source', '1K accuracy (%)', '1K std', '1K n', '1K best']
  lstm = rows[1]
  assert lstm[:3] == [QA1, 'LSTM', 'ours']
  assert float(lstm[3]) == 95.0 and abs(float(lstm[4]) - 7.0710678) < 1e-4   # 100 * std(.9, 1)
  assert lstm[5:7] == ['2', '1']
  assert rows[2][3 + 4 * 2] == 'OOM'       # Transformer at 64K
  assert [r[0] for r in rows[1:]] == [QA1] * 3 + [PASSKEY]
  tex = sweeps.report_lengths(root, 'tex')
  assert '\\paragraph{BABILong QA1 (2 facts, T=1024): accuracy by evaluation length}' in tex
  assert tex.count('\\begin{tabular}{lcccc}') == 2


def test_deterministic_and_cli(tmp_path, capsys):
  root = make_suite(str(tmp_path / 'suite'))
  first = [sweeps.report_lengths(root, fmt) for fmt in ('md', 'tex', 'csv')]
  assert first == [sweeps.report_lengths(root, fmt) for fmt in ('md', 'tex', 'csv')]
  out = tmp_path / 'lengths.md'
  assert sweeps.main([root, '--out', str(out)]) == 0
  assert out.read_text() == first[0]
  empty = tmp_path / 'empty'
  empty.mkdir()
  assert sweeps.main([str(empty)]) == 2
  err = capsys.readouterr().err
  assert 'no finished run with a length_sweep.json' in err and err.count('\n') == 1


def test_heatmaps_are_written_and_rebuild_byte_for_byte(tmp_path):
  root = make_suite(str(tmp_path / 'suite'))
  tables = sweeps.length_tables(report.load_results(root), published=PUBLISHED)
  paths = figures.length_heatmaps(tables, str(tmp_path / 'a'))
  names = sorted(os.path.basename(p) for p in paths)
  assert names == ['heatmap_babilong_qa1_2_facts_t_1024.pdf', 'heatmap_babilong_qa1_2_facts_t_1024.png',
                   'heatmap_passkey_uniform_depth_t_1024.pdf', 'heatmap_passkey_uniform_depth_t_1024.png']
  again = figures.length_heatmaps(tables, str(tmp_path / 'b'))
  for p, q in zip(paths, again):
    assert open(p, 'rb').read() == open(q, 'rb').read()
  # The suite's figures include them.
  suite = figures.suite_figures(root, str(tmp_path / 'c'))
  assert sum('heatmap_' in p for p in suite) == 4


def test_suite_runner_sweeps_after_training_then_writes_the_lengths_tables(tmp_path, capsys):
  from ltmjax import experiments
  from ltmjax.suites import Cell, Suite
  suite = Suite('mem', 'one evaluated cell, one plain', (
      Cell('qa1_lstm', 'configs/babilong.py:lstm,cpu', evaluate=('--lengths', '1k,4k')),
      Cell('plain', 'configs/babilong.py:gru,cpu')), seeds=(0,), published=False)
  calls = []

  def runner(argv, log_path, cwd):
    calls.append(argv[2])
    workdir = argv[argv.index('--workdir') + 1]
    if argv[2] == 'ltmjax.main':
      name = os.path.basename(os.path.dirname(workdir))
      root = os.path.dirname(os.path.dirname(workdir))
      model = 'lstm' if 'lstm' in name else 'gru'
      _write(root, name, model, model.upper(), 0, 0, {})
      os.remove(os.path.join(workdir, sweeps.SWEEP_FILE))
    else:
      assert argv[2:] == ['ltmjax.evaluate', '--workdir', workdir, '--lengths', '1k,4k']
      with open(os.path.join(workdir, sweeps.SWEEP_FILE), 'w') as f:
        json.dump({'lengths': [{'length': 1024, 'mode': 'stream', 'metrics': {'accuracy': 0.5}},
                               {'length': 4096, 'mode': 'stream', 'metrics': {'accuracy': 0.25}}]},
                  f)
    return 0

  runs = experiments.plan(suite, str(tmp_path))
  assert experiments.execute(suite, runs, runner=runner) == {'qa1_lstm seed0': 'complete',
                                                             'plain seed0': 'complete'}
  assert calls == ['ltmjax.main', 'ltmjax.evaluate', 'ltmjax.main']
  assert 'length sweep ... done in' in capsys.readouterr().out
  # A second pass trains and evaluates nothing; a lost sweep is evaluated again.
  calls.clear()
  experiments.execute(suite, runs, runner=runner)
  assert calls == []
  os.remove(os.path.join(runs[0].workdir, sweeps.SWEEP_FILE))
  assert experiments.execute(suite, runs, runner=runner)['qa1_lstm seed0'] == 'skipped'
  assert calls == ['ltmjax.evaluate']
  experiments.render(suite, str(tmp_path), out=io.StringIO())
  text = open(os.path.join(str(tmp_path), 'mem', 'lengths.md')).read()
  assert '| LSTM | **50.0 (1)** | **25.0 (1)** |' in text
  assert os.path.exists(os.path.join(str(tmp_path), 'mem', 'lengths.csv'))
  assert any(n.startswith('heatmap_') for n in os.listdir(os.path.join(str(tmp_path), 'mem', 'figures')))


def test_a_failed_sweep_fails_the_run(tmp_path, capsys):
  from ltmjax import experiments
  from ltmjax.suites import Cell, Suite
  suite = Suite('mem', 'one cell', (Cell('qa1_lstm', 'configs/babilong.py:lstm,cpu',
                                         evaluate=('--lengths', '1k')),), seeds=(0,))
  runs = experiments.plan(suite, str(tmp_path))
  _write(str(tmp_path / 'mem'), 'qa1_lstm', 'lstm', 'LSTM', 0, 0, {})   # trained, not evaluated
  os.remove(os.path.join(runs[0].workdir, sweeps.SWEEP_FILE))

  def runner(argv, log_path, cwd):
    with open(log_path, 'a') as f:
      f.write('error: no checkpoint in the run\n')
    return 2
  assert experiments.execute(suite, runs, runner=runner) == {'qa1_lstm seed0': 'failed'}
  assert 'length sweep ... FAILED (exit 2)' in capsys.readouterr().out


def test_evaluate_merges_into_length_sweep_json(tmp_path, monkeypatch, capsys):
  """A second `evaluate` call with other lengths keeps the first call's; a length evaluated
  again is replaced (the evaluation itself is faked: this is about the file)."""
  from ltmjax import evaluate
  run_dir = tmp_path / 'run'
  run_dir.mkdir()
  (run_dir / 'config.json').write_text(json.dumps(
      {'seed': 0, 'model': {'name': 'lstm'}, 'task': {'name': 'passkey', 'length': 128},
       'train': {'steps': 1}}))
  calls = []

  def fake_length(run, length, **options):
    calls.append(length)
    return {'length': length, 'mode': 'stream', 'metrics': {'accuracy': len(calls) / 10},
            'accuracy': len(calls) / 10, 'loss': 1.0, 'examples': 4, 'wall_s': 1.0,
            'tokens_per_s': 1.0, 'peak_rss_mb': 1.0}
  monkeypatch.setattr(evaluate, 'Run', lambda workdir: None)
  monkeypatch.setattr(evaluate, 'evaluate_length', fake_length)
  evaluate.sweep(str(run_dir), [128, 256], in_process=True, examples=4)
  evaluate.sweep(str(run_dir), [256, 1024], in_process=True, examples=8)
  rows = json.loads((run_dir / sweeps.SWEEP_FILE).read_text())['lengths']
  assert [(r['length'], r['accuracy'], r['options']['examples']) for r in rows] == [
      (128, 0.1, 4), (256, 0.3, 8), (1024, 0.4, 8)]
  assert sweeps.merge_rows([{'length': 5, 'a': 1}], []) == [{'length': 5, 'a': 1}]
