"""Tests for the grain pipeline: shapes, drop_remainder, sharding, determinism, resume."""
import functools
import json

import numpy as np
import pytest
from absl.testing import absltest

from ltmjax.tasks import pipeline

N = 23          # records; with B=4 an epoch is 5 batches and 3 records are dropped


def _source():
  return [{'id': i, 'tokens': list(range(i % 5 + 1))} for i in range(N)]


def _pre(record):
  inputs, mask = pipeline.pad_tokens(record['tokens'], 6)
  return {'id': np.int32(record['id']), 'inputs': inputs, 'mask': mask}


def _ids(it, steps):
  return [next(it)['id'].tolist() for _ in range(steps)]


class SourceIteratorTest(absltest.TestCase):

  def test_shapes_and_drop_remainder(self):
    it = pipeline.SourceIterator(_source(), _pre, batch_size=4, seed=0)
    self.assertEqual(it.batches_per_epoch, 5)
    b = next(it)
    self.assertEqual(b['inputs'].shape, (4, 6))
    self.assertEqual(b['inputs'].dtype, np.int32)
    self.assertEqual(b['mask'].dtype, bool)
    np.testing.assert_array_equal(b['mask'].sum(1), b['id'] % 5 + 1)
    epoch = sum(_ids(pipeline.SourceIterator(_source(), _pre, batch_size=4, seed=0), 5), [])
    self.assertLen(set(epoch), 20)            # one epoch: 20 distinct records, 3 dropped

  def test_epochs_reshuffle(self):
    ids = _ids(pipeline.SourceIterator(_source(), _pre, batch_size=4, seed=0), 10)
    self.assertNotEqual(ids[:5], ids[5:])
    self.assertLen(set(sum(ids[5:], [])), 20)

  def test_process_shards_disjoint_cover_and_match_global_batches(self):
    whole = _ids(pipeline.SourceIterator(_source(), _pre, batch_size=4, seed=1), 5)
    parts = [_ids(pipeline.SourceIterator(_source(), _pre, batch_size=4, seed=1,
                                          process_index=p, process_count=2), 5) for p in range(2)]
    for step in range(5):
      self.assertEqual(parts[0][step] + parts[1][step], whole[step])
    a, b = set(sum(parts[0], [])), set(sum(parts[1], []))
    self.assertEmpty(a & b)
    self.assertLen(a | b, 20)
    with self.assertRaises(ValueError):
      pipeline.SourceIterator(_source(), _pre, batch_size=5, seed=0, process_count=2)

  def test_resume_on_another_process_count_continues_the_global_batches(self):
    whole = pipeline.SourceIterator(_source(), _pre, batch_size=4, seed=5)
    _ids(whole, 7)                             # crosses an epoch boundary
    state = json.loads(json.dumps(whole.get_state()))
    expected = _ids(whole, 6)
    parts = [pipeline.SourceIterator(_source(), _pre, batch_size=4, seed=5, process_index=p,
                                     process_count=2) for p in range(2)]
    for it in parts:
      it.set_state(state)
    got = [_ids(it, 6) for it in parts]
    self.assertEqual([a + b for a, b in zip(*got)], expected)
    # And back: two processes' state (the same on both) resumes one process.
    one = pipeline.SourceIterator(_source(), _pre, batch_size=4, seed=5)
    self.assertEqual(parts[0].get_state(), parts[1].get_state())
    one.set_state(parts[0].get_state())
    self.assertEqual(_ids(one, 3), _ids(whole, 3))

  def test_deterministic_per_seed(self):
    make = lambda seed: _ids(pipeline.SourceIterator(_source(), _pre, batch_size=4, seed=seed), 7)
    self.assertEqual(make(3), make(3))
    self.assertNotEqual(make(3), make(4))

  def test_resume_from_json_state(self):
    it = pipeline.SourceIterator(_source(), _pre, batch_size=4, seed=2, process_index=1,
                                 process_count=2)
    _ids(it, 7)                                # crosses an epoch boundary
    state = json.loads(json.dumps(it.get_state()))
    expected = _ids(it, 6)
    fresh = pipeline.SourceIterator(_source(), _pre, batch_size=4, seed=2, process_index=1,
                                    process_count=2)
    fresh.set_state(state)
    self.assertEqual(_ids(fresh, 6), expected)
    it.set_state(state)                        # rewinding the same iterator
    self.assertEqual(_ids(it, 6), expected)


class EvalBatchesTest(absltest.TestCase):

  def test_in_order_finite_and_sharded(self):
    batches = list(pipeline.eval_batches(_source(), _pre, 4))
    self.assertEqual([b['id'].tolist() for b in batches], [list(range(i, i + 4))
                                                           for i in range(0, 20, 4)])
    parts = [[b['id'].tolist() for b in pipeline.eval_batches(_source(), _pre, 4, p, 2, 13)]
             for p in range(2)]
    self.assertEqual(parts, [[[0, 1], [4, 5], [8, 9]], [[2, 3], [6, 7], [10, 11]]])
    self.assertEqual(len(list(pipeline.eval_batches(_source(), _pre, 4))), 5)   # repeatable


class HelpersTest(absltest.TestCase):

  def test_pad_tokens(self):
    inputs, mask = pipeline.pad_tokens([5, 6, 7], 5)
    np.testing.assert_array_equal(inputs, [5, 6, 7, 0, 0])
    np.testing.assert_array_equal(mask, [1, 1, 1, 0, 0])
    inputs, mask = pipeline.pad_tokens(np.arange(1, 9), 4)
    np.testing.assert_array_equal(inputs, [1, 2, 3, 4])
    self.assertTrue(mask.all())


  def test_generate_parallel_matches_serial(self):
    # A partial with keywords, as the generated-dataset builders pass their options.
    make_chunk = functools.partial(np.arange, dtype=np.int64)
    chunks = [(s, s + 3) for s in (0, 3, 6)]
    serial = list(pipeline.generate_parallel(make_chunk, chunks, workers=1))
    parallel = list(pipeline.generate_parallel(make_chunk, chunks, workers=2))
    self.assertEqual(serial, list(range(9)))
    self.assertEqual(parallel, serial)


def test_open_tfds_missing_dataset_says_how_to_prepare(tmp_path):
  with pytest.raises(FileNotFoundError, match='download_and_prepare'):
    pipeline.open_tfds('mnist', 'train', data_dir=str(tmp_path))


if __name__ == '__main__':
  absltest.main()
