"""Tests for ltmjax.tasks.synthetic: the copy memory task and the adding problem."""
import math

from absl.testing import absltest, parameterized
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltmjax import tasks
from ltmjax.tasks import synthetic


def _copy(blank_len=30, length=10, alphabet=8, **kw):
  cfg = ml_collections.ConfigDict(dict(blank_len=blank_len, length=length, alphabet=alphabet))
  kw = {'seed': 0, 'batch_size': 8, 'eval_batch_size': 4, 'eval_examples': 12, **kw}
  return synthetic.CopyTask(cfg, **kw)


def _adding(length=50, tolerance=0.04, **kw):
  cfg = ml_collections.ConfigDict(dict(length=length, tolerance=tolerance))
  kw = {'seed': 0, 'batch_size': 8, 'eval_batch_size': 4, 'eval_examples': 12, **kw}
  return synthetic.AddingTask(cfg, **kw)


def _assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])


class CopyTaskTest(parameterized.TestCase):

  @parameterized.parameters((30, 10, 8), (5, 3, 4), (1, 1, 2))
  def test_batch(self, blank_len, length, alphabet):
    task = _copy(blank_len, length, alphabet)
    t = blank_len + 2 * length
    self.assertEqual(task.spec.seq_len, t)
    self.assertEqual((task.spec.input_dim, task.spec.num_outputs), (alphabet + 2,) * 2)
    self.assertEqual((task.spec.output_kind, task.spec.causal), ('token', True))
    batch = next(task.train_iterator())
    x, y, w = batch['inputs'], batch['targets'], batch['weights']
    self.assertEqual((x.shape, y.shape, w.shape), ((8, t),) * 3)
    self.assertEqual((x.dtype, y.dtype, w.dtype), (np.int32, np.int32, np.float32))
    np.testing.assert_array_equal(w, 1.0)
    for row_x, row_y in zip(x, y):
      # Rebuild the example by hand from its symbols.
      symbols = row_x[:length]
      self.assertTrue(np.all((symbols >= 1) & (symbols <= alphabet)))
      expected_x = np.concatenate([symbols, np.zeros(blank_len - 1, int), [alphabet + 1],
                                   np.zeros(length, int)])
      expected_y = np.concatenate([np.zeros(blank_len + length, int), symbols])
      np.testing.assert_array_equal(row_x, expected_x)
      np.testing.assert_array_equal(row_y, expected_y)
      # The delimiter is the only token alphabet+1 and sits `length` steps before the end.
      self.assertEqual(list(np.flatnonzero(row_x == alphabet + 1)), [t - length - 1])

  def test_symbols_are_uniform(self):
    task = _copy(alphabet=4, batch_size=512)
    symbols = next(task.train_iterator())['inputs'][:, :10]
    counts = np.bincount(symbols.ravel(), minlength=5)[1:]
    np.testing.assert_allclose(counts / counts.sum(), 0.25, atol=0.02)

  def test_determinism(self):
    a, b = _copy().train_iterator(), _copy().train_iterator()
    first = next(a)
    _assert_batches_equal(first, next(b))            # same (seed, step) -> same batch
    second = next(a)
    self.assertFalse(np.array_equal(first['inputs'], second['inputs']))   # steps differ
    self.assertFalse(np.array_equal(first['inputs'], next(_copy(seed=1).train_iterator())['inputs']))
    # Resuming by state alone reproduces the stream.
    c = _copy().train_iterator()
    c.set_state(a.get_state())
    self.assertEqual(c.get_state(), {'step': 2})
    _assert_batches_equal(next(a), next(c))

  def test_global_batch_and_eval_set_do_not_depend_on_the_process_count(self):
    task = _copy(batch_size=8)
    whole = task.train_iterator()
    streams = {n: [task.train_iterator(i, n) for i in range(n)] for n in (2, 4)}
    for _ in range(3):
      batch = next(whole)
      for n, its in streams.items():
        parts = [next(it) for it in its]
        self.assertEqual(parts[0]['inputs'].shape[0], 8 // n)
        _assert_batches_equal({k: np.concatenate([p[k] for p in parts]) for k in batch}, batch)
    # A stream resumed on another topology continues with the same global batches.
    resumed = [task.train_iterator(i, 2) for i in range(2)]
    for it in resumed:
      it.set_state(whole.get_state())
    expected = next(whole)
    parts = [next(it) for it in resumed]
    _assert_batches_equal({k: np.concatenate([p[k] for p in parts]) for k in expected}, expected)
    evals = [list(task.eval_batches(i, 4)) for i in range(4)]
    for k, batch in enumerate(task.eval_batches()):
      np.testing.assert_array_equal(np.concatenate([e[k]['inputs'] for e in evals]),
                                    batch['inputs'])
    with self.assertRaises(ValueError):
      task.train_iterator(0, 3)

  def test_eval_set(self):
    task = _copy()
    first, again = list(task.eval_batches()), list(task.eval_batches())
    self.assertLen(first, 3)   # 12 examples in batches of 4
    for a, b in zip(first, again):
      _assert_batches_equal(a, b)
    self.assertFalse(np.array_equal(first[0]['inputs'], first[1]['inputs']))
    self.assertFalse(np.array_equal(first[0]['inputs'], next(task.train_iterator())['inputs'][:4]))
    # Two processes split each eval batch into disjoint halves of the same fixed set.
    halves = [list(task.eval_batches(i, 2)) for i in range(2)]
    for k, batch in enumerate(first):
      np.testing.assert_array_equal(
          np.concatenate([halves[0][k]['inputs'], halves[1][k]['inputs']]), batch['inputs'])

  def test_memoryless_baseline(self):
    task = _copy(blank_len=100)
    ref = task.reference_metrics()
    self.assertAlmostEqual(ref['memoryless_loss'], 10 * math.log(8) / (100 + 20))
    self.assertAlmostEqual(ref['chance_recall_accuracy'], 1 / 8)
    # The memoryless strategy (certain blank, then uniform over symbols) scores exactly that.
    batch = next(task.train_iterator())
    t, n = task.spec.seq_len, task.length
    log_p = np.full((8, t, 10), -1e9, np.float32)
    log_p[:, :t - n, 0] = 0.0
    log_p[:, t - n:, 1:9] = 0.0
    loss, _ = task.loss_and_metrics(jnp.asarray(log_p), batch)
    self.assertAlmostEqual(float(loss), ref['memoryless_loss'], places=5)

  def test_recall_accuracy(self):
    task = _copy()
    batch = next(task.train_iterator())
    perfect = jax.nn.one_hot(batch['targets'], task.spec.num_outputs) * 10.0
    _, m = task.loss_and_metrics(perfect, batch)
    self.assertEqual(float(m['recall_accuracy']), 1.0)
    self.assertEqual(float(m['accuracy']), 1.0)
    blank = jax.nn.one_hot(jnp.zeros_like(batch['targets']), task.spec.num_outputs) * 10.0
    _, m = task.loss_and_metrics(blank, batch)
    self.assertEqual(float(m['recall_accuracy']), 0.0)
    t, n = task.spec.seq_len, task.length
    self.assertAlmostEqual(float(m['accuracy']), (t - n) / t, places=6)
    # Half the recalled symbols right -> recall accuracy 1/2.
    half = np.asarray(batch['targets']).copy()
    half[:, -n::2] = 0
    _, m = task.loss_and_metrics(jax.nn.one_hot(half, task.spec.num_outputs), batch)
    self.assertAlmostEqual(float(m['recall_accuracy']), 0.5)

  def test_bad_config(self):
    with self.assertRaises(ValueError):
      _copy(blank_len=0)


class AddingTaskTest(parameterized.TestCase):

  @parameterized.parameters(50, 7, 2)
  def test_batch(self, length):
    task = _adding(length)
    self.assertEqual((task.spec.input_kind, task.spec.input_dim), ('real', 2))
    self.assertEqual((task.spec.output_kind, task.spec.num_outputs), ('sequence', 1))
    batch = next(task.train_iterator())
    x, y = batch['inputs'], batch['targets']
    self.assertEqual((x.shape, y.shape), ((8, length, 2), (8, 1)))
    self.assertEqual((x.dtype, y.dtype), (np.float32, np.float32))
    values, markers = x[..., 0], x[..., 1]
    self.assertTrue(np.all((values >= -1) & (values <= 1)))
    self.assertTrue(np.all((markers == 0) | (markers == 1)))
    half = length // 2
    np.testing.assert_array_equal(markers[:, :half].sum(1), 1)   # one marker per half
    np.testing.assert_array_equal(markers[:, half:].sum(1), 1)
    expected = 0.5 + (values * markers).sum(1) / 4.0
    np.testing.assert_allclose(y[:, 0], expected, rtol=1e-6)

  def test_determinism_and_eval(self):
    a, b = _adding().train_iterator(), _adding().train_iterator()
    first = next(a)
    _assert_batches_equal(first, next(b))
    self.assertFalse(np.array_equal(first['inputs'], next(a)['inputs']))
    for x, y in zip(_adding().eval_batches(), _adding().eval_batches()):
      _assert_batches_equal(x, y)

  def test_success_and_mse(self):
    task = _adding(tolerance=0.04)
    batch = next(task.train_iterator())
    y = jnp.asarray(batch['targets'])
    err = jnp.array([0.0, 0.01, -0.039, 0.041, -0.05, 0.2, 0.0, 0.03])[:, None]
    loss, m = task.loss_and_metrics(y + err, batch)
    self.assertAlmostEqual(float(m['success']), 5 / 8)
    self.assertAlmostEqual(float(m['mse']), float(jnp.mean(err ** 2)), places=6)
    self.assertAlmostEqual(float(loss), float(m['mse']), places=7)

  def test_reference_mse(self):
    task = _adding(length=20, batch_size=20000)
    targets = next(task.train_iterator())['targets'][:, 0]
    self.assertAlmostEqual(task.reference_metrics()['memoryless_mse'], 1 / 24)
    # Predicting the mean (1/2) has MSE Var(target) = 2 * Var(U[-1,1]) / 16 = 1/24.
    self.assertAlmostEqual(float(targets.mean()), 0.5, delta=0.005)
    self.assertAlmostEqual(float(((targets - 0.5) ** 2).mean()), 1 / 24, delta=0.002)


class RegistryTest(absltest.TestCase):

  def test_registry(self):
    self.assertIs(tasks.get('copy'), synthetic.CopyTask)
    self.assertIs(tasks.get('adding'), synthetic.AddingTask)
    with self.assertRaisesRegex(ValueError, 'known tasks'):
      tasks.get('nope')
    # Defaults build through the trainer's keyword arguments.
    for name in ('copy', 'adding'):
      cls = tasks.get(name)
      task = cls(ml_collections.ConfigDict(cls.default_config()), seed=0, batch_size=4,
                 eval_batch_size=2, eval_examples=4)
      self.assertEqual(next(task.train_iterator())['inputs'].shape[0], 4)
