"""Passkey / multi-key needle retrieval: answers read back from the text, depth and length
control, chunked == whole, determinism, digit-class metrics."""
import os
import re
import shutil
import tempfile

import chex
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltmjax import tasks
from ltmjax.tasks import haystack, passkey

SINGLE = re.compile(r' The pass key is (\d+)\. Remember it\. (\d+) is the pass key\.')
MULTI = re.compile(r' The special magic number for (\w+) is (\d+)\.')
NEEDLE = re.compile(SINGLE.pattern + '|' + MULTI.pattern)
QUESTION = re.compile(r'\nQ: What is the (?:pass key|special magic number for (\w+))\?\Z')


def solve(text: str):
  """(answer digits, {key: (position, value)}) read from the text alone."""
  q = QUESTION.search(text)
  assert q, f'no question at the end of {text[-60:]!r}'
  body = text[:q.start()]
  found = {}
  for m in SINGLE.finditer(body):
    assert m.group(1) == m.group(2)
    found.setdefault('', []).append((m.start(), m.group(1)))
  for m in MULTI.finditer(body):
    found.setdefault(m.group(1), []).append((m.start(), m.group(2)))
  key = q.group(1) or ''
  assert len(found[key]) == 1, f'{len(found[key])} needles for {key!r}'
  return [int(d) for d in found[key][0][1]], found


def _task(kind='single', length=1000, depth='uniform', digits=5, needles=4, seed=0, **kw):
  cfg = ml_collections.ConfigDict(dict(passkey.PasskeyTask.default_config(), kind=kind,
                                       length=length, depth=depth, digits=digits,
                                       needles=needles, **kw))
  return passkey.PasskeyTask(cfg, seed=seed, batch_size=4, eval_batch_size=4, eval_examples=8)


def _text(data) -> str:
  return bytes(np.asarray(data, np.uint8)).decode('utf-8')


class PasskeyTest(chex.TestCase):

  def test_registry_spec_batch(self):
    self.assertIs(tasks.get('passkey'), passkey.PasskeyTask)
    task = _task(digits=3)
    self.assertEqual((task.spec.input_dim, task.spec.output_kind, task.spec.num_outputs,
                      task.spec.seq_len), (257, 'sequence', 30, 1000))
    batch = next(task.train_iterator())
    self.assertEqual(batch['inputs'].shape, (4, 1000))
    self.assertEqual(batch['targets'].shape, (4, 3))
    self.assertEqual(batch['targets'].dtype, np.int32)

  def test_solver_recomputes_every_answer(self):
    for kind, needles in (('single', 1), ('multikey', 1), ('multikey', 6)):
      task = _task(kind, needles=needles, seed=2)
      for i in range(200):
        data, label = task.example(i)
        digits, found = solve(_text(data))
        self.assertEqual(digits, list(label), f'{kind} example {i}')
        self.assertEqual(sum(len(v) for v in found.values()), needles)   # nothing else reads as one

  def test_filler_is_sanitized(self):
    text = _text(_task().filler.data)
    self.assertIsNone(re.search(r'(?i)pass\s*key|magic number', text))
    folder = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
    with open(os.path.join(folder, 'a.txt'), 'w') as f:
      f.write('Old text. The pass key is 12345. The special magic number for jade is 9.\n'
              'The Pass  Key was lost. A Jade ring. More text.\n')
    task = _task('multikey', filler_dir=folder, length=600)
    self.assertEqual(task.filler.data.tobytes(), b'Old text.\n More text.\n')
    for i in range(20):
      data, label = task.example(i)
      self.assertEqual(solve(_text(data))[0], list(label))

  def test_depth_control(self):
    length = 20_000
    gap = np.diff(_task().filler.starts).max()   # the longest sentence of the filler
    for kind in ('single', 'multikey'):
      for depth in (0.0, 0.1, 0.5, 0.9, 1.0):
        task = _task(kind, length=length, depth=str(depth), needles=3)
        for i in range(10):
          data, _ = task.example(i)
          text = _text(data)
          key = QUESTION.search(text).group(1) or ''
          pos = solve(text)[1][key][0][0]
          needles = [m.span() for m in NEEDLE.finditer(text)]
          question = len(text) - QUESTION.search(text).start()
          filler = length - sum(e - s for s, e in needles) - question
          at = pos - sum(e - s for s, e in needles if e <= pos)   # its position in the filler
          self.assertLessEqual(abs(at / filler - depth), gap / filler,
                               f'{kind} depth {depth} example {i}')
    task = _task(length=4000)
    positions = np.array([_text(task.example(i)[0]).index(' The pass key') for i in range(400)])
    quarters = np.bincount(np.minimum(positions * 4 // 4000, 3), minlength=4)
    self.assertTrue((quarters > 70).all(), f'uniform depth is not uniform: {quarters}')

  def test_exact_length_and_chunks(self):
    task = _task('multikey', needles=5)
    short = task.max_story_bytes()
    for length in (short, 1234, 1_000_000):
      data, label = task.example(1, length)
      self.assertEqual(data.shape, (length,))
      self.assertEqual(solve(_text(data))[0], list(label))
    whole, label = task.example(3, 5000)
    for chunk in (1, 13, 4096, 5000, 9999):
      parts, label2 = task.example_chunks(3, 5000, chunk)
      np.testing.assert_array_equal(np.concatenate(list(parts)), whole)
      np.testing.assert_array_equal(label2, label)
    with self.assertRaisesRegex(ValueError, 'too short'):
      _task(length=40)

  def test_determinism_and_same_key_at_every_length(self):
    a, b = _task().train_iterator(), _task().train_iterator()
    chex.assert_trees_all_equal(next(a), next(b))
    self.assertFalse(np.array_equal(next(a)['inputs'], next(_task(seed=5).train_iterator())['inputs']))
    task = _task('multikey')
    for i in range(5):
      small, label = task.example(i, 300)
      large, label2 = task.example(i, 30_000)
      np.testing.assert_array_equal(label, label2)
      self.assertEqual(solve(_text(small))[1].keys(), solve(_text(large))[1].keys())

  def test_digits_balanced(self):
    task = _task(length=300, digits=4)
    labels = np.stack([task.example(i)[1] for i in range(1000)])
    for d in range(4):
      counts = np.bincount(labels[:, d], minlength=10)
      self.assertLess(((counts - 100) ** 2 / 100).sum(), 35.0, counts)   # chi2, 9 dof

  def test_loss_and_metrics(self):
    task = _task(digits=3)
    targets = np.array([[1, 2, 3], [9, 0, 0]])
    logits = 10.0 * jnp.eye(10)[targets].reshape(2, 30)
    loss, m = task.loss_and_metrics(logits, {'targets': targets})
    self.assertAlmostEqual(float(m['accuracy']), 1.0)
    self.assertLess(float(loss), 1e-3)
    wrong = targets.copy()
    wrong[1, 2] = 5                                 # one digit of the second key wrong
    _, m = task.loss_and_metrics(10.0 * jnp.eye(10)[wrong].reshape(2, 30), {'targets': targets})
    self.assertAlmostEqual(float(m['accuracy']), 0.5)
    self.assertAlmostEqual(float(m['digit_accuracy']), 5 / 6, places=6)

  def test_bad_config(self):
    for bad in ('deep', '1.5', '-0.1'):
      with self.assertRaisesRegex(ValueError, 'task.depth'):
        _task(depth=bad)
    with self.assertRaisesRegex(ValueError, 'task.needles'):
      _task('multikey', needles=17)
    with self.assertRaisesRegex(ValueError, 'unknown task.kind'):
      _task('haystack')
