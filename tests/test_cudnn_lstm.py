"""Tests for the cuDNN LSTM path of ltmjax.models.recurrent (model.implementation=cudnn).

On CPU: the weight packing (ours -> cuDNN's flat layout -> ours), the whole cuDNN layer
against the scan path with jax.experimental.rnn's pure-JAX reference of the kernel in the
kernel's place (gate order, transposes, biases, per-row lengths, the reversed direction),
and the one-line errors. On a CUDA GPU (`-m gpu`): the real kernel against the scan path.
"""
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest, parameterized
import chex
import jax
from jax.experimental import rnn
import jax.numpy as jnp
import numpy as np
import pytest

from ltmjax import cells, recurrence
from ltmjax.errors import ConfigError
from ltmjax.models import recurrent
from ltmjax.models.recurrent import RecurrentModel
from ltmjax.tasks.base import TaskSpec

B, T, D, H = 4, 7, 5, 4
LENGTHS = np.array([7, 4, 1, 0])   # right padding; a row of padding only, as in eval batches
ON_GPU = jax.default_backend() == 'gpu'
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _layer_params(bidirectional, seed=0, input_dim=D):
  k_fw, k_bw, k_b = jax.random.split(jax.random.key(seed), 3)
  def one(k, kb):
    p = cells.LSTM.init(k, input_dim, H)
    return {**p, 'b': p['b'] + jax.random.normal(kb, p['b'].shape)}  # all gates' biases differ
  if not bidirectional:
    return one(k_fw, k_b)
  return {'fw': one(k_fw, k_b), 'bw': one(k_bw, jax.random.fold_in(k_b, 1))}


def _xs_mask(seed=1):
  xs = jax.random.normal(jax.random.key(seed), (B, T, D))
  return xs, jnp.asarray(np.arange(T)[None, :] < LENGTHS[:, None])


def _scan_layer(params, xs, mask, bidirectional):
  if bidirectional:
    return recurrence.run_bidirectional(cells.LSTM, params['fw'], params['bw'], xs,
                                        mask_BxT=mask)[1]
  return recurrence.run(cells.LSTM, params, xs, mask_BxT=mask)[1]


def _reference_kernel(x, h_0, c_0, weights, seq_lengths, *, input_size, hidden_size,
                      num_layers, dropout, bidirectional):
  """jax.experimental.rnn.lstm's signature, computed by its pure-JAX reference."""
  w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(weights, input_size, hidden_size,
                                                   num_layers, bidirectional)
  return rnn.lstm_ref(x, h_0, c_0, w_ih, w_hh, b_ih, b_hh, seq_lengths, input_size,
                      hidden_size, num_layers, dropout, bidirectional)


class PackingTest(parameterized.TestCase):

  @parameterized.parameters(False, True)
  def test_pack_unpack_round_trip(self, bidirectional):
    params = _layer_params(bidirectional)
    w_flat = recurrent.pack_cudnn_weights(params, bidirectional)
    self.assertEqual(w_flat.shape, (rnn.get_num_params_in_lstm(D, H, 1, bidirectional),))
    back = recurrent.unpack_cudnn_weights(w_flat, D, H, bidirectional)
    chex.assert_trees_all_close(back, params, atol=1e-6)

  def test_layout_is_torch_order(self):
    # cuDNN's W_ih is torch's weight_ih_l0 = w_x.T: row k is gate k // H's unit k % H.
    params = _layer_params(False)
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(
        recurrent.pack_cudnn_weights(params, False), D, H, 1, False)
    np.testing.assert_array_equal(w_ih[0], params['w_x'].T)
    np.testing.assert_array_equal(w_hh[0], params['w_h'].T)
    np.testing.assert_array_equal(b_ih[0] + b_hh[0], params['b'])


class CudnnLayerOnReferenceTest(parameterized.TestCase):
  """The cuDNN layer with the kernel's reference in its place equals the scan path."""

  @parameterized.parameters((False, True), (True, True), (False, False))
  def test_outputs_and_gradients_equal_scan(self, bidirectional, masked):
    params = _layer_params(bidirectional)
    xs, mask = _xs_mask()
    mask = mask if masked else None

    def loss(fn):
      def f(p, x):
        ys = fn(p, x)
        return jnp.sum(ys * jnp.cos(jnp.arange(ys.size).reshape(ys.shape)))  # every output counts
      return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
    cudnn = lambda p, x: recurrent.cudnn_lstm_layer(
        p, x, mask, bidirectional=bidirectional, lstm=_reference_kernel)
    scan = lambda p, x: _scan_layer(p, x, mask, bidirectional)
    ys_c = jax.jit(cudnn)(params, xs)
    chex.assert_shape(ys_c, (B, T, 2 * H if bidirectional else H))
    np.testing.assert_allclose(ys_c, jax.jit(scan)(params, xs), atol=1e-5)
    if masked:
      self.assertTrue(np.all(np.asarray(ys_c)[~np.asarray(mask)] == 0))
    (l_c, g_c), (l_s, g_s) = loss(cudnn)(params, xs), loss(scan)(params, xs)
    np.testing.assert_allclose(l_c, l_s, rtol=1e-5)
    chex.assert_trees_all_close(g_c, g_s, atol=1e-5)


