"""ltmjax.diagnose: distance bins, the key/filler variants, the diagnostics of a tiny LTM-T run
(gated and associative) and the command on a tiny trained run."""
import contextlib
import io
import json
import os
import shutil
import tempfile

import jax
import numpy as np
import pytest
from absl.testing import absltest, parameterized

from ltmjax import config_lib, diagnose, evaluate, train
from tests import references

TINY = dict(dim=16, heads=2, layers=2, mlp_dim=16, segment=16, memory_slots=2, assoc_dim=4,
            remat=False)
LENGTH = 160   # 10 segments of 16


def _config(mode: str):
  config = config_lib.base_config(model='ltmt', task='passkey')
  config.model.update(TINY, memory_mode=mode, memory_norm='rms_cap', pool='memory')
  config.task.update(length=128, digits=1)
  # Batches of 8: the tests run on 8 fake devices (conftest), which split every batch.
  config.train.update(steps=2, batch_size=8, eval_batch_size=8, eval_examples=8, eval_every=2,
                      log_every=2, progress=False)
  config.ckpt.every = 2
  return config


def _untrained_run(mode: str):
  """An `evaluate.Run` at random init (diagnose needs only the model and its params)."""
  config = _config(mode)
  run = evaluate.Run.__new__(evaluate.Run)
  run.workdir, run.config, run.trained_length = None, config, config.task.length
  task, run.model = train.build(config)
  run.spec = task.spec
  # Randomised: the associative values W_v start at zero, which would keep A at zero.
  run.params = references.randomize(train.init_params(run.model, run.spec,
                                                      jax.random.PRNGKey(0)), 0, scale=0.1)
  return run


class PiecesTest(absltest.TestCase):

  def test_distance_bins_cover_every_segment_once(self):
    self.assertEqual(diagnose.distance_bins(10), [(0, 3), (4, 9)])
    self.assertEqual(diagnose.distance_bins(100), [(0, 3), (4, 15), (16, 63), (64, 99)])

  def test_variants_change_one_byte_each(self):
    run = _untrained_run('gated')
    task = run.task_at(LENGTH, 4, 4)
    hay, label = task._eval_draw(0, LENGTH)  # pylint: disable=protected-access
    data = hay.render()
    key, filler, at = diagnose.variants(hay, data)
    (k,), (f,) = np.nonzero(key != data)[0], np.nonzero(filler != data)[0]
    start = int(hay.piece_starts()[0])
    self.assertEqual(k, at)
    self.assertTrue(start <= k < start + len(hay.pieces[0]))     # inside the needle ...
    self.assertEqual(chr(data[k]), str(int(label[0])))           # ... its key digit
    self.assertTrue(chr(key[k]).isdigit())
    self.assertFalse(start <= f < start + len(hay.pieces[0]))    # the filler byte is outside


