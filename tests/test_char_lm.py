"""Character-level LM task: windows from the corpus, shifted targets, bpc, sources."""
import math
import os
import shutil
import tempfile

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltmjax.tasks import char_lm


def _task(seed=0, batch_size=8, eval_batch_size=4, eval_examples=8, **overrides):
  cfg = ml_collections.ConfigDict(dict(char_lm.CharLMTask.default_config(), **overrides))
  return char_lm.CharLMTask(cfg, seed=seed, batch_size=batch_size,
                            eval_batch_size=eval_batch_size, eval_examples=eval_examples)


def _tempdir(test) -> str:
  path = tempfile.mkdtemp()
  test.addCleanup(shutil.rmtree, path, ignore_errors=True)
  return path


def _occurs_in(window: np.ndarray, data: bytes) -> bool:
  return bytes(window.astype(np.uint8)) in data


class CharLMTest(chex.TestCase):

  def test_builtin_corpus(self):
    data = char_lm.load_builtin()
    self.assertEqual(data.dtype, np.uint8)
    self.assertGreater(len(data), 20_000)
    self.assertLess(len(data), 200_000)
    train, held_out = _task().corpus
    self.assertEqual(len(train) + len(held_out), len(data))
    self.assertAlmostEqual(len(held_out) / len(data), 0.1, places=3)
    np.testing.assert_array_equal(np.concatenate([train, held_out]), data)  # tail held out

  def test_spec_and_batch(self):
    task = _task(seq_len=32)
    self.assertEqual(task.spec.input_dim, 256)
    self.assertEqual(task.spec.num_outputs, 256)
    self.assertEqual(task.spec.seq_len, 32)
    self.assertTrue(task.spec.causal)
    batch = next(task.train_iterator())
    self.assertEqual(batch['inputs'].shape, (8, 32))
    self.assertEqual(batch['inputs'].dtype, np.int32)
    self.assertEqual(batch['targets'].shape, (8, 32))

  def test_windows_come_from_training_text_and_targets_are_shifted(self):
    task = _task(seq_len=32)
    train = bytes(task.corpus[0])
    batch = next(task.train_iterator())
    np.testing.assert_array_equal(batch['inputs'][:, 1:], batch['targets'][:, :-1])
    for x, y in zip(batch['inputs'], batch['targets']):
      self.assertTrue(_occurs_in(np.r_[x, y[-1:]], train))

  def test_determinism_by_seed_and_step(self):
    a, b = _task(seed=1).train_iterator(), _task(seed=1).train_iterator()
    a0, a1 = next(a), next(a)
    b.set_state(a.get_state())
    a2 = next(a)
    np.testing.assert_array_equal(next(b)['inputs'], a2['inputs'])
    self.assertFalse(np.array_equal(a0['inputs'], a1['inputs']))
    c = _task(seed=1).train_iterator()
    np.testing.assert_array_equal(next(c)['inputs'], a0['inputs'])

  def test_eval_windows_are_fixed_back_to_back_in_held_out_text(self):
    task = _task(seq_len=64, eval_batch_size=4, eval_examples=8)
    held_out = bytes(task.corpus[1])
    batches = list(task.eval_batches())
    self.assertLen(batches, 2)
    again = list(task.eval_batches())
    np.testing.assert_array_equal(batches[1]['inputs'], again[1]['inputs'])
    inputs = np.concatenate([b['inputs'] for b in batches])
    self.assertEqual(bytes(inputs.reshape(-1).astype(np.uint8)), held_out[:8 * 64])
    targets = np.concatenate([b['targets'] for b in batches])
    self.assertEqual(bytes(targets.reshape(-1).astype(np.uint8)), held_out[1:8 * 64 + 1])

  def test_small_held_out_text_still_fills_a_batch(self):
    task = _task(seq_len=256, eval_batch_size=32, eval_examples=1024)
    held_out = bytes(task.corpus[1])                  # ~2.5 KB: fewer than 32 windows
    batches = list(task.eval_batches())
    self.assertLen(batches, 1)
    self.assertEqual(batches[0]['inputs'].shape, (32, 256))
    for x in batches[0]['inputs']:
      self.assertTrue(_occurs_in(x, held_out))

  def test_eval_split_over_processes(self):
    task = _task(seq_len=16, eval_batch_size=8, eval_examples=16)
    full = list(task.eval_batches())
    halves = [list(task.eval_batches(p, 2)) for p in range(2)]
    for i, batch in enumerate(full):
      np.testing.assert_array_equal(
          np.concatenate([halves[0][i]['inputs'], halves[1][i]['inputs']]), batch['inputs'])

  @chex.variants(with_jit=True, without_jit=True)
  def test_bpc_is_loss_over_ln2(self):
    task = _task(seq_len=16)
    batch = next(task.train_iterator())
    logits = jax.random.normal(jax.random.PRNGKey(0), (8, 16, 256))
    loss, metrics = self.variant(task.loss_and_metrics)(logits, batch)
    expected = -jnp.take_along_axis(jax.nn.log_softmax(logits), batch['targets'][..., None],
                                    -1).mean()
    self.assertAlmostEqual(float(loss), float(expected), places=5)
    self.assertAlmostEqual(float(metrics['bpc']), float(expected) / math.log(2), places=5)
    acc = (jnp.argmax(logits, -1) == batch['targets']).mean()
    self.assertAlmostEqual(float(metrics['accuracy']), float(acc), places=6)

  def test_unigram_reference(self):
    task = _task()
    counts = np.bincount(task.corpus[0], minlength=256)
    p = counts[counts > 0] / counts.sum()
    self.assertAlmostEqual(task.reference_metrics()['unigram_bpc'],
                           float(-(p * np.log2(p)).sum()), places=9)
    self.assertTrue(3.0 < task.reference_metrics()['unigram_bpc'] < 5.5)

  def test_encode_decode(self):
    task = _task()
    tokens = task.encode('MARA: é')
    self.assertEqual(tokens.dtype, np.int32)
    self.assertEqual(tokens.tolist()[:5], [77, 65, 82, 65, 58])
    self.assertEqual(task.decode(tokens), 'MARA: é')

  def test_files_source(self):
    tmp = _tempdir(self)
    for name, word in (('b.txt', 'world '), ('a.txt', 'hello ')):
      with open(os.path.join(tmp, name), 'w') as f:
        f.write(word * 40)
    task = _task(source='files', data_dir=tmp, files='*.txt', seq_len=8)
    train, held_out = task.corpus
    text = ('hello ' * 40 + 'world ' * 40).encode()
    self.assertEqual(bytes(train) + bytes(held_out), text)    # sorted file order
    missing = _task(source='files', data_dir=tmp, files='*.md')
    with self.assertRaisesRegex(FileNotFoundError, 'task.files'):
      _ = missing.corpus

  def test_missing_tfds_dataset_is_one_clear_line(self):
    task = _task(source='tfds', data_dir=_tempdir(self))
    self.assertEqual(task.spec.input_dim, 256)                # building needs no data
    with self.assertRaises(FileNotFoundError) as ctx:
      _ = task.corpus
    message = str(ctx.exception)
    self.assertNotIn('\n', message)
    self.assertIn("download_and_prepare(file_format='array_record')", message)
    self.assertIn("task.source='files'", message)

  def test_bad_settings(self):
    with self.assertRaisesRegex(ValueError, 'source'):
      _task(source='web')
    with self.assertRaisesRegex(ValueError, 'seq_len'):
      _ = _task(seq_len=100_000).corpus
