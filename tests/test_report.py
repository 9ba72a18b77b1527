"""ltmjax.report on hand-written result.json fixtures (tests/fixtures); figures: test_figures.py.

Fixture numbers and the values they must give (sample std, ddof=1):
  synthetic/  Copy (T=100) recall_accuracy: LSTM 0.90 0.95 1.00 -> 95.0 ± 5.0 (3);
              GRU 0.98 1.00 -> 99.0 ± 1.4 (2) (best); Transformer only a 'running' run -> —.
              Adding (T=100) mse: LSTM 0.01 0.02 0.03 -> 0.0200 ± 0.0100 (3) (best, lower);
              Transformer 0.05 -> 0.0500 (1); GRU -> —.
  lra/        ListOps accuracy: Transformer 0.36 0.38 -> 37.0 ± 1.4 (2); LTM-T 0.40 -> 40.0 (1).
              Text accuracy: Transformer 0.60 -> 60.0 (1). Two of the five LRA tasks: no LRA Avg.
The fixtures carry column_order / model_order / benchmark / seq_len as train.py writes them.
"""
import copy
import csv
import io
import json
import os
import shutil

import pytest

from ltmjax import figures, report

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
SYNTHETIC = os.path.join(FIXTURES, 'synthetic')
LRA = os.path.join(FIXTURES, 'lra')


def test_load_results_reads_only_complete_runs():
  results = report.load_results(SYNTHETIC)
  assert len(results) == 9   # 10 result.json files, one of them 'running'
  assert all(r['status'] == 'complete' for r in results)
  assert not any(r['model'] == 'transformer' and r['task'] == 'copy' for r in results)


def test_markdown_means_stds_counts_best_and_missing():
  text = report.report(SYNTHETIC, 'md')
  lines = text.splitlines()
  assert lines[0] == '| Model | Copy (T=100) | Adding (T=100) |'   # no Avg: mixed metrics
  assert lines[1] == '|---|---:|---:|'
  assert lines[2] == '| LSTM | 95.0 ± 5.0 (3) | **0.0200 ± 0.0100 (3)** |'
  # GRU's 99.0 is within one std of the LSTM's 95.0 ± 5.0: no bold.
  assert lines[3] == '| GRU | 99.0 ± 1.4 (2) | — |'
  assert lines[4] == '| Transformer | — | 0.0500 (1) |'
  assert 'Copy (T=100): recall_accuracy (%), higher is better' in text
  assert 'Adding (T=100): mse, lower is better' in text


def test_no_average_over_part_of_a_benchmark_or_unrelated_columns(tmp_path):
  lines = report.report(LRA, 'md').splitlines()
  assert lines[0] == '| Model | ListOps | Text |'   # 2 of the 5 LRA tasks: no LRA Avg
  assert lines[2] == '| Transformer | 37.0 ± 1.4 (2) | **60.0 (1)** |'
  assert lines[3] == '| LTM-T | **40.0 (1)** | — |'
  # Accuracy columns of no benchmark get no average either.
  results = [r for r in report.load_results(SYNTHETIC) if r['task'] == 'copy']
  for r in copy.deepcopy(results):
    r.update(task_label='Copy (T=200)', column_order=[0, 220])
    results.append(r)
  assert report.render(report.build_table(results), 'md').splitlines()[0] == (
      '| Model | Copy (T=100) | Copy (T=200) |')


def test_published_rows_only_for_present_columns_and_cited():
  text = report.report(LRA, 'md', published=True)
  lines = text.splitlines()
  assert '| Transformer (published) [1] | 36.37 | 64.27 |' in lines
  assert '| S5 (published) [2] | **62.15** | **89.31** |' in lines
  # Our rows lose the best mark to S5.
  assert '| Transformer | 37.0 ± 1.4 (2) | 60.0 (1) |' in lines
  assert '| LTM-T | 40.0 (1) | — |' in lines
  assert lines[-2].startswith('[1] Tay, Dehghani') and 'Long Range Arena' in lines[-2]
  assert lines[-1].startswith('[2] Smith, Warrington, Linderman') and '2208.04933' in lines[-1]
  assert 'Retrieval' not in lines[0] and 'GRU+SVM' not in text and 'Memoryless' not in text


