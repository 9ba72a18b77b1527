"""ltmjax.config_lib's registry-driven model words and family sizes; every config file takes
every registered model and never branches on a model's name."""
import ast
import dataclasses
import glob
import importlib.util
import os
from unittest import mock

import ml_collections
import pytest

from ltmjax import cells, config_lib, models
from ltmjax.errors import ConfigError
from tests import toy_cells

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                 if not p.endswith('quickstart.py'))   # the quickstart takes no argument


def _load(path):
  spec = importlib.util.spec_from_file_location('cfg_' + os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_model_words_and_families_come_from_the_registry():
  assert config_lib.model_words() == tuple(models.MODELS)
  assert config_lib.model_arg('cpu,gru') == 'gru' and config_lib.model_arg('cpu') == 'lstm'
  assert {config_lib.family(m) for m in models.MODELS} <= set(models.FAMILIES)
  assert config_lib.family('lstm') == 'recurrent' and config_lib.family('ltmt') == 'attention'


def test_set_model_applies_the_family_then_the_model_group():
  groups = dict(recurrent=dict(hidden=7), attention=dict(dim=12, layers=3),
                residual=dict(dim=5), transformer=dict(pool='cls'))
  for name, expected in (('gru', dict(hidden=7)), ('transformer', dict(dim=12, pool='cls')),
                         ('ltmt', dict(dim=12, layers=3, pool='mean'))):
    c = config_lib.base_config(model=name, task='copy')
    config_lib.set_model(c, **groups)
    assert {k: c.model[k] for k in expected} == expected, name
  c = config_lib.base_config(model='lstm', task='copy')
  with pytest.raises(KeyError, match='no family or model recurent'):
    config_lib.set_model(c, recurent=dict(hidden=7))
  with pytest.raises(KeyError, match="no config key 'dim'"):
    config_lib.set_model(c, recurrent=dict(dim=7))


def test_by_family():
  assert config_lib.by_family('gru', recurrent=1, residual=2, attention=3) == 1
  assert config_lib.by_family('ltmt', recurrent=1, residual=2, attention=3) == 3
  with pytest.raises(ConfigError, match="family 'attention'.*add attention="):
    config_lib.by_family('transformer', recurrent=1)


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_configs_never_branch_on_a_model_name(path):
  """No comparison in a config file involves a registered model's name (`model == 'ltmt'`,
  `model in ('lstm', 'gru')`): model differences go through set_model / by_family."""
  names = set(models.MODELS)
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Compare):
      literals = {n.value for n in ast.walk(node) if isinstance(n, ast.Constant)}
      assert not literals & names, f'{os.path.basename(path)}:{node.lineno} compares with a model name'


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_every_config_takes_every_model_and_a_new_one(path):
  module = _load(path)
  for name in models.MODELS:
    for arg in (name, f'{name},cpu'):
      assert module.get_config(arg).model.name == name
  # A cell registered with one CELLS line (here in the test) is a word of every config, with
  # its family's sizes and its options as model keys.
  toy = dataclasses.replace(toy_cells.LINEAR, family='residual', label='Toy')
  with mock.patch.dict(cells.CELLS, {'toy_linear': toy}), \
       mock.patch.dict(models.MODELS, {'toy_linear': models.cell_model(toy)}):
    c = module.get_config('toy_linear,cpu')
    assert c.model.name == 'toy_linear' and c.model.decay == 0.9
    residual_model = module.get_config('mlstm,cpu').model if 'mlstm' in models.MODELS else None
    if residual_model is not None:   # the same residual-family sizes as any residual model
      assert (c.model.dim, c.model.layers) == (residual_model.dim, residual_model.layers)
