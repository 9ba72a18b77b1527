"""ltmjax.evaluate: length words, a sweep of a tiny trained run (stream == full), bad input."""
import contextlib
import dataclasses
import importlib.util
import io
import json
import os
import shutil
import tempfile

import jax
import numpy as np
from absl.testing import absltest, parameterized

from ltmjax import config_lib, evaluate, models, train
from ltmjax.tasks import haystack

CONFIG_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'configs', 'babilong.py')


def _config(model: str):
  spec = importlib.util.spec_from_file_location('babilong_config', CONFIG_FILE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(f'{model},cpu,T=128')
  config.unlock()
  config.model.update(dict(hidden=8, embed_dim=8) if model == 'lstm' else
                      dict(dim=16, heads=2, layers=1, mlp_dim=16, segment=16, memory_slots=2))
  config.train.update(steps=2, batch_size=8, eval_batch_size=8, eval_examples=8, eval_every=2,
                      log_every=2, progress=False)
  config.ckpt.every = 2
  return config


def _cli(args):
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = evaluate.main(args)
  return code, out.getvalue(), err.getvalue()


class LengthWordsTest(absltest.TestCase):

  def test_parse_lengths(self):
    self.assertEqual(evaluate.parse_lengths('1k,4K,1m,300'), [1024, 4096, 2 ** 20, 300])
    for bad in ('1q', '', 'k', '0', '1k,,2k', '-5'):
      with self.assertRaises(evaluate.EvalError, msg=bad):
        evaluate.parse_lengths(bad)


class SweepTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp()
    cls.workdir = os.path.join(cls.root, 'lstm')
    config = _config('lstm')
    train.run(config, cls.workdir)
    with open(os.path.join(cls.workdir, 'config.json'), 'w') as f:   # as ltmjax.main writes it
      json.dump(config.to_dict(), f)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def test_sweep_writes_length_sweep_json(self):
    code, out, _ = _cli(['--workdir', self.workdir, '--lengths', '128,200', '--examples', '4',
                         '--batch', '2', '--chunk', '40', '--in_process'])
    self.assertEqual(code, 0)
    self.assertIn('| 200 | stream |', out)
    with open(os.path.join(self.workdir, evaluate.SWEEP_FILE)) as f:
      result = json.load(f)
    self.assertEqual((result['model'], result['task'], result['trained_length']),
                     ('lstm', 'babilong', 128))
    rows = result['lengths']
    self.assertEqual([r['length'] for r in rows], [128, 200])
    for r in rows:
      self.assertEqual(r['mode'], 'stream')
      self.assertEqual(r['chunk'], 40)
      self.assertEqual(r['examples'], 4)
      for key in ('accuracy', 'loss', 'wall_s', 'compile_s', 'tokens_per_s', 'peak_rss_mb',
                  'rss_before_mb'):
        self.assertGreaterEqual(r[key], 0.0, key)
      self.assertGreater(r['peak_rss_mb'], 10.0)

    # The whole sequence in one call gives the same metrics as the streamed chunks.
    run = evaluate.Run(self.workdir)
    full = evaluate.evaluate_length(run, 200, mode='full', examples=4, batch=2)
    self.assertEqual(full['mode'], 'full')
    self.assertAlmostEqual(full['loss'], rows[1]['loss'], places=5)
    self.assertAlmostEqual(full['accuracy'], rows[1]['accuracy'], places=6)

    # Over the memory cap the full evaluation is skipped with its reason, not truncated.
    skipped = evaluate.evaluate_length(run, 200, mode='full', examples=4, batch=2,
                                       memory_cap_mb=1e-3)
    self.assertEqual(skipped['mode'], 'skipped')
    self.assertIn('OOM', skipped['reason'])

  def test_token_budget_caps_examples_at_long_lengths(self):
    run = evaluate.Run(self.workdir)
    # 1000 tokens at length 200 -> 5 examples, rounded down to whole batches of 2 -> 4;
    # at length 128 the budget (7) is over --examples (6): 6.
    long = evaluate.evaluate_length(run, 200, examples=8, batch=2, chunk=64, max_tokens=1000)
    short = evaluate.evaluate_length(run, 128, examples=6, batch=2, chunk=64, max_tokens=1000)
    tiny = evaluate.evaluate_length(run, 200, examples=8, batch=2, chunk=64, max_tokens=10)
    self.assertEqual((long['examples'], short['examples'], tiny['examples']), (4, 6, 2))
    code, _, err = _cli(['--workdir', self.workdir, '--lengths', '128', '--max_tokens', 'x'])
    self.assertEqual(code, 2)
    self.assertIn('bad --max_tokens', err)

  def test_bad_input_is_one_line_and_exit_2(self):
    empty = os.path.join(self.root, 'empty')
    os.makedirs(empty, exist_ok=True)
    with open(os.path.join(empty, 'config.json'), 'w') as f:
      json.dump(_config('lstm').to_dict(), f)
    for args, needle in ((['--workdir', empty, '--lengths', '1k'], 'no checkpoint'),
                         (['--workdir', self.workdir, '--lengths', '2q'], "bad length '2q'"),
                         (['--workdir', os.path.join(self.root, 'nope'), '--lengths', '1k'],
                          'not a folder'),
                         (['--lengths', '1k'], '--workdir')):
      code, _, err = _cli(args)
      self.assertEqual(code, 2, args)
      self.assertEqual(len(err.strip().splitlines()), 1, err)
      self.assertIn(needle, err)


# ----------------------------------------------------------------------------- the carry chain
# A trained tiny model forgets within a few dozen tokens, so metrics barely move when the
# carry is lost in the middle of a stream. These tests watch the carry itself: every chunk
# call must receive the carry the previous chunk call returned (the first: the initial one).

TINY = dict(hidden=8, embed_dim=8, dim=16, heads=2, layers=1, mlp_dim=16, segment=8,
            memory_slots=2)   # the keys a model's group has are set; the others are ignored
CHAIN_LENGTH, CHAIN_CHUNK = 180, 40   # 5 chunks, the last one padded


def _untrained_run(name: str):
  """An `evaluate.Run` of model `name` at random init on babilong, without training: the
  streaming path needs only the model and its params (random weights keep a long memory)."""
  config = config_lib.base_config(model=name, task='babilong')
  for key, value in TINY.items():
    if key in config.model:
      config.model[key] = value
  config.task.update(length=CHAIN_LENGTH, facts=2)
  run = evaluate.Run.__new__(evaluate.Run)
  run.workdir, run.config, run.trained_length = None, config, CHAIN_LENGTH
  task, run.model = train.build(config)
  run.spec = task.spec
  run.params = train.init_params(run.model, run.spec, jax.random.PRNGKey(0))
  return run


class _Recording:
  """The model, with every chunk call's (inputs, carry in, outputs, carry out) recorded on the
  host through `jax.debug.callback` (it runs inside the compiled chunk call)."""

  def __init__(self, model):
    self.model, self.calls, self.initial = model, [], []

  def __getattr__(self, name):
    return getattr(self.model, name)

  def apply(self, variables, *args, carry=None, return_carry=False, method=None, **kw):
    if method is not None:
      out = self.model.apply(variables, *args, method=method, **kw)
      if method == 'initial_carry':
        self.initial.append(jax.tree.map(np.asarray, out))
      return out
    out, new = self.model.apply(variables, *args, carry=carry, return_carry=return_carry, **kw)
    jax.debug.callback(lambda *a: self.calls.append(jax.tree.map(np.asarray, a)),
                       args[0], carry, out, new)
    return out, new


def _same(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


class StreamCarryChainTest(parameterized.TestCase):
  """Every model of the registry: a model that streams passes its carry from chunk to chunk;
  one that cannot (the Transformer: a bidirectional encoder on these tasks, no KV cache) is
  evaluated whole, never streamed. (The KV cache's carry is sample.py's, tested there.)"""

  @parameterized.named_parameters((name, name) for name in models.MODELS)
  def test_each_chunk_gets_the_previous_chunks_carry(self, name):
    run = _untrained_run(name)
    task = run.task_at(CHAIN_LENGTH, 4, 2)
    if run.stream_reason(task):
      row = evaluate.evaluate_length(run, CHAIN_LENGTH, examples=2, batch=2)
      self.assertEqual(row['mode'], 'full', name)
      return
    model = run.model = _Recording(run.model)
    evaluate.evaluate_stream(run, task, CHAIN_LENGTH, 4, 2, CHAIN_CHUNK)
    jax.effects_barrier()
    chunk = -(-CHAIN_CHUNK // int(model.stream_block)) * int(model.stream_block)
    per_example = -(-CHAIN_LENGTH // chunk)
    self.assertGreaterEqual(per_example, 3, 'the stream needs middle chunks')
    self.assertLen(model.calls, 2 * per_example)
    self.assertLen(model.initial, 1)
    carry0 = model.initial[0]
    # Follow each batch's chain from its first call: the call on chunk n must take the carry
    # that the call on chunk n - 1 returned. Matching by carry (not by call order) keeps the
    # check free of the order in which the host runs the callbacks.
    starts = [c for c in model.calls if _same(c[1], carry0)]
    self.assertLen(starts, 2, 'calls that started from the initial carry: one per batch of '
                              'examples, any other one lost the carry of its previous chunk')
    batches = [[0, 1], [2, 3]]
    expected = [[haystack.tokens(np.stack(parts)) for parts in
                 zip(*[task.example_chunks(i, CHAIN_LENGTH, chunk)[0] for i in indices])]
                for indices in batches]
    whole = []
    for call in starts:
      b = next(b for b in range(2) if np.array_equal(call[0][:, :chunk], expected[b][0]))
      for n, tokens_BxC in enumerate(expected[b]):
        np.testing.assert_array_equal(call[0][:, :tokens_BxC.shape[1]], tokens_BxC,
                                      err_msg=f'{name}: chunk {n} of batch {b}')
        last = call
        following = [c for c in model.calls if _same(c[1], call[3])]
        self.assertLen(following, 0 if n == per_example - 1 else 1,
                       f'{name}: calls that took the carry returned by chunk {n} of batch {b}')
        call = following[0] if following else None
      whole.append((batches[b], last[2]))
    # The last chunk's outputs are those of the whole sequence in one call.
    for indices, out in whole:
      inputs = haystack.tokens(np.stack([task.example(i, CHAIN_LENGTH)[0] for i in indices]))
      full = run.model.model.apply({'params': run.params}, inputs, np.ones(inputs.shape, bool))
      np.testing.assert_allclose(out, full, atol=1e-5, rtol=1e-5, err_msg=name)


if __name__ == '__main__':
  absltest.main()