class ErrorsTest(parameterized.TestCase):

  @parameterized.parameters(
      (dict(cell='gru'), "cell='gru'"), (dict(peephole=True), 'peephole=True'),
      (dict(unroll=4), 'unroll=4'), (dict(remat=True), 'remat=True'))
  def test_unsupported_options(self, options, named):
    options = {'cell': 'lstm', **options}
    with self.assertRaisesRegex(ConfigError, f'plain LSTM only, not {named}.*implementation=scan'):
      recurrent.check_implementation('cudnn', options.pop('cell'), **options)

  def test_unknown_implementation(self):
    with self.assertRaisesRegex(ConfigError, "unknown model.implementation 'fused'; known: scan, cudnn"):
      recurrent.check_implementation('fused', 'lstm')

  @pytest.mark.skipif(ON_GPU, reason='checks the error off a GPU')
  def test_needs_gpu(self):
    with self.assertRaisesRegex(ConfigError, 'needs a CUDA GPU, but JAX runs on cpu'):
      recurrent.check_implementation('cudnn', 'lstm')
    model = RecurrentModel(spec=TaskSpec('tokens', 11, 'sequence', 4, T), hidden=H, embed_dim=D,
                           implementation='cudnn')
    with self.assertRaisesRegex(ConfigError, 'needs a CUDA GPU'):
      model.init(jax.random.key(0), jnp.zeros((B, T), jnp.int32))

  def test_bfloat16_refused(self):
    # As the trainer runs train.dtype=bfloat16: parameters and inputs cast to bfloat16.
    spec = TaskSpec('real', D, 'sequence', 4, T)
    kw = dict(spec=spec, hidden=H, embed_dim=D)
    xs = jnp.zeros((B, T, D), jnp.bfloat16)
    variables = RecurrentModel(**kw).init(jax.random.key(0), xs)
    variables = jax.tree.map(lambda a: a.astype(jnp.bfloat16), variables)
    with absltest.mock.patch.object(jax, 'default_backend', lambda: 'gpu'):
      with self.assertRaisesRegex(ConfigError, 'float32 only, not bfloat16; set train.dtype=float32'):
        RecurrentModel(**kw, implementation='cudnn').apply(variables, xs)

  @pytest.mark.skipif(ON_GPU, reason='checks the error off a GPU')
  def test_cli_one_line(self):
    workdir = tempfile.mkdtemp()
    env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
    proc = subprocess.run(
        [sys.executable, '-m', 'ltmjax.main', '--config', 'configs/copy.py:lstm,cpu',
         '--config.model.implementation=cudnn', f'--workdir={workdir}'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
    self.assertEqual(len(lines), 1, proc.stderr)
    self.assertIn('model.implementation=cudnn needs a CUDA GPU', lines[0])
    self.assertNotIn('Traceback', proc.stderr)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason='needs a CUDA GPU: run `pytest -m gpu` with '
                    'JAX_PLATFORMS=cuda on a GPU machine (experiments/gpu_check.py does)')
class CudnnKernelTest(parameterized.TestCase):
  """The real cuDNN kernel equals the scan path (float32 matmuls, no TF32)."""

  @parameterized.parameters(False, True)
  def test_layer_equals_scan(self, bidirectional):
    params = _layer_params(bidirectional)
    xs, mask = _xs_mask()
    with jax.default_matmul_precision('highest'):
      for m in (mask, None):
        ys_c = jax.jit(lambda p, x: recurrent.cudnn_lstm_layer(
            p, x, m, bidirectional=bidirectional))(params, xs)
        np.testing.assert_allclose(ys_c, _scan_layer(params, xs, m, bidirectional), atol=1e-5)

  @parameterized.parameters(dict(layers=1, bidirectional=False), dict(layers=2, bidirectional=True))
  def test_model_outputs_and_gradients_equal_scan(self, layers, bidirectional):
    spec = TaskSpec('tokens', 11, 'sequence', 4, T)
    x = jax.random.randint(jax.random.key(2), (B, T), 0, 11)
    mask = _xs_mask()[1]
    kw = dict(spec=spec, hidden=16, embed_dim=8, layers=layers, bidirectional=bidirectional)
    scan, cudnn = RecurrentModel(**kw), RecurrentModel(**kw, implementation='cudnn')
    variables = scan.init(jax.random.key(0), x, mask)

    def loss(model):
      return jax.jit(jax.value_and_grad(lambda v: model.apply(v, x, mask).sum()))
    with jax.default_matmul_precision('highest'):
      (l_s, g_s), (l_c, g_c) = loss(scan)(variables), loss(cudnn)(variables)
    np.testing.assert_allclose(l_c, l_s, rtol=1e-5)
    chex.assert_trees_all_close(g_c, g_s, atol=1e-5)


if __name__ == '__main__':
  absltest.main()
