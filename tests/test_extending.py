"""README "Extending": a cell in a file of its own, registered by its CELLS line and loaded
through $LTMJAX_PLUGINS, is a model every config accepts and trains through the real CLI."""
import json
import os
import subprocess
import sys

from ltmjax import plugins

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ELMAN = '''"""An Elman cell: h' = tanh(x W_x + h W_h + b)."""
import jax
import jax.numpy as jnp

from ltmjax.cells import base


def init(key, input_dim, hidden_dim):
  k_x, k_h = jax.random.split(key)
  return {'w_x': jax.random.normal(k_x, (input_dim, hidden_dim)) / jnp.sqrt(input_dim),
          'w_h': jax.random.normal(k_h, (hidden_dim, hidden_dim)) / jnp.sqrt(hidden_dim),
          'b': jnp.zeros(hidden_dim)}


def initial_carry(params, batch_shape):
  return jnp.zeros(tuple(batch_shape) + params['b'].shape, params['b'].dtype)


def step(params, h, x):
  h = jnp.tanh(x @ params['w_x'] + h @ params['w_h'] + params['b'])
  return h, h


base.CELLS['elman'] = base.Cell('elman', init, initial_carry, step, family='recurrent',
                                label='Elman')
'''


def test_a_plugin_cell_trains_through_the_cli(tmp_path):
  cell_file = tmp_path / 'elman.py'
  cell_file.write_text(ELMAN)
  env = dict(os.environ, JAX_PLATFORMS='cpu', **{plugins.ENV: str(cell_file)})
  workdir = tmp_path / 'run'
  out = subprocess.run(
      [sys.executable, '-m', 'ltmjax.main', '--config', 'configs/copy.py:elman,cpu',
       '--workdir', str(workdir), '--config.train.steps=3', '--config.train.batch_size=8',
       '--config.train.eval_batch_size=8', '--config.train.eval_examples=8',
       '--config.parallel.data=1', '--config.train.progress=False'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.load(open(workdir / 'result.json'))
  assert result['model'] == 'elman' and result['steps'] == 3
  # The copy config's recurrent-family sizes reached it: embed 16 -> hidden 64.
  assert result['config']['model']['hidden'] == 64
  assert result['config']['model']['embed_dim'] == 16
  # Without the plugin the word is unknown, in one line.
  env.pop(plugins.ENV)
  bad = subprocess.run(
      [sys.executable, '-m', 'ltmjax.main', '--config', 'configs/copy.py:elman,cpu',
       '--workdir', str(tmp_path / 'bad')], cwd=ROOT, env=env, capture_output=True, text=True,
      timeout=300)
  assert bad.returncode == 2 and "unknown config argument 'elman'" in bad.stderr, bad.stderr[-2000:]


def test_a_missing_plugin_is_one_line(tmp_path, monkeypatch):
  monkeypatch.setenv(plugins.ENV, str(tmp_path / 'nothing.py'))
  try:
    plugins.load()
  except plugins.ConfigError as e:
    assert 'nothing.py' in str(e) and 'not a file' in str(e)
  else:
    raise AssertionError('no error for a missing plugin file')