def test_memoryless_row_is_not_a_contender_and_respects_when(tmp_path):
  lines = report.report(SYNTHETIC, 'md', published=True).splitlines()
  assert '| Memoryless baseline (analytic) [1] | 12.50 | 0.0417 |' in lines
  assert '| GRU | 99.0 ± 1.4 (2) | — |' in lines   # within one std of the LSTM
  # A copy task with another alphabet has another chance level: the row must not apply.
  root = tmp_path / 'res'
  shutil.copytree(SYNTHETIC, root)
  for path in root.glob('copy_*/seed*/result.json'):
    r = json.loads(path.read_text())
    r['config']['task']['alphabet'] = 4
    path.write_text(json.dumps(r))
  lines = report.report(str(root), 'md', published=True).splitlines()
  assert '| Memoryless baseline (analytic) [1] | — | 0.0417 |' in lines


def test_metric_override_shows_the_published_memoryless_loss():
  lines = report.report(SYNTHETIC, 'md', published=True, metric='loss').splitlines()
  # LSTM copy losses 0.15, 0.10, 0.05 -> 0.1000 ± 0.0500; GRU 0.01, 0.01 -> best.
  assert lines[2] == '| LSTM | 0.1000 ± 0.0500 (3) | **0.0200 ± 0.0100 (3)** |'
  assert lines[3] == '| GRU | **0.0100 ± 0.0000 (2)** | — |'
  assert '| Memoryless baseline (analytic) [1] | 0.1733 | — |' in lines


def _lra_results(model='lstm', label='LSTM', order=0, skip=()):
  """One complete run per LRA task for one model, with the fields train.py writes."""
  tasks = [('listops', 'ListOps', {}, 4, 2000, 'lra'), ('text', 'Text (T=4096)', {}, 5, 4096, 'lra'),
           ('retrieval', 'Retrieval (T=4000)', {}, 6, 4000, 'lra'),
           ('cifar10', 'Image (CIFAR-10 gray, pixel, T=1024)', {'grayscale': True, 'order': 'pixel'},
            7, 1024, 'lra'),
           ('pathfinder', 'Pathfinder', {'resolution': 32}, 8, 1024, 'lra'),
           ('pathfinder', 'Path-X', {'resolution': 128}, 8, 16384, '')]
  out = []
  for i, (task, task_label, cfg, rank, seq_len, bench) in enumerate(tasks):
    if task_label in skip:
      continue
    out.append({'model': model, 'model_label': label, 'task': task, 'task_label': task_label,
                'seed': 0, 'metrics': {'accuracy': 0.5 + 0.01 * i}, 'primary_metric': 'accuracy',
                'higher_is_better': True, 'status': 'complete', 'steps': 10,
                '_path': f'{model}/{task}/result.json', 'column_order': [rank, seq_len],
                'seq_len': seq_len, 'benchmark': bench, 'model_order': order,
                'config': {'task': dict(name=task, **cfg), 'model': {'name': model}}})
  return out


def test_lra_avg_over_its_five_tasks_as_published_and_fail_is_kept():
  results = _lra_results() + _lra_results('gru', 'GRU', 1, skip=('Retrieval (T=4000)',))
  table = report.build_table(results, published=report.load_published())
  lines = report.render(table, 'md').splitlines()
  assert lines[0] == ('| Model | ListOps | Text (T=4096) | Retrieval (T=4000) | '
                      'Image (CIFAR-10 gray, pixel, T=1024) | Pathfinder | Path-X | LRA Avg |')
  # Ours: (50 + 51 + 52 + 53 + 54) / 5 = 52.0; Path-X (55) is in no average.
  assert lines[2] == '| LSTM | 50.0 (1) | 51.0 (1) | 52.0 (1) | 53.0 (1) | 54.0 (1) | 55.0 (1) | 52.0 |'
  assert lines[3] == '| GRU | 50.0 (1) | 51.0 (1) | — | 53.0 (1) | 54.0 (1) | 55.0 (1) | — |'
  # The five-task mean reproduces LRA's printed averages; S5 is averaged the same way
  # (62.15 + 89.31 + 91.40 + 88.00 + 95.33) / 5 = 85.24 (its paper's 87.46 includes Path-X).
  assert ('| Transformer (published) [1] | 36.37 | 64.27 | 57.46 | 42.44 | 71.40 | FAIL | 54.39 |'
          in lines)
  assert ('| S5 (published) [2] | **62.15** | **89.31** | **91.40** | **88.00** | **95.33** | '
          '**98.58** | **85.24** |' in lines)
  published = report.load_published()
  for row in published['rows']:
    if row['source'] == 'lra':
      assert f'| {row["label"]} (published) [1] |' in report.render(table, 'md')
      assert [l for l in lines if l.startswith(f'| {row["label"]} (published)')][0].endswith(
          f' | {row["paper_avg"]:.2f} |')
  note = [l for l in lines if l.startswith('LRA Avg: ')]
  assert len(note) == 1 and 'ListOps, Text, Retrieval, Image and Pathfinder' in note[0]
  assert 'Path-X is its own column' in note[0]
  # Without Retrieval in the table there is no LRA Avg at all.
  table = report.build_table([r for r in results if r['task'] != 'retrieval'],
                             published=report.load_published())
  s5 = [l for l in report.render(table, 'md').splitlines() if l.startswith('| S5')]
  assert s5 == ['| S5 (published) [2] | **62.15** | **89.31** | **88.00** | **95.33** | **98.58** |']


