"""Selective copying and MQAR: batch layout, labels recomputed independently, determinism."""
import math

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltmjax.tasks import recall


def _task(cls, seed=0, batch_size=8, eval_batch_size=4, eval_examples=8, **overrides):
  cfg = ml_collections.ConfigDict(dict(cls.default_config(), **overrides))
  return cls(cfg, seed=seed, batch_size=batch_size, eval_batch_size=eval_batch_size,
             eval_examples=eval_examples)


def _sc(**kw):
  return _task(recall.SelectiveCopyTask, **dict(dict(length=40, num_tokens=5, vocab=8), **kw))


def _mqar(**kw):
  return _task(recall.MQARTask, **dict(dict(length=64, num_pairs=6, vocab=64), **kw))


class SelectiveCopyTest(chex.TestCase):

  def test_spec_and_shapes(self):
    task = _sc()
    self.assertEqual(task.spec.seq_len, 45)
    self.assertEqual((task.spec.input_dim, task.spec.num_outputs), (8, 8))
    self.assertTrue(task.spec.causal)
    self.assertEqual(task.spec.output_kind, 'token')
    batch = next(task.train_iterator())
    for key, dtype in (('inputs', np.int32), ('targets', np.int32), ('weights', np.float32)):
      self.assertEqual(batch[key].shape, (8, 45))
      self.assertEqual(batch[key].dtype, dtype)

  def test_labels_are_the_data_tokens_in_order(self):
    task = _sc()
    batch = task.make_batch(np.random.default_rng(3), 16)
    for x, y, w in zip(batch['inputs'], batch['targets'], batch['weights']):
      span, markers = x[:40], x[40:]
      np.testing.assert_array_equal(markers, 7)                 # marker = vocab - 1
      data = span[span != 0]                                    # 0 = noise
      self.assertEqual(len(data), 5)
      self.assertTrue(np.all((data >= 1) & (data <= 6)))
      np.testing.assert_array_equal(y[40:], data)
      np.testing.assert_array_equal(w, np.r_[np.zeros(40), np.ones(5)])
      np.testing.assert_array_equal(y[:40], 0)

  def test_positions_vary(self):
    batch = _sc().make_batch(np.random.default_rng(0), 64)
    first = np.argmax(batch['inputs'][:, :40] != 0, axis=1)
    self.assertGreater(len(set(first.tolist())), 5)           # not a fixed layout

  def test_determinism_by_seed_and_step(self):
    a, b = _sc(seed=1).train_iterator(), _sc(seed=1).train_iterator()
    a0, a1 = next(a), next(a)
    b.set_state({'step': 1})
    np.testing.assert_array_equal(next(b)['inputs'], a1['inputs'])
    self.assertFalse(np.array_equal(a0['inputs'], a1['inputs']))
    other = next(_sc(seed=2).train_iterator())
    self.assertFalse(np.array_equal(other['inputs'], a0['inputs']))

  def test_eval_set_is_fixed(self):
    task = _sc()
    first = list(task.eval_batches())
    second = list(task.eval_batches())
    self.assertLen(first, 2)
    for x, y in zip(first, second):
      np.testing.assert_array_equal(x['inputs'], y['inputs'])
    train = next(task.train_iterator())
    self.assertFalse(np.array_equal(train['inputs'][:4], first[0]['inputs']))

  def test_metrics_count_recall_positions_only(self):
    task = _sc()
    batch = task.make_batch(np.random.default_rng(0), 4)
    # Right at every recall position, wrong everywhere else.
    logits = jax.nn.one_hot((batch['targets'] + 1) % 8, 8) * 5.0
    logits = logits.at[:, 40:].set(jax.nn.one_hot(batch['targets'][:, 40:], 8) * 5.0)
    loss, metrics = task.loss_and_metrics(logits, batch)
    self.assertAlmostEqual(float(metrics['accuracy']), 1.0)
    self.assertAlmostEqual(float(metrics['sequence_accuracy']), 1.0)
    expected = -jax.nn.log_softmax(jnp.array([5.0] + [0.0] * 7))[0]
    self.assertAlmostEqual(float(loss), float(expected), places=5)
    ref = task.reference_metrics()
    self.assertAlmostEqual(ref['memoryless_loss'], math.log(6))

  def test_bad_settings(self):
    with self.assertRaises(ValueError):
      _sc(num_tokens=41)
    with self.assertRaises(ValueError):
      _sc(vocab=2)


