"""ListOps expressions drawn by the rules of LRA's generator (the sampler behind `tasks.listops`).

Reference: `lra_benchmarks/data/listops.py` in github.com/google-research/long-range-arena
(Tay et al. 2021), after Nangia & Bowman (2018). Its rules, which `sample_tree` follows:
  * a node at depth d < max_depth (the root has depth 1) is an operator with probability
    P_OPERATOR = 0.25 and a digit (uniform 0..9) otherwise; at depth max_depth it is a digit;
  * an operator has `randint(2, max_args)` operands (uniform 2..10: 6 on average), each a node
    one level deeper, and is one of MIN, MAX, MED, SM (uniform);
  * the length counts the operator token (`[MIN`), the operands and the closing `]`; a tree
    is kept only when min_length < length < max_length (LRA: 500 < length < 2000, strict).
With LRA's max_depth = 10 operators nest at most 9 deep. Values: MIN, MAX, MED (median,
the mean of the two middle values for an even count, floored, as LRA's `int(np.median)`)
and SM (sum mod 10). Differences: LRA keeps a set of trees (duplicates among expressions
of 500+ tokens are all but impossible, so we do not deduplicate), and writes parentheses
around every pair that its own input pipeline removes again; we emit the tokens directly.
Each example is a pure function of its random.Random, so example i of a split is a pure
function of (seed, split, i).

Tokens (VOCAB_SIZE = 16): 0 pad | 1..10 the digits 0..9 | 11 '[MIN' | 12 '[MAX' | 13 '[MED' |
14 '[SM' | 15 ']'. `strip_brackets` gives LRA's released input convention (no ']').
"""
from __future__ import annotations

import random
from typing import List, Tuple

import numpy as np

PAD, DIGIT0, MIN, MAX, MED, SM, END = 0, 1, 11, 12, 13, 14, 15
VOCAB_SIZE = 16
VOCAB = ['<pad>'] + [str(d) for d in range(10)] + ['[MIN', '[MAX', '[MED', '[SM', ']']
OPERATORS = (MIN, MAX, MED, SM)
P_OPERATOR = 0.25      # LRA's VALUE_P: a node below max_depth is an operator with this chance
BRACKETS = ('keep', 'drop')


class _TooLong(Exception):
  """The tree being drawn already has max_length tokens: it would be rejected."""


def apply_operator(op: int, values: List[int]) -> int:
  """The value of one operator over its operands' values (digits 0..9)."""
  if op == MIN:
    return min(values)
  if op == MAX:
    return max(values)
  if op == SM:
    return sum(values) % 10
  s, n = sorted(values), len(values)
  return (s[(n - 1) // 2] + s[n // 2]) // 2


def sample_tree(rnd: random.Random, depth: int, max_depth: int, max_args: int,
                out: List[int], limit: int) -> Tuple[int, int]:
  """Appends one node drawn by LRA's rules to `out`; returns (its value, its operator depth).

  Raises _TooLong as soon as `out` reaches `limit` tokens (that tree would be rejected, so
  stopping early changes no kept example's distribution).
  """
  if depth >= max_depth or rnd.random() > P_OPERATOR:
    d = rnd.randrange(10)
    out.append(DIGIT0 + d)
    return d, 0
  op = OPERATORS[rnd.randrange(4)]
  out.append(op)
  values, deepest = [], 0
  for _ in range(rnd.randint(2, max_args)):
    if len(out) >= limit:
      raise _TooLong
    v, sub = sample_tree(rnd, depth + 1, max_depth, max_args, out, limit)
    values.append(v)
    deepest = max(deepest, sub)
  out.append(END)
  return apply_operator(op, values), deepest + 1


def generate_example(rnd: random.Random, min_length: int = 500, max_length: int = 2000,
                     max_depth: int = 10, max_args: int = 10) -> Tuple[np.ndarray, int, int]:
  """One ListOps expression, redrawn until min_length < length < max_length (LRA's filter).

  Returns:
    (tokens [L] int32 (with ']'), label 0..9, operator nesting depth <= max_depth - 1).
  """
  if not 1 <= min_length < max_length - 1 or max_depth < 2 or max_args < 2:
    raise ValueError(f'need 1 <= min_length < max_length - 1, max_depth >= 2, max_args >= 2; '
                     f'got {min_length}, {max_length}, {max_depth}, {max_args}')
  while True:
    out: List[int] = []
    try:
      value, depth = sample_tree(rnd, 1, max_depth, max_args, out, max_length)
    except _TooLong:
      continue
    if min_length < len(out) < max_length:
      return np.asarray(out, np.int32), value, depth


def strip_brackets(tokens: np.ndarray, brackets: str) -> np.ndarray:
  """`keep`: the tokens as generated; `drop`: without ']' (LRA's released input pipeline
  splits the text on \\W+, which loses every bracket: LRA issues #14 and #20)."""
  if brackets == 'keep':
    return tokens
  if brackets == 'drop':
    return tokens[tokens != END]
  raise ValueError(f'brackets must be one of {BRACKETS}, got {brackets!r}')


def decode(tokens) -> str:
  """Tokens back to text, e.g. '[MAX 2 9 ]' (padding dropped)."""
  return ' '.join(VOCAB[t] for t in np.asarray(tokens) if t != PAD)
