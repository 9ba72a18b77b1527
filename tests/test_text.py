"""Byte-level text tasks: LRA Text (IMDB via tfds mock data) and Retrieval (a tiny AAN build)."""
import os

import chex
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ltmjax.tasks import text

PAIRS = [  # label, id1, id2, text1, text2 (as in LRA's new_aan_pairs.*.tsv)
    ('1.0', 'P01-1001', 'P99-0001', 'We cite the parser of Smith.', 'A fast parser.'),
    ('0.0', 'P02-2002', 'P98-0002', 'Tagging with HMMs.', 'Café society, naïve übers 日本'),
    ('1', 'P03-3003', 'P97-0003', 'Long ' * 20, 'x'),
    ('0', 'P04-4004', 'P96-0004', 'Short.', 'Another abstract here.'),
]


def make_task(cls, batch_size=2, eval_batch_size=2, **overrides):
  cfg = cls.default_config()
  cfg.update(overrides)
  return cls(ml_collections.ConfigDict(cfg), seed=0, batch_size=batch_size,
             eval_batch_size=eval_batch_size, eval_examples=1024)


def write_tsv(folder, rows_by_file):
  os.makedirs(folder, exist_ok=True)
  for name, rows in rows_by_file.items():
    with open(os.path.join(folder, name), 'w', encoding='utf-8') as f:
      f.writelines('\t'.join(row) + '\n' for row in rows)


class BytesTest(chex.TestCase):

  def test_round_trip_utf8(self):
    s = 'Café — naïve 日本語 review!'
    inputs, mask = text.encode_bytes(s, 64)
    self.assertEqual((inputs.shape, inputs.dtype, mask.dtype), ((64,), np.int32, np.bool_))
    n = len(s.encode('utf-8'))
    self.assertEqual(int(mask.sum()), n)
    self.assertTrue(mask[:n].all() and not mask[n:].any())
    self.assertTrue((inputs[n:] == text.PAD_ID).all())
    self.assertTrue(((inputs[:n] >= 1) & (inputs[:n] <= 256)).all())
    self.assertEqual(text.decode_bytes(inputs).decode('utf-8'), s)
    np.testing.assert_array_equal(text.encode_bytes(s.encode('utf-8'), 64)[0], inputs)
    # byte b is token b + 1 (LRA's ByteTextEncoder ids): 'A' = 65 -> 66, byte 0 -> 1, 255 -> 256
    np.testing.assert_array_equal(text.encode_bytes(b'A\x00\xff', 3)[0], [66, 1, 256])

  def test_truncation(self):
    inputs, mask = text.encode_bytes('abcdefgh', 5)
    self.assertTrue(mask.all())
    self.assertEqual(text.decode_bytes(inputs), b'abcde')
    inputs, mask = text.encode_bytes('', 3)
    self.assertFalse(mask.any())


class TextTaskTest(chex.TestCase):

  def test_spec(self):
    task = make_task(text.TextTask)
    self.assertEqual(task.spec.input_kind, 'tokens')
    spec = task.spec
    self.assertEqual((spec.input_dim, spec.num_outputs, spec.seq_len), (257, 2, 4096))
    self.assertFalse(task.spec.pair)

  def test_imdb_batches_with_tfds_mock(self):
    with tfds.testing.mock_data(num_examples=6):
      task = make_task(text.TextTask, seq_len=12, batch_size=2, eval_batch_size=3)
      source = task.open_split('test')
      batches = list(task.eval_batches())
      self.assertLen(batches, 2)
      for b, batch in enumerate(batches):
        self.assertEqual(batch['inputs'].shape, (3, 12))
        self.assertEqual(batch['mask'].shape, (3, 12))
        for r in range(3):
          record = source[3 * b + r]
          raw = record['text']
          raw = raw.encode('utf-8') if isinstance(raw, str) else raw
          self.assertEqual(text.decode_bytes(batch['inputs'][r]), raw[:12])
          self.assertEqual(int(batch['mask'][r].sum()), min(len(raw), 12))
          self.assertEqual(batch['targets'][r], record['label'])
      train = next(task.train_iterator())
      self.assertEqual(set(train), {'inputs', 'mask', 'targets'})
      self.assertEqual(train['targets'].dtype, np.int32)

  def test_missing_imdb_is_a_one_line_error(self):
    task = make_task(text.TextTask, data_dir='/nonexistent/tfds')
    with self.assertRaises(FileNotFoundError) as e:
      task.train_iterator()
    self.assertNotIn('\n', str(e.exception))
    self.assertIn('download_and_prepare', str(e.exception))

  def test_loss_and_metrics(self):
    task = make_task(text.TextTask)
    logits = jnp.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    loss, metrics = task.loss_and_metrics(logits, {'targets': jnp.array([0, 1, 1])})
    self.assertAlmostEqual(float(metrics['accuracy']), 2 / 3, places=6)
    want = -np.mean(np.log([1 / (1 + np.exp(-2)), 1 / (1 + np.exp(-2)), 1 / (1 + np.exp(2))]))
    self.assertAlmostEqual(float(loss), want, places=5)