def test_published_image_needs_lra_setting():
  results = _lra_results()
  for r in results:
    if r['task'] == 'cifar10':
      r['config']['task']['grayscale'] = False
  table = report.build_table(results, published=report.load_published())
  s5 = [l for l in report.render(table, 'md').splitlines() if l.startswith('| S5')][0]
  assert s5.split(' | ')[4] == '—'   # the Image column
  # Path-X shares the pathfinder task: a row with Pathfinder alone must not fill Path-X.
  published = {'sources': {'x': 'X et al.'}, 'aliases': {'pathx': ['Path-X']},
               'rows': [{'label': 'X', 'source': 'x', 'values': {'pathfinder': {'accuracy': 70.0}}}]}
  table = report.build_table(results, published=published)
  x = [l for l in report.render(table, 'md').splitlines() if l.startswith('| X')]
  assert x == ['| X (published) [1] | — | — | — | — | **70.00** | — | — |']   # and no LRA Avg


def test_published_value_of_another_setting_goes_to_the_reference_block():
  # A ListOps column shorter than LRA's (benchmark tag '') gets LRA's rows only as non-contending
  # 'reference, different setting' rows at the end; the Text column keeps its published rows.
  results = _lra_results(skip=('Retrieval (T=4000)', 'Image (CIFAR-10 gray, pixel, T=1024)',
                               'Pathfinder', 'Path-X'))
  results[0].update(task_label='ListOps (50-200 tokens, not LRA)', benchmark='')
  lines = report.render(report.build_table(results, published=report.load_published()),
                        'md').splitlines()
  assert lines[0] == '| Model | ListOps (50-200 tokens, not LRA) | Text (T=4096) |'
  rows = [l for l in lines if l.startswith('| ')][1:]
  assert rows[0] == '| LSTM | **50.0 (1)** | 51.0 (1) |'   # S5's 62.15 does not compete
  assert '| Transformer (published) [1] | — | 64.27 |' in rows
  assert '| S5 (published) [2] | — | **89.31** |' in rows
  block = [l for l in rows if '(reference, different setting)' in l]
  assert rows[-len(block):] == block and len(block) == 7   # six LRA rows and S5, at the end
  assert block[0] == '| Transformer (reference, different setting) [1] | 36.37 | — |'
  assert block[-1] == '| S5 (reference, different setting) [2] | 62.15 | — |'   # not bold
  # At LRA's setting the same values are ordinary published rows, and nothing is in the block.
  lines = report.report(LRA, 'md', published=True).splitlines()
  assert not any('different setting' in l for l in lines)


def _runs(tmp_path, specs):
  """Writes one result.json per (name, seed, value, config changes, result changes)."""
  root = tmp_path / 'runs'
  base = json.loads(open(os.path.join(SYNTHETIC, 'copy_lstm', 'seed0', 'result.json')).read())
  for name, seed, value, config, extra in specs:
    r = copy.deepcopy(base)
    r['seed'] = r['config']['seed'] = seed
    for dotted, v in config.items():
      group, key = dotted.split('.')
      r['config'].setdefault(group, {})[key] = v
    r['metrics']['recall_accuracy'] = value
    r.update(extra)
    path = root / name / f'seed{seed}'
    path.mkdir(parents=True)
    (path / 'result.json').write_text(json.dumps(r))
  return str(root)