class DiagnoseTest(parameterized.TestCase):

  @parameterized.parameters('gated', 'associative')
  def test_untrained_run(self, mode):
    result = diagnose.diagnose(_untrained_run(mode), LENGTH, examples=4, batch=4,
                               probe_examples=2)
    json.dumps(result)   # JSON-ready
    self.assertEqual(result['segments'], 10)
    self.assertEqual(sum(b['examples'] for b in result['accuracy_by_distance']), 4)
    per = result['per_segment']
    self.assertEqual(np.asarray(per['memory_rms']).shape, (10, 2))
    # rms_cap: no slot's RMS above 1 (the mean over slots neither).
    self.assertLessEqual(np.asarray(per['memory_rms']).max(), 1.0 + 1e-5)
    gate = 'forget_mean' if mode == 'gated' else 'write_gate_mean'
    self.assertTrue(np.all((np.asarray(per[gate]) > 0) & (np.asarray(per[gate]) < 1)))
    ks = result['key_sensitivity']
    key, filler = np.asarray(ks['key_changed']), np.asarray(ks['filler_byte_changed'])
    self.assertEqual(key.shape, (len(ks['segments_since_needle']), 2))
    self.assertEqual(key.shape, filler.shape)
    self.assertGreater(key[0].max(), 0.0)   # a changed key byte moves the memory at once
    self.assertTrue(np.all(np.isfinite(key)) and np.all(np.isfinite(filler)))
    gd = result['gradient_depth']
    self.assertEqual(gd['segments_before_end'], [0, 1, 2, 4, 8])
    grad = np.asarray(gd['grad_norm'])
    self.assertEqual(grad.shape, (5, 2))
    # pool='memory' reads the last layer's slots: at d = 0 the first layer's gradient is 0
    # and its ratios start at d = 1; every ratio is its layer's norm over the first non-zero.
    self.assertEqual(grad[0, 0], 0.0)
    self.assertIsNone(gd['ratio_to_nearest'][0][0])
    np.testing.assert_allclose([gd['ratio_to_nearest'][1][0], gd['ratio_to_nearest'][0][1]], 1.0)
    np.testing.assert_allclose(np.asarray(gd['ratio_to_nearest'][1:], float)[:, 0],
                               grad[1:, 0] / grad[1, 0], rtol=1e-6)

  def test_gradient_depth_gated(self):
    self._check_gradient_depth('gated')

  @pytest.mark.slow   # ~15 s idle: the gated case covers the default run
  def test_gradient_depth_associative(self):
    self._check_gradient_depth('associative')

  def _check_gradient_depth(self, mode):
    """The masked-prefix gradient == jax.grad of the rest of the sequence streamed from the
    carry (another path through the model: no mask, a shorter input)."""
    import jax.numpy as jnp
    run = _untrained_run(mode)
    probe = diagnose.Probe(run)
    task = run.task_at(LENGTH, 4, 4)
    rng = np.random.default_rng(0)
    tokens_BxT = jnp.asarray(rng.integers(0, 256, (4, LENGTH)), jnp.int32)
    labels_Bx1 = jnp.asarray(rng.integers(0, 10, (4, 1)), jnp.int32)
    _, _, carries = probe.memories(tokens_BxT, keep_carries=True)
    self.assertEqual(diagnose.depths(10), [0, 1, 2, 4, 8])
    got = probe.gradient_depth(task, tokens_BxT, labels_Bx1, carries, [0, 8])
    seg = TINY['segment']
    for row, d in enumerate((0, 8)):
      g = 9 - d
      def rest(cell_carry):
        logits, _ = run.model.apply({'params': run.params}, tokens_BxT[:, (g + 1) * seg:],
                                    carry={'cell': cell_carry}, return_carry=True)
        return task.loss_and_metrics(logits, {'targets': labels_Bx1})[0]
      if d == 0:   # nothing after the last segment: the head alone reads the carry
        rest = lambda cell_carry: task.loss_and_metrics(
            run.model.apply({'params': run.params}, tokens_BxT[:, :seg],
                            jnp.zeros((4, seg), bool), carry={'cell': cell_carry},
                            return_carry=True)[0], {'targets': labels_Bx1})[0]
      grads = jax.grad(rest)(carries[g])
      want = np.sqrt(sum(np.square(np.asarray(v)).reshape(4, 2, -1).sum(-1)
                         for v in grads.values()))
      np.testing.assert_allclose(got[row], want, rtol=1e-4, atol=1e-9)
      # pool='memory' reads the last layer's slots: at d = 0 only they matter; earlier, all.
      self.assertGreater((want if d else want[:, -1]).min(), 0.0)

  def test_rejects_other_models(self):
    run = _untrained_run('gated')
    run.config.unlock()
    run.config.model.memory_mode = 'xl'
    with self.assertRaisesRegex(evaluate.EvalError, 'LTM-T'):
      diagnose.Probe(run)


class CommandTest(absltest.TestCase):

  def test_tiny_trained_run(self):
    root = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, root, ignore_errors=True)
    config = _config('gated')
    train.run(config, root)
    with open(os.path.join(root, 'config.json'), 'w') as f:   # as ltmjax.main writes it
      json.dump(config.to_dict(), f)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      code = diagnose.main(['--workdir', root, '--length', str(LENGTH), '--examples', '8',
                            '--batch', '8', '--probe_examples', '2'])
    self.assertEqual(code, 0)
    self.assertIn('accuracy at 160', out.getvalue())
    for name in ('diagnose.json', 'diagnose.png', 'diagnose.pdf'):
      self.assertTrue(os.path.exists(os.path.join(root, name)), name)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
      code = diagnose.main(['--workdir', os.path.join(root, 'nope'), '--length', '1k'])
    self.assertEqual(code, 2)
    self.assertEqual(len(err.getvalue().strip().splitlines()), 1)


if __name__ == '__main__':
  absltest.main()
