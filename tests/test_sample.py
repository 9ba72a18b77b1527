"""Sampling: greedy == separately computed argmax decoding, temperature, checkpoints, CLI."""
import contextlib
import io
import os
import shutil
import tempfile
from unittest import mock

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltmjax import models, sample, tasks
from ltmjax.models import transformer
from ltmjax.tasks import char_lm
from ltmjax.tasks.base import TaskSpec

CONFIG_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'configs', 'char_lm.py')
# A tiny model so that training a few steps and sampling take seconds.
TINY = ['--config.model.hidden=16', '--config.model.embed_dim=8', '--config.task.seq_len=16',
        '--config.train.steps=2', '--config.train.batch_size=8',
        '--config.train.eval_batch_size=8', '--config.train.eval_examples=8',
        '--config.train.progress=False']


def _tempdir(test) -> str:
  path = tempfile.mkdtemp()
  test.addCleanup(shutil.rmtree, path, ignore_errors=True)
  return path


def _model(name, spec):
  if name == 'transformer':
    cfg = ml_collections.ConfigDict(dict(transformer.default_config(), name=name, dim=16,
                                         heads=2, mlp_dim=32, dropout=0.0))
    return transformer.build(cfg, spec)
  if name == 'ltmt':
    cfg = ml_collections.ConfigDict(dict(models.get(name).default_config(), name=name, dim=16,
                                         heads=2, layers=1, mlp_dim=32, segment=4,
                                         memory_slots=3))
    return models.get(name).build(cfg, spec)
  cfg = ml_collections.ConfigDict(dict(models.get(name).default_config(), name=name, hidden=16,
                                       embed_dim=8))
  return models.get(name).build(cfg, spec)


def _reference_greedy(model, params, prompt, length, window):
  """Argmax decoding by re-running the model on the unpadded text (last `window` tokens)."""
  apply = jax.jit(lambda p, x: model.apply({'params': p}, x, None, train=False))
  seq = list(prompt)
  for _ in range(length):
    logits = apply(params, jnp.asarray([seq[-window:]], jnp.int32))
    seq.append(int(jnp.argmax(logits[0, -1])))
  return seq[len(prompt):]


