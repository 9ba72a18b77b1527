"""ListOps: labels re-derived by an independent parser; grammar limits; tiny tfds build."""
import random

import ml_collections
import numpy as np
import pytest
from absl.testing import absltest

from ltmjax.tasks import listops


def _evaluate(text):
  """Recursive-descent evaluation of the decoded text; returns (value, depth, max args)."""
  words = text.split()
  pos = 0

  def expr():
    nonlocal pos
    w = words[pos]
    pos += 1
    if w.isdigit():
      return int(w), 0, 0
    assert w in ('[MIN', '[MAX', '[MED', '[SM'), w
    vals, depth, width = [], 0, 0
    while words[pos] != ']':
      v, d, a = expr()
      vals.append(v)
      depth, width = max(depth, d), max(width, a)
    pos += 1
    if w == '[MIN':
      v = min(vals)
    elif w == '[MAX':
      v = max(vals)
    elif w == '[SM':
      v = sum(vals) % 10
    else:
      v = int(np.floor(np.median(vals)))
    return v, depth + 1, max(width, len(vals))

  out = expr()
  assert pos == len(words), 'trailing tokens'
  return out


class GeneratorTest(absltest.TestCase):

  def test_operators(self):
    self.assertEqual(listops.apply_operator(listops.MED, [4, 1, 3, 2]), 2)   # floor(2.5)
    self.assertEqual(listops.apply_operator(listops.MED, [9, 0, 5]), 5)
    self.assertEqual(listops.apply_operator(listops.SM, [9, 8, 7]), 4)
    self.assertEqual(_evaluate('[MAX 2 9 [MIN 4 7 ] 0 ]'), (9, 1 + 1, 4))

  def test_labels_match_independent_evaluator_and_limits_hold(self):
    rnd = random.Random(0)
    cases = [(30, 120)] * 150 + [(500, 2000)] * 10
    depths = []
    for lo, hi in cases:
      tokens, label, depth = listops.generate_example(rnd, lo, hi)
      self.assertEqual(tokens.dtype, np.int32)
      self.assertBetween(len(tokens), lo, hi)
      self.assertTrue(((tokens >= 1) & (tokens < listops.VOCAB_SIZE)).all())  # no padding id
      value, parsed_depth, width = _evaluate(listops.decode(tokens))
      self.assertEqual(value, label)
      self.assertEqual(parsed_depth, depth)
      self.assertLessEqual(parsed_depth, 10)
      self.assertBetween(width, 2, 10)
      depths.append(depth)
    self.assertGreater(max(depths), 5)          # trees are nested, not flat lists

  def test_labels_cover_all_classes(self):
    labels = {listops.generate_example(listops.example_rng(0, 'train', i), 20, 80)[1]
              for i in range(300)}
    self.assertEqual(labels, set(range(10)))

  def test_deterministic_given_seed_split_index(self):
    a = listops.generate_chunk(7, 'test', 5, 9, 20, 60, 10, 10)
    b = listops.generate_chunk(7, 'test', 5, 9, 20, 60, 10, 10)
    c = listops.generate_chunk(8, 'test', 5, 9, 20, 60, 10, 10)
    for (ka, ea), (kb, eb) in zip(a, b):
      self.assertEqual(ka, kb)
      np.testing.assert_array_equal(ea['tokens'], eb['tokens'])
    self.assertFalse(all(np.array_equal(x['tokens'], y['tokens']) for (_, x), (_, y) in zip(a, c)))


def _cfg(data_dir, **kw):
  cfg = dict(listops.ListOpsTask.default_config())
  cfg.update(data_dir=data_dir, seq_len=64, train_examples=40, val_examples=8, test_examples=16,
             min_length=10, max_length=64, workers=1)
  cfg.update(kw)
  return ml_collections.ConfigDict(cfg)


def test_tiny_build_reads_back_through_tfds_and_batches(tmp_path):
  import tensorflow_datasets as tfds
  cfg = _cfg(str(tmp_path))
  task = listops.ListOpsTask(cfg, seed=0, batch_size=8, eval_batch_size=4)
  assert task.spec.input_dim == listops.VOCAB_SIZE and task.spec.num_outputs == 10
  name = 'ltm_listops/' + task.builder.builder_config.name
  source = tfds.data_source(name, split='train', data_dir=str(tmp_path), download=False)
  assert len(source) == 40
  expected = {tuple(e['tokens']): e['label']
              for _, e in listops.generate_chunk(0, 'train', 0, 40, 10, 64, 10, 10)}
  stored = {tuple(source[i]['tokens']): source[i]['label'] for i in range(40)}
  assert stored == expected
  batch = next(task.train_iterator())
  assert batch['inputs'].shape == (8, 64) and batch['inputs'].dtype == np.int32
  assert batch['mask'].shape == (8, 64) and batch['targets'].shape == (8,)
  for row, m, y in zip(batch['inputs'], batch['mask'], batch['targets']):
    assert (row[~m] == listops.PAD).all()
    assert _evaluate(listops.decode(row))[0] == y
  assert len(list(task.eval_batches())) == 4
  # A second task over the same data_dir reuses the build (same config name).
  again = listops.ListOpsTask(cfg, seed=0, batch_size=8, eval_batch_size=4)
  assert again.builder.is_prepared()


def test_seq_len_shorter_than_max_length_is_rejected(tmp_path):
  with pytest.raises(ValueError, match='seq_len'):
    listops.ListOpsTask(_cfg(str(tmp_path), seq_len=32), seed=0, batch_size=8, eval_batch_size=4)


if __name__ == '__main__':
  absltest.main()