def test_runs_that_differ_in_config_get_their_own_rows_and_unfinished_runs_none(tmp_path, capsys):
  root = _runs(tmp_path, [
      ('a', 0, 0.90, {'opt.learning_rate': 0.01}, {}),
      ('a', 1, 0.80, {'opt.learning_rate': 0.01, 'train.progress': True, 'ckpt.every': 7}, {}),
      ('b', 0, 0.50, {'opt.learning_rate': 1e6}, {}),
      ('c', 2, 0.10, {'opt.learning_rate': 0.01, 'task.data_dir': '/elsewhere'}, {}),  # with a
      ('d', 0, 0.00, {'train.batch_size': 0}, {'steps': 0}),             # complete, 0 steps
      ('e', 0, 0.00, {}, {'status': 'stopped'})])
  lines = report.report(root, 'md').splitlines()
  # a0, a1, c2: (90 + 80 + 10) / 3, apart from the run with another learning rate; 50.0 is
  # within its std: no bold.
  assert lines[2] == '| LSTM (opt.learning_rate=0.01) | 60.0 ± 43.6 (3) |'
  assert lines[3] == '| LSTM (opt.learning_rate=1000000.0) | 50.0 (1) |'
  assert len([l for l in lines if l.startswith('| LSTM')]) == 2
  assert 'left out 1 run(s)' in capsys.readouterr().err
  # An unfinished run handed to build_table directly is left out too.
  table = report.build_table([{**r, 'steps': 0} for r in report.load_results(SYNTHETIC)])
  assert table.rows == [] and table.columns == []


def test_a_memory_mode_variant_is_named_by_its_value(tmp_path):
  root = _runs(tmp_path, [
      ('g', 0, 0.90, {'model.memory_mode': 'gated'}, {}),
      ('a', 0, 0.50, {'model.memory_mode': 'associative', 'model.memory_norm': 'unit'}, {})])
  rows = [l for l in report.report(root, 'md').splitlines() if l.startswith('| LSTM')]
  # The memory mode and norm in words (— where a run lacks the key); others as key=value.
  assert rows == ['| LSTM (associative, unit memory) | 50.0 (1) |',
                  '| LSTM (gated, model.memory_norm=—) | **90.0 (1)** |']


def test_a_variant_of_one_column_names_the_model_s_row_in_every_column(tmp_path):
  """Passkey has gated and associative LTM-T runs, QA1 only gated ones: QA1's runs sit in
  the 'gated' row, not in a third, unnamed one."""
  root = _runs(tmp_path, [
      ('g', 0, 0.90, {'model.memory_mode': 'gated'}, {}),
      ('a', 0, 0.50, {'model.memory_mode': 'associative'}, {}),
      ('q', 0, 0.30, {'model.memory_mode': 'gated'}, {'task_label': 'QA1'})])
  lines = report.report(root, 'md').splitlines()
  rows = [l for l in lines if l.startswith('| LSTM')]
  assert len(rows) == 2, lines
  assert rows[1].startswith('| LSTM (gated) |') and '30.0 (1)' in rows[1] and '90.0' in rows[1]
  assert rows[0].startswith('| LSTM (associative) |') and '50.0 (1)' in rows[0]


def test_old_result_files_without_order_fields_sort_by_label():
  results = report.load_results(SYNTHETIC)
  for r in results:
    for key in ('column_order', 'model_order', 'benchmark', 'seq_len'):
      del r[key]
  lines = report.render(report.build_table(results), 'md').splitlines()
  assert lines[0] == '| Model | Adding (T=100) | Copy (T=100) |'
  assert [l.split(' | ')[0] for l in lines[2:5]] == ['| GRU', '| LSTM', '| Transformer']
  assert figures.models_in_order(results) == ['GRU', 'LSTM', 'Transformer']


