"""Tests for RMT's copy across segments (ltmjax.tasks.synthetic.SegmentCopyTask) and its config.

The rules are those of github.com/booydar/LM-RMT: `copy_generator` in
generation/algorithmic.ipynb (source tokens uniform in 2..NUM_TOKENS-1, answer [1, x, x];
NUM_TOKENS = 12, the published runs' ntokens),
`data_loader` in pytorch/experiment_utils/generate_data.py (hstack, then src = [:-1],
tgt = [1:]) and train_synthetic.py (the last answer_size = 48 positions are scored).
"""
import importlib.util
import math
import os

from absl.testing import absltest
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ltmjax import config_lib, tasks
from ltmjax.tasks import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(spec):
  path, arg = spec.split(':')
  module_spec = importlib.util.spec_from_file_location('cfg', os.path.join(ROOT, path))
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg)


def _task(length=24, vocab=12, **kw):
  cfg = ml_collections.ConfigDict(dict(length=length, vocab=vocab))
  kw = {'seed': 0, 'batch_size': 16, 'eval_batch_size': 8, 'eval_examples': 16, **kw}
  return synthetic.SegmentCopyTask(cfg, **kw)


def _original(x_BxN):
  """The original's (src, tgt, scored) from its sources, written after LM-RMT's code."""
  y = np.concatenate([np.ones((len(x_BxN), 1), int), x_BxN, x_BxN], axis=1)   # y[:, 0] = 1
  stacked = np.hstack((x_BxN, y))
  src, tgt = stacked[:, :-1], stacked[:, 1:]
  answer_size = 2 * x_BxN.shape[1]
  scored = np.zeros(src.shape, bool)
  scored[:, -answer_size:] = True
  return src, tgt, scored


class SegmentCopyTest(absltest.TestCase):

  def test_batch_follows_the_original_rules(self):
    task = _task()
    self.assertEqual(task.spec.seq_len, 72)
    self.assertEqual((task.spec.input_dim, task.spec.num_outputs), (12, 12))
    self.assertEqual((task.spec.output_kind, task.spec.causal), ('token', True))
    batch = next(task.train_iterator())
    x, y, w = batch['inputs'], batch['targets'], batch['weights']
    self.assertEqual((x.shape, y.shape, w.shape), ((16, 72),) * 3)
    self.assertEqual((x.dtype, y.dtype, w.dtype), (np.int32, np.int32, np.float32))
    src, tgt, scored = _original(x[:, :24])
    np.testing.assert_array_equal(x, src)
    np.testing.assert_array_equal(y, tgt)
    np.testing.assert_array_equal(w, scored.astype(np.float32))
    self.assertEqual(int(w.sum()), 16 * 48)

  def test_symbols_are_uniform_over_2_to_vocab_minus_1(self):
    source = next(_task(batch_size=1024).train_iterator())['inputs'][:, :24]
    self.assertEqual(set(np.unique(source)), set(range(2, 12)))
    freq = np.bincount(source.ravel(), minlength=12)[2:] / source.size
    np.testing.assert_allclose(freq, 1 / 10, atol=0.01)

  def test_every_answer_is_a_segment_or_more_after_what_it_copies(self):
    # With segments of 12 (RMT's 6 x 12), no scored target is visible in its own segment.
    x = next(_task().train_iterator())['inputs']
    for t in range(24, 72):
      copied = (t - 24) % 24    # the target at t is source token `copied`
      self.assertGreaterEqual(t - copied, 24)
      self.assertLess(copied // 12, t // 12)
    np.testing.assert_array_equal(x[:, 25:49], x[:, :24])

  @pytest.mark.slow   # compiles the loss: ~2-8 s on 2 busy cores
  def test_metrics_and_memoryless_loss(self):
    task = _task()
    batch = next(task.train_iterator())
    perfect = 30.0 * np.eye(12, dtype=np.float32)[batch['targets']]
    loss, m = task.loss_and_metrics(jnp.asarray(perfect), batch)
    self.assertAlmostEqual(float(m['accuracy']), 1.0)
    self.assertLess(float(loss), 1e-6)
    # A model without memory: uniform over the 10 symbols -> cross-entropy log 10.
    uniform = np.full((16, 72, 12), -1e9, np.float32)
    uniform[..., 2:] = 0.0
    loss, _ = task.loss_and_metrics(jnp.asarray(uniform), batch)
    self.assertAlmostEqual(float(loss), math.log(10), places=4)
    self.assertAlmostEqual(task.reference_metrics()['memoryless_loss'], math.log(10))
    self.assertAlmostEqual(task.reference_metrics()['chance_accuracy'], 1 / 10)

  def test_registry_and_bad_config(self):
    self.assertIs(tasks.get('segment_copy'), synthetic.SegmentCopyTask)
    with self.assertRaises(ValueError):
      _task(vocab=2)

  def test_config_is_the_published_setting(self):
    c = load_config('configs/segment_copy.py:ltmt,steps=7')
    self.assertEqual((c.task.length, c.task.vocab, c.train.steps), (24, 12, 7))
    self.assertEqual((c.model.segment, c.model.memory_slots), (12, 6))
    self.assertEqual((c.model.layers, c.model.dim, c.model.heads, c.model.mlp_dim),
                     (4, 128, 4, 256))
    self.assertEqual(3 * c.task.length // c.model.segment, 6)   # 6 segments of 12

  def test_copy_config_symbols(self):
    c = load_config('configs/copy.py:gru,cpu,T=200,symbols=10,steps=5')
    self.assertEqual((c.task.blank_len, c.task.length, c.train.steps), (200, 10, 5))
    self.assertEqual(config_lib.model_arg('gru,cpu'), 'gru')


if __name__ == '__main__':
  absltest.main()