class GenerateTest(chex.TestCase):

  def _setup(self, name, vocab=11, window=6):
    spec = TaskSpec('tokens', vocab, 'token', vocab, window, causal=True)
    model = _model(name, spec)
    # Random values for the parameter tree (cheaper than compiling model.init).
    abstract = jax.eval_shape(model.init, jax.random.PRNGKey(1),
                              jnp.zeros((1, window), jnp.int32))['params']
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda a: jnp.asarray(rng.normal(0.0, 0.5, a.shape), a.dtype), abstract)
    apply_fn = lambda p, x: model.apply({'params': p}, x, None, train=False)  # noqa: E731
    return model, params, apply_fn

  def test_greedy_equals_argmax_decoding(self):
    for name in ('lstm', 'transformer'):
      model, params, apply_fn = self._setup(name, window=4)
      prompt = [3, 1]
      got = sample.generate(apply_fn, params, prompt, length=7, window=4, temperature=0.0)
      want = _reference_greedy(model, params, prompt, 7, 4)
      self.assertEqual(got.tolist(), want, name)
      self.assertEqual(got.dtype, np.int32)
      again = sample.generate(apply_fn, params, prompt, length=7, window=4, temperature=0.0,
                              seed=7)
      self.assertEqual(again.tolist(), want, name)     # greedy ignores the seed

  def test_stateful_equals_window_sampling(self):
    # Text no longer than the window: feeding the prompt once and then one token (LTM-T: the
    # unfinished segment) per step from the carry gives the tokens of re-running the window.
    # Prompts of 5 and 4 tokens: LTM-T (segments of 4) starts mid-segment or on a boundary.
    for name, prompts in (('lstm', [[3, 1, 4, 1, 5]]), ('gru', [[3, 1, 4, 1, 5]]),
                          ('ltmt', [[3, 1, 4, 1, 5], [2, 7, 1, 8]])):
      model, params, apply_fn = self._setup(name, window=12)
      for prompt in prompts:
        want = sample.generate(apply_fn, params, prompt, length=12 - len(prompt), window=12,
                               temperature=0.0)
        got = sample.generate_stateful(model, params, prompt, length=12 - len(prompt),
                                       temperature=0.0)
        self.assertEqual(got.tolist(), want.tolist(), (name, prompt))
        self.assertEqual(got.dtype, np.int32)
    # Sampling at a temperature is reproducible by seed, as the window sampler.
    hot = lambda seed: sample.generate_stateful(  # noqa: E731
        model, params, [2], length=20, temperature=5.0, seed=seed).tolist()
    self.assertEqual(hot(0), hot(0))
    self.assertNotEqual(hot(0), hot(1))

  def _char_transformer(self, positions, window=24):
    """A tiny byte-level (char_lm vocabulary) Transformer LM with random weights and no
    biases (so that greedy text varies instead of repeating the most biased byte)."""
    spec = TaskSpec('tokens', char_lm.VOCAB, 'token', char_lm.VOCAB, window, causal=True)
    cfg = ml_collections.ConfigDict(dict(transformer.default_config(), name='transformer',
                                         dim=16, heads=2, layers=2, mlp_dim=32, dropout=0.0,
                                         positions=positions))
    model = transformer.build(cfg, spec)
    abstract = jax.eval_shape(model.init, jax.random.PRNGKey(1),
                              jnp.zeros((1, window), jnp.int32))['params']
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map_with_path(
        lambda path, a: jnp.asarray(rng.normal(0.0, 0.3, a.shape) * (path[-1].key != 'bias'),
                                    a.dtype), abstract)
    apply_fn = lambda p, x: model.apply({'params': p}, x, None, train=False)  # noqa: E731
    return model, params, apply_fn

  def test_kv_cache_equals_window_sampling(self):
    # The prompt once into the KV cache, then one token per step from it: the tokens of
    # re-running the whole window, greedy and at temperature 1 (same seed, same draws).
    prompt = np.frombuffer(b'MARA:', np.uint8).astype(np.int32)
    for positions in ('sinusoidal', 'rotary', 'learned'):
      model, params, apply_fn = self._char_transformer(positions)
      for temperature in (0.0, 1.0):
        want = sample.generate(apply_fn, params, prompt, length=19, window=24,
                               temperature=temperature, seed=3)
        got = sample.generate_stateful(model, params, prompt, length=19,
                                       temperature=temperature, seed=3)
        self.assertEqual(got.tolist(), want.tolist(), (positions, temperature))
        self.assertGreater(len(set(want.tolist())), 3, 'a text that varies')

  def test_positions_running_out_is_one_line(self):
    model, params, _ = self._char_transformer('learned', window=8)
    with self.assertRaises(sample.SampleError) as caught:
      sample.generate_stateful(model, params, [1, 2, 3], length=6)
    message = str(caught.exception)
    self.assertEqual(len(message.splitlines()), 1)
    for needle in ('= 9 tokens', 'the 8 learned positions', 'positions=sinusoidal',
                   '--mode window'):
      self.assertIn(needle, message)
    # 8 tokens fit the table exactly.
    self.assertEqual(sample.generate_stateful(model, params, [1, 2, 3], length=5).shape, (5,))

  def test_auto_mode_picks_the_kv_cache(self):
    task = char_lm.CharLMTask.__new__(char_lm.CharLMTask)   # only encode/decode are used
    for positions, length, want_mode in (('rotary', 19, 'carry'), ('learned', 19, 'carry'),
                                         ('learned', 30, 'window')):
      model, params, _ = self._char_transformer(positions)
      task.spec = model.spec
      calls = []
      spy = lambda fn, mode: lambda *a, **k: calls.append(mode) or fn(*a, **k)  # noqa: E731
      with mock.patch.object(sample, 'load', return_value=(task, model, params)), \
           mock.patch.object(sample, 'generate', spy(sample.generate, 'window')), \
           mock.patch.object(sample, 'generate_stateful',
                             spy(sample.generate_stateful, 'carry')):
        text = sample.sample(None, 'unused', prompt='MARA:', length=length, temperature=0.0)
        self.assertEqual(calls, [want_mode], (positions, length))
        if want_mode == 'carry':    # the text fits the window: both modes give it
          self.assertEqual(text, sample.sample(None, 'unused', prompt='MARA:', length=length,
                                               temperature=0.0, mode='window'))
        else:                       # forcing the cache names the limit instead
          with self.assertRaisesRegex(sample.SampleError, '24 learned positions'):
            sample.sample(None, 'unused', prompt='MARA:', length=length, mode='carry')

  def test_bidirectional_transformer_keeps_the_window_sampler(self):
    spec = TaskSpec('tokens', 11, 'token', 11, 6)
    model = _model('transformer', spec)
    self.assertIsNotNone(sample.carry_reason(model))
    with self.assertRaisesRegex(sample.SampleError, 'bidirectional Transformer has no carry'):
      sample.generate_stateful(model, None, [1], length=2)

  def test_prompt_longer_than_window(self):
    model, params, apply_fn = self._setup('transformer')
    prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    got = sample.generate(apply_fn, params, prompt, length=4, window=6, temperature=0.0)
    self.assertEqual(got.tolist(), _reference_greedy(model, params, prompt, 4, 6))

  def test_sampling_is_reproducible_by_seed(self):
    _, params, apply_fn = self._setup('lstm')
    run = lambda seed: sample.generate(apply_fn, params, [2], length=30, window=6,  # noqa: E731
                                       temperature=5.0, seed=seed).tolist()
    self.assertEqual(run(0), run(0))
    self.assertNotEqual(run(0), run(1))
    self.assertTrue(all(0 <= t < 11 for t in run(2)))

  def test_reads_the_last_real_position(self):
    # Logits favour the token equal to the position index read: 0, 1, 2, 3, then the
    # window slides and the last real position stays W - 1 = 3.
    apply_fn = lambda p, x: 5.0 * jax.nn.one_hot(  # noqa: E731
        jnp.broadcast_to(jnp.arange(x.shape[1]), x.shape), 8)
    got = sample.generate(apply_fn, None, [7], length=6, window=4, temperature=0.0)
    self.assertEqual(got.tolist(), [0, 1, 2, 3, 3, 3])

  def test_temperature_scales_the_distribution(self):
    # Constant logits [0, log 3]: P(1) = 3/4 at temperature 1 and 9/10 at temperature 1/2.
    logits = jnp.log(jnp.array([1.0, 3.0]))
    apply_fn = lambda p, x: jnp.broadcast_to(logits, x.shape + (2,))  # noqa: E731
    for temperature, p_one in ((1.0, 0.75), (0.5, 0.9)):
      got = sample.generate(apply_fn, None, [0], length=4000, window=1, temperature=temperature)
      self.assertAlmostEqual(got.mean(), p_one, delta=0.03)

  def test_bad_arguments(self):
    apply_fn = lambda p, x: jnp.zeros(x.shape + (4,))  # noqa: E731
    with self.assertRaisesRegex(sample.SampleError, 'empty'):
      sample.generate(apply_fn, None, [], length=3, window=4)
    with self.assertRaises(sample.SampleError):
      sample.generate(apply_fn, None, [1], length=3, window=4, temperature=-1.0)
    self.assertEqual(sample.generate(apply_fn, None, [1], length=0, window=4).shape, (0,))