def test_reference_rows_sit_under_ours_and_name_their_git_revision(tmp_path, capsys):
  ours = _runs(tmp_path, [('a', 0, 0.25, {}, {'git_revision': 'abc1234'})])
  text = report.report(ours, 'md', reference=SYNTHETIC)
  lines = text.splitlines()
  assert lines[0] == '| Model | Copy (T=100) |'   # only this run's columns
  assert lines[2:4] == ['| LSTM | **25.0 (1)** |', '| LSTM (reference) [1] | 95.0 ± 5.0 (3) |']
  assert lines[4] == '| GRU (reference) [1] | 99.0 ± 1.4 (2) |'   # not a contender: no bold
  assert lines[-1] == f'[1] reference results in {SYNTHETIC}, made at git revision unknown'
  assert report.main([ours, '--reference', SYNTHETIC]) == 0
  assert capsys.readouterr().out == text
  # A reference made with another configuration is marked as such.
  other = _runs(tmp_path / 'x', [('a', 0, 0.25, {'model.hidden': 999}, {})])
  lines = report.report(other, 'md', reference=SYNTHETIC).splitlines()
  assert lines[3] == '| LSTM (reference, other config) [1] | 95.0 ± 5.0 (3) |'
  assert lines[4] == '| GRU (reference) [1] | 99.0 ± 1.4 (2) |'   # nothing of ours to differ from


def test_latex():
  text = report.report(LRA, 'tex', published=True)
  assert '\\begin{tabular}{lcc}' in text
  assert 'Model & ListOps & Text \\\\' in text
  assert 'Transformer & 37.0 $\\pm$ 1.4 (2) & 60.0 (1) \\\\' in text
  assert 'S5 (published)$^{2}$ & \\textbf{62.15} & \\textbf{89.31} \\\\' in text
  assert '$^{1}$ Tay, Dehghani' in text and text.rstrip().endswith('}')
  assert '±' not in text and '—' not in text


def test_csv_has_numbers_and_best_flags():
  rows = list(csv.DictReader(io.StringIO(report.report(SYNTHETIC, 'csv'))))
  by_model = {r['model']: r for r in rows}
  assert list(by_model) == ['LSTM', 'GRU', 'Transformer']
  lstm, gru = by_model['LSTM'], by_model['GRU']
  assert lstm['Copy (T=100) recall_accuracy (%)'] == '95' and lstm['Copy (T=100) std'] == '5'
  assert lstm['Copy (T=100) n'] == '3' and lstm['Copy (T=100) best'] == '0'
  assert gru['Copy (T=100) best'] == '0' and gru['Copy (T=100) std'] == '1.41421'
  assert lstm['Adding (T=100) mse'] == '0.02' and lstm['Adding (T=100) best'] == '1'
  assert gru['Adding (T=100) mse'] == '' and lstm['source'] == 'ours'


def test_deterministic_and_independent_of_file_order():
  results = report.load_results(LRA)
  pub = report.load_published()
  for fmt in ('md', 'tex', 'csv'):
    first = report.render(report.build_table(results, published=pub), fmt)
    again = report.render(report.build_table(copy.deepcopy(results[::-1]), published=pub), fmt)
    assert first == again == report.report(LRA, fmt, published=True)


def test_format_number():
  assert report.format_number(98.66666, True) == '98.7'
  assert report.format_number(0.041666, False) == '0.0417'
  assert report.format_number(0.00012345, False) == '1.23e-04'
  assert report.format_number(float('nan'), False) == 'nan'


def test_cli_writes_out_file(tmp_path, capsys):
  out = tmp_path / 'table.md'
  assert report.main([LRA, '--format', 'md', '--out', str(out)]) == 0
  assert out.read_text() == report.report(LRA, 'md')
  assert report.main([SYNTHETIC, '--format', 'csv']) == 0
  assert capsys.readouterr().out == report.report(SYNTHETIC, 'csv')


def test_the_lra_tag_is_on_the_five_lra_tasks_at_their_lra_settings():
  import ml_collections
  from ltmjax import tasks

  def benchmark(name, **changes):
    task = tasks.get(name).__new__(tasks.get(name))   # no data: benchmark() reads cfg only
    task.cfg = ml_collections.ConfigDict(dict(tasks.get(name).default_config(), **changes))
    return task.benchmark()
  tagged = sorted(name for name in tasks.TASKS if benchmark(name) == 'lra')
  assert tagged == ['cifar10', 'listops', 'pathfinder', 'retrieval', 'text']
  assert benchmark('pathfinder', resolution=128) == ''   # Path-X: its own column
  assert benchmark('cifar10', grayscale=False) == '' and benchmark('cifar10', order='row') == ''
  # ListOps shorter or smaller than LRA's is another column (listops_cpu), not LRA's.
  for change in (dict(min_length=50, max_length=200, seq_len=200), dict(train_examples=2000),
                 dict(max_depth=6), dict(max_args=5)):
    assert benchmark('listops', **change) == '', change
  # Column order follows the registry: LRA's own order for its tasks.
  assert [tasks.order(n) for n in ('listops', 'text', 'retrieval', 'cifar10', 'pathfinder')] == (
      sorted(tasks.order(n) for n in ('listops', 'text', 'retrieval', 'cifar10', 'pathfinder')))


