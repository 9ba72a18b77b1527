"""ltmjax.evaluate: length words, a sweep of a tiny trained run (stream == full), bad input."""
import contextlib
import importlib.util
import io
import json
import os
import shutil
import tempfile

from absl.testing import absltest

from ltmjax import evaluate, train

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


if __name__ == '__main__':
  absltest.main()