class RetrievalTest(chex.TestCase):

  @pytest.fixture(autouse=True)
  def _tmp(self, tmp_path):
    self.tmp = tmp_path
    self.manual = str(tmp_path / 'manual')
    self.data_dir = str(tmp_path / 'tfds')

  def write_all(self):
    write_tsv(self.manual, {'new_aan_pairs.train.tsv': PAIRS, 'new_aan_pairs.eval.tsv': PAIRS[:2],
                            'new_aan_pairs.test.tsv': PAIRS[2:]})

  def test_build_read_and_batch(self):
    self.write_all()
    task = make_task(text.RetrievalTask, seq_len=32, data_dir=self.data_dir,
                     manual_dir=self.manual, eval_batch_size=2)
    self.assertTrue(task.spec.pair)
    train = task.open_split('train')
    self.assertLen(train, 4)
    self.assertLen(task.open_split('validation'), 2)
    by_id = {row[1]: row for row in PAIRS}
    for i in range(4):
      record = train[i]
      row = by_id[record['id1'].decode()]
      self.assertEqual(record['text1'].decode('utf-8'), row[3])
      self.assertEqual(record['text2'].decode('utf-8'), row[4])
      self.assertEqual(record['label'], int(float(row[0])))
    # The prepared dataset is reused: the TSV files are no longer needed.
    for name in os.listdir(self.manual):
      os.remove(os.path.join(self.manual, name))
    batch = next(task.eval_batches())
    self.assertEqual(set(batch), {'inputs', 'mask', 'inputs2', 'mask2', 'targets'})
    for key in ('inputs', 'mask', 'inputs2', 'mask2'):
      self.assertEqual(batch[key].shape, (2, 32))
    test = task.open_split('test')
    for r in range(2):
      row = by_id[test[r]['id1'].decode()]
      self.assertEqual(text.decode_bytes(batch['inputs'][r]), row[3].encode()[:32])
      self.assertEqual(text.decode_bytes(batch['inputs2'][r]), row[4].encode()[:32])
      self.assertEqual(int(batch['mask2'][r].sum()), min(len(row[4].encode()), 32))
      self.assertEqual(batch['targets'][r], int(float(row[0])))
    train_batch = next(task.train_iterator())
    self.assertEqual(train_batch['inputs2'].shape, (2, 32))

  def test_missing_files_error_names_dir_and_instructions(self):
    write_tsv(self.manual, {'new_aan_pairs.train.tsv': PAIRS})
    task = make_task(text.RetrievalTask, data_dir=self.data_dir, manual_dir=self.manual)
    with self.assertRaises(FileNotFoundError) as e:
      task.train_iterator()
    message = str(e.exception)
    self.assertNotIn('\n', message)
    for part in (self.manual, 'new_aan_pairs.eval.tsv', 'lra_release.gz', 'tsv_data'):
      self.assertIn(part, message)
    # Only the missing files are named before the folder.
    self.assertIn(f'no new_aan_pairs.eval.tsv, new_aan_pairs.test.tsv in {self.manual}.', message)

  def test_default_manual_dir(self):
    self.assertEqual(text.aan_manual_dir('/d'), '/d/downloads/manual/lra_aan')
    task = make_task(text.RetrievalTask, data_dir=self.data_dir)
    with self.assertRaisesRegex(FileNotFoundError, 'downloads/manual/lra_aan'):
      task.open_split('train')

  def test_malformed_tsv_line(self):
    self.write_all()
    with open(os.path.join(self.manual, 'new_aan_pairs.test.tsv'), 'a') as f:
      f.write('1\tonly\tthree\n')
    with self.assertRaisesRegex(ValueError, r'new_aan_pairs.test.tsv:3: expected 5'):
      text.open_aan('train', self.data_dir, self.manual)