# ----------------------------------------------------------------------------- one run per seed

def test_two_runs_of_one_config_and_seed_are_an_error_naming_both(tmp_path, capsys):
  # A resumed copy of seed 0 beside the original: never averaged as two seeds.
  root = _runs(tmp_path, [('a', 0, 0.30, {}, {}), ('b', 0, 0.26, {'train.progress': True,
                                                                    'parallel.data': 2}, {})])
  with pytest.raises(report.ReportError, match='seed 0') as e:
    report.load_results(root)
  assert os.path.join(root, 'a', 'seed0') in str(e.value)
  assert os.path.join(root, 'b', 'seed0') in str(e.value)
  assert report.main([root]) == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'count that seed twice' in err
  # Another seed of the same config is a second sample.
  ok = _runs(tmp_path / 'ok', [('a', 0, 0.30, {}, {}), ('b', 1, 0.26, {}, {})])
  assert '28.0 ± 2.8 (2)' in report.report(ok, 'md').splitlines()[2]


def test_bold_only_beyond_one_std_of_the_next_and_beyond_chance():
  from ltmjax import tables
  assert tables.clear_best([(0, 99.0, 1.4), (1, 95.0, 5.0)], True) == []      # 4 < 5
  assert tables.clear_best([(0, 99.0, 1.4), (1, 90.0, 5.0)], True) == [0]
  assert tables.clear_best([(0, 100.0, 0.0), (1, 100.0, 0.0), (2, 12.0, 1.7)], True) == [0, 1]
  assert tables.clear_best([(0, 0.02, 0.01), (1, 0.05, 0.0)], False) == [0]   # lower is better
  # 12.5 ± 17.7 beats 3.0 ± 0 by more than... no: within one std; and chance is 16.7.
  assert tables.clear_best([(0, 12.5, 17.7), (1, 3.0, 0.0)], True, chance=16.7) == []
  # Beyond the next, but within two binomial stds of chance (10 %, 32 examples: 10.6).
  col = tables.Column('1M', 'passkey', 'accuracy', True, True, [], chance=10.0, eval_examples=32)
  assert abs(tables.chance_noise(col) - 200 * (0.1 * 0.9 / 32) ** 0.5) < 1e-12
  assert tables.clear_best([(0, 17.2, 6.6), (1, 0.0, 0.0)], True, 10.0,
                           tables.chance_noise(col)) == []
  assert tables.clear_best([(0, 80.0, 6.6), (1, 0.0, 0.0)], True, 10.0,
                           tables.chance_noise(col)) == [0]


def test_legend_states_n_and_chance():
  text = report.report(SYNTHETIC, 'md')
  assert 'Mean ± std over n seeds (n in brackets)' in text
  results = report.load_results(SYNTHETIC)
  for r in results:
    r['reference_metrics'] = {'chance_recall_accuracy': 0.125, 'memoryless_mse': 1 / 24}
  text = report.render(report.build_table(results), 'md')
  assert 'recall_accuracy (%), higher is better, chance 12.50' in text
  assert 'mse, lower is better, memoryless 0.0417' in text
  assert 'chance 12.50' in report.render(report.build_table(results), 'tex')


def test_report_refuses_an_empty_folder_and_an_unknown_metric(tmp_path, capsys):
  (tmp_path / 'empty').mkdir()
  assert report.main([str(tmp_path / 'empty'), '--out', str(tmp_path / 't.md')]) == 2
  assert 'no finished run' in capsys.readouterr().err
  assert report.main([SYNTHETIC, '--metric', 'acuracy', '--out', str(tmp_path / 't.md')]) == 2
  err = capsys.readouterr().err
  assert "no run under" in err and 'recall_accuracy' in err and err.count('\n') == 1
  assert not (tmp_path / 't.md').exists()
