"""ListOps: labels re-derived by an independent parser; the distribution of LRA's generator rules
(computed exactly by dynamic programming, not by running a generator); brackets; tiny tfds build."""
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


def _arities(tokens):
  """Operand count of every operator, by a bracket stack over the token ids."""
  stack, out = [], []
  for t in tokens:
    if t == listops.END:
      out.append(stack.pop())
      continue
    if stack:
      stack[-1] += 1
    if t in listops.OPERATORS:
      stack.append(0)
  return out


def _operator_depths(tokens):
  """Nesting depth (root operator = 1) of every operator."""
  depth, out = 0, []
  for t in tokens:
    if t in listops.OPERATORS:
      depth += 1
      out.append(depth)
    elif t == listops.END:
      depth -= 1
  return out


def _conv(a, b, n):
  """(a * b)[..., :n] along the last axis, by FFT (exact up to rounding: size >= 2n - 1)."""
  size = 1 << (2 * n - 1).bit_length()
  return np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)[..., :n]


def _lra_rules(n, max_depth=10, max_args=10, p_op=0.25, op_depth_cap=None):
  """The exact distribution of a tree drawn by LRA's rules (lra_benchmarks/data/listops.py).

  A node below max_depth is an operator with probability p_op (else a digit), an operator
  has uniform 2..max_args operands one level deeper, and length = 2 + the operands' lengths.
  Returns, for the root and lengths L = 0..n-1: P[L]; E[#operators at depth d; L] as a
  [max_depth, n] array (row d; sums over trees of length L weighted by probability); and
  E[sum of operand counts; L]. With op_depth_cap = D only trees whose operators all sit at
  depth <= D count (a sub-probability).
  """
  leaf = np.eye(1, n, 1)[0]
  # A node at depth max_depth is a digit.
  p, ops, arity = leaf.copy(), np.zeros((max_depth, n)), np.zeros(n)
  for depth in range(max_depth - 1, 0, -1):
    q = p_op if op_depth_cap is None or depth <= op_depth_cap else 0.0
    p_k, ops_k, ar_k = np.eye(1, n)[0], np.zeros((max_depth, n)), np.zeros(n)   # k operands
    new_p, new_ops, new_ar = np.zeros(n), np.zeros((max_depth, n)), np.zeros(n)
    for k in range(1, max_args + 1):
      # One operand more: P convolves; an additive count gains the new operand's count.
      ops_k = _conv(ops_k, p, n) + _conv(p_k, ops, n)
      ar_k = _conv(ar_k, p, n) + _conv(p_k, arity, n)
      p_k = _conv(p_k, p, n)
      if k >= 2:
        w = q / (max_args - 1)
        this = np.zeros((max_depth, n))
        this[depth] = p_k                                  # the operator itself
        new_p[2:] += w * p_k[:n - 2]
        new_ops[:, 2:] += w * (ops_k + this)[:, :n - 2]
        new_ar[2:] += w * (ar_k + k * p_k)[:n - 2]          # its k operands
    p = (1 - p_op) * leaf + new_p      # a capped operator's mass is left out, not made a digit
    ops, arity = new_ops, new_ar
  return p, ops, arity


class LRADistributionTest(absltest.TestCase):
  """Our sampler against the exact expectations of LRA's rules, 500 < length < 2000.

  Tolerances: 4 binomial standard errors per length bin (plus 0.01); 0.05 on the mean
  operand count (its standard error here is about 0.01); 0.01 on the share of operators at
  each depth. The generator before this test had a mean of 4.21 operands and depth 10.
  """

  @classmethod
  def setUpClass(cls):
    cls.n = 600
    cls.examples = [listops.generate_example(listops.example_rng(1, 'train', i))
                    for i in range(cls.n)]
    p, ops, arity = _lra_rules(2000)
    keep = slice(501, 2000)                         # LRA keeps 500 < L < 2000
    cls.p_length = p[keep] / p[keep].sum()
    cls.mean_arity = arity[keep].sum() / ops[:, keep].sum()
    cls.depth_share = ops[:, keep].sum(1) / ops[:, keep].sum()      # [10]: depths 0..9
    cls.p_depth_at_most_8 = _lra_rules(2000, op_depth_cap=8)[0][keep].sum() / p[keep].sum()

  def test_rules_give_lra_figures(self):
    # The expectation itself: (2 + 10) / 2 = 6 operands before the length filter, which
    # barely moves it; LRA's max_depth 10 caps nesting at 9, and kept trees all reach it.
    self.assertAlmostEqual(self.mean_arity, 6.0, delta=0.05)
    self.assertEqual(self.depth_share[0], 0.0)
    self.assertGreater(self.depth_share[9], 0.3)
    self.assertLess(self.p_depth_at_most_8, 1e-6)

  def test_lengths_follow_the_rules(self):
    lengths = np.array([len(t) for t, _, _ in self.examples])
    self.assertGreater(lengths.min(), 500)
    self.assertLess(lengths.max(), 2000)
    edges = [501, 600, 700, 850, 1000, 1300, 2000]
    for a, b in zip(edges[:-1], edges[1:]):
      expected = self.p_length[a - 501:b - 501].sum()
      observed = np.mean((lengths >= a) & (lengths < b))
      tol = 4 * np.sqrt(expected * (1 - expected) / self.n) + 0.01
      self.assertLess(abs(observed - expected), tol, f'P({a} <= L < {b}): {observed:.3f} vs {expected:.3f}')

  def test_operand_counts_follow_the_rules(self):
    arities = np.concatenate([_arities(t) for t, _, _ in self.examples])
    self.assertTrue(((arities >= 2) & (arities <= 10)).all())
    self.assertAlmostEqual(arities.mean(), self.mean_arity, delta=0.05)
    self.assertEqual(set(arities.tolist()), set(range(2, 11)))

  def test_depths_follow_the_rules(self):
    depths = np.array([d for _, _, d in self.examples])
    np.testing.assert_array_equal(depths, 9)          # P(depth <= 8) < 1e-6 under the rules
    per_operator = np.concatenate([_operator_depths(t) for t, _, _ in self.examples])
    share = np.bincount(per_operator, minlength=10) / len(per_operator)
    np.testing.assert_allclose(share, self.depth_share, atol=0.01)


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