class CheckpointSampleTest(chex.TestCase):

  def setUp(self):
    super().setUp()
    patcher = mock.patch.dict(tasks.TASKS, {'char_lm': char_lm.CharLMTask})
    patcher.start()
    self.addCleanup(patcher.stop)

  def _config(self):
    from ml_collections import config_flags
    from absl import flags
    fv = flags.FlagValues()
    argv = ['prog', f'--config={CONFIG_FILE}:lstm,cpu'] + TINY
    holder = config_flags.DEFINE_config_file('config', flag_values=fv, sys_argv=argv)
    fv(argv)
    return holder.value

  def test_sample_from_trained_checkpoint_and_cli(self):
    from ltmjax import train
    config = self._config()
    workdir = _tempdir(self)
    train.run(config, workdir)
    task, model, params = sample.load(config, workdir)
    windowed = sample.sample(config, workdir, prompt='MARA:', length=24, temperature=0.0,
                             mode='window')
    apply_fn = lambda p, x: model.apply({'params': p}, x, None, train=False)  # noqa: E731
    want = sample.generate(apply_fn, params, task.encode('MARA:'), length=24, window=16,
                           temperature=0.0)
    self.assertEqual(windowed, task.decode(want))
    self.assertEqual(len(want), 24)
    # The LSTM samples from its carry by default (past the 16-token window it keeps its state).
    text = sample.sample(config, workdir, prompt='MARA:', length=24, temperature=0.0)
    self.assertEqual(text, task.decode(sample.generate_stateful(
        model, params, task.encode('MARA:'), length=24, temperature=0.0)))

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      code = sample.main(['prog', f'--config={CONFIG_FILE}:lstm,cpu', f'--workdir={workdir}',
                          '--prompt=MARA:', '--length=24', '--temperature=0'] + TINY)
    self.assertEqual(code, 0)
    self.assertEqual(out.getvalue(), 'MARA:' + text + '\n')

  def test_cli_errors_are_one_line_and_exit_2(self):
    for args, needle in (
        ([f'--config={CONFIG_FILE}:lstm,cpu', f'--workdir={_tempdir(self)}'] + TINY,
         'no checkpoint'),
        ([f'--workdir={_tempdir(self)}'], '--config'),
        ([f'--config={CONFIG_FILE}:lstm,cpu', '--workdir=x', '--config.task.nope=1'], 'nope')):
      err = io.StringIO()
      with contextlib.redirect_stderr(err):
        code = sample.main(['prog'] + args)
      self.assertEqual(code, 2, args)
      self.assertEqual(len(err.getvalue().strip().splitlines()), 1, err.getvalue())
      self.assertIn(needle, err.getvalue())

  def test_not_a_language_model(self):
    from ltmjax import config_lib
    config = config_lib.base_config(model='lstm', task='adding')
    with self.assertRaisesRegex(sample.SampleError, 'not a causal language model'):
      sample.load(config, _tempdir(self))
    config = config_lib.base_config(model='lstm', task='copy')
    with self.assertRaisesRegex(sample.SampleError, 'no text vocabulary'):
      sample.load(config, _tempdir(self))