class MQARTest(chex.TestCase):

  def test_spec_and_shapes(self):
    task = _mqar()
    self.assertEqual(task.spec.seq_len, 64)
    self.assertEqual(task.spec.input_dim, 64)
    self.assertTrue(task.spec.causal)
    batch = next(task.train_iterator())
    self.assertEqual(batch['inputs'].shape, (8, 64))
    self.assertEqual(batch['inputs'].dtype, np.int32)
    self.assertEqual(batch['targets'].dtype, np.int32)
    self.assertEqual(batch['weights'].dtype, np.float32)

  def test_answers_by_dict_lookup(self):
    # An independent recomputation: the value that follows each queried key in the context.
    task = _mqar()
    batch = task.make_batch(np.random.default_rng(5), 32)
    half = 32
    for x, y, w in zip(batch['inputs'], batch['targets'], batch['weights']):
      keys, values = x[0:12:2], x[1:12:2]
      self.assertEqual(len(set(keys.tolist())), 6)               # distinct keys
      self.assertEqual(len(set(values.tolist())), 6)             # distinct values
      self.assertTrue(np.all((keys >= 1) & (keys < half)))
      self.assertTrue(np.all((values >= half) & (values < 64)))
      table = dict(zip(keys.tolist(), values.tolist()))
      queries = np.nonzero(w)[0]
      self.assertEqual(len(queries), 6)
      self.assertTrue(np.all(queries >= 12) and np.all((queries - 12) % 2 == 0))
      self.assertEqual(sorted(x[queries].tolist()), sorted(keys.tolist()))  # each key once
      for q in queries:
        self.assertEqual(y[q], table[x[q]])
      np.testing.assert_array_equal(y[w == 0], 0)

  def test_non_query_tokens_are_random_by_default_and_zero_when_switched_off(self):
    rng = np.random.default_rng(1)
    batch = _mqar().make_batch(rng, 256)
    rest = batch['inputs'][:, 12:][batch['weights'][:, 12:] == 0]   # [N] non-query tokens
    self.assertTrue(((rest >= 0) & (rest < 64)).all())
    counts = np.bincount(rest, minlength=64)
    expected = len(rest) / 64                                      # uniform over 0..63
    self.assertLess(np.abs(counts - expected).max(), 5 * np.sqrt(expected))
    batch = _mqar(random_non_queries=False).make_batch(np.random.default_rng(1), 16)
    rest = batch['inputs'][:, 12:][batch['weights'][:, 12:] == 0]
    np.testing.assert_array_equal(rest, 0)

  def test_query_slots_follow_zoologys_sequential_draw(self):
    # Zoology: np.random.choice(space, size=pairs, replace=False, p ~ a * g^(a-1)), and pair
    # i's query goes to the i-th draw. Compare the mean slot of each pair with that sampler.
    length, pairs, a, n = 64, 6, 0.01, 4000
    batch = _mqar(power_a=a).make_batch(np.random.default_rng(2), n)
    x, w = batch['inputs'], batch['weights']
    ours = np.zeros((n, pairs))
    for b in range(n):
      queries = np.nonzero(w[b])[0]
      slot_of_key = {x[b, q]: (q - 2 * pairs) // 2 for q in queries}
      ours[b] = [slot_of_key[k] for k in x[b, 0:2 * pairs:2]]
    space = (length - 2 * pairs) // 2
    prob = a * np.arange(1, space + 1) ** (a - 1)
    ref_rng = np.random.RandomState(0)
    ref = np.stack([ref_rng.choice(space, size=pairs, replace=False, p=prob / prob.sum())
                    for _ in range(n)])
    se = np.sqrt(ours.var(0) / n + ref.var(0) / n)
    np.testing.assert_array_less(np.abs(ours.mean(0) - ref.mean(0)), 4 * se)
    self.assertLess(ours.mean(0)[0] + 2, ours.mean(0)[-1])          # the first pair is asked early

  def test_power_law_prefers_early_slots(self):
    task = _mqar(length=256, num_pairs=4, vocab=64, power_a=0.01)
    batch = task.make_batch(np.random.default_rng(0), 256)
    slots = (np.nonzero(batch['weights'])[1] - 8) // 2            # 0 .. 123
    self.assertGreater(np.mean(slots < 31), 0.4)                  # uniform would give 0.25

  def test_paper_extremes_build(self):
    for length, pairs in ((64, 4), (512, 64)):
      task = _mqar(length=length, num_pairs=pairs, vocab=8192)
      batch = task.make_batch(np.random.default_rng(0), 2)
      self.assertEqual(batch['weights'].sum(), 2 * pairs)

  def test_determinism_and_eval(self):
    a, b = _mqar(seed=3).train_iterator(), _mqar(seed=3).train_iterator()
    a0, a1 = next(a), next(a)
    np.testing.assert_array_equal(next(b)['inputs'], a0['inputs'])
    self.assertFalse(np.array_equal(a0['inputs'], a1['inputs']))
    task = _mqar()
    e1, e2 = list(task.eval_batches()), list(task.eval_batches())
    np.testing.assert_array_equal(e1[1]['targets'], e2[1]['targets'])

  @chex.variants(with_jit=True, without_jit=True)
  def test_metrics(self):
    task = _mqar()
    batch = task.make_batch(np.random.default_rng(0), 4)
    logits = jax.nn.one_hot(batch['targets'], 64) * 10.0
    loss, metrics = self.variant(task.loss_and_metrics)(logits, batch)
    self.assertAlmostEqual(float(metrics['accuracy']), 1.0)
    self.assertAlmostEqual(float(loss), math.log1p(63 * math.exp(-10.0)), places=6)
    # Wrong at every non-query position (context and random tokens): still perfect.
    wrong = jax.nn.one_hot((batch['targets'] + 1) % 64, 64) * 10.0
    logits = jnp.where(batch['weights'][..., None] > 0, logits, wrong)
    self.assertAlmostEqual(float(self.variant(task.loss_and_metrics)(logits, batch)[1]['accuracy']),
                           1.0)
    self.assertAlmostEqual(task.reference_metrics()['chance_accuracy'], 1 / 32)

  def test_bad_settings(self):
    with self.assertRaises(ValueError):
      _mqar(length=20, num_pairs=6)
    with self.assertRaises(ValueError):
      _mqar(vocab=8, num_pairs=6)
    with self.assertRaises(ValueError):
      _mqar(power_a=0.0)
