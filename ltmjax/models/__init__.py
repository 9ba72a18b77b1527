"""Model registry: a plain dict from name to (default_config, build, label, family).

`build(cfg, spec)` takes the config's `model` group and the task's `TaskSpec` and
returns a Flax module called as `module.apply(variables, inputs, mask, train=...)`
(plus `inputs2, mask2` for pair tasks) that returns [B, num_outputs] for
'sequence' tasks and [B, T, num_outputs] for 'token' tasks.

Every cell of `ltmjax.cells.CELLS` with a `family` is a model of its name (`cell_model`),
after the hand-written entries below and the modules of $LTMJAX_PLUGINS (ltmjax.plugins).
A model's `family` picks the size group the configs give it (`config_lib.set_model`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Dict

import flax.linen as nn
import jax.numpy as jnp

from ltmjax import cells, plugins, registry
from ltmjax.models import memory_transformer, recurrent, residual, transformer

# The size groups of the configs (config_lib.set_model): the keys each family's models share.
FAMILIES = ('recurrent', 'residual', 'attention')


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  default_config: Callable[[], Dict[str, Any]]
  build: Callable[..., Any]
  label: Callable[[Any], str]  # the `model` config group -> its row name in tables
  family: str = ''             # one of FAMILIES, or '' (a config gives it no family sizes)


def _named(text: str) -> Callable[[Any], str]:
  return lambda cfg: text


def cell_model(cell: cells.Cell) -> ModelEntry:
  """The model of a registered cell, by its `family`: 'recurrent' (models/recurrent.py) or
  'residual' (models/residual.py); its row name is `cell.label` (or its name)."""
  text = cell.label or cell.name
  if cell.family == 'recurrent':
    return ModelEntry(recurrent.default_config, recurrent.build,
                      functools.partial(recurrent.label, text), 'recurrent')
  if cell.family == 'residual':
    return ModelEntry(functools.partial(residual.default_config, cell.name), residual.build,
                      _named(text), 'residual')
  raise ValueError(f'cell {cell.name!r} has family {cell.family!r}; a cell model is '
                   "'recurrent' or 'residual'")


# The order of this dict is the order of rows in tables (result.json's `model_order`).
MODELS: Dict[str, ModelEntry] = {
    'lstm': cell_model(cells.LSTM),
    'gru': cell_model(cells.GRU),
    'transformer': ModelEntry(transformer.default_config, transformer.build,
                              _named('Transformer'), 'attention'),
    'ltmt': ModelEntry(memory_transformer.default_config, memory_transformer.build,
                       _named('LTM-T'), 'attention'),
}
plugins.load()   # a plugin may register cells (and models) before the cells' models are read
MODELS.update({name: cell_model(cell) for name, cell in cells.CELLS.items()
               if cell.family and name not in MODELS})


def get(name: str) -> ModelEntry:
  """The registry entry for `name`; unknown names raise a ValueError listing the known ones."""
  return registry.lookup(MODELS, name, 'model')


def label(model_cfg) -> str:
  """Table row name of a `model` config group, from its registry entry (e.g. 'BiLSTM')."""
  return get(model_cfg.name).label(model_cfg)


def family(name: str) -> str:
  """The family of model `name` ('recurrent', 'residual', 'attention' or '')."""
  return get(name).family


def order(name: str) -> int:
  """The rank of model `name` in tables: its position in MODELS."""
  return registry.rank(MODELS, name, 'model')


PAIR_FEATURES = 128  # width of each sequence's encoding in a pair (retrieval) model


class DualEncoder(nn.Module):
  """Pair classification (LRA Retrieval): one shared encoder for both sequences, then an
  MLP on [u, v, u * v, u - v] as in the LRA paper."""
  encoder: nn.Module
  num_outputs: int

  @nn.compact
  def __call__(self, inputs, mask=None, inputs2=None, mask2=None, *, train: bool = False):
    u_BxF = self.encoder(inputs, mask, train=train)
    v_BxF = self.encoder(inputs2, mask2, train=train)
    h = jnp.concatenate([u_BxF, v_BxF, u_BxF * v_BxF, u_BxF - v_BxF], axis=-1)
    h = nn.gelu(nn.Dense(PAIR_FEATURES, name='pair_hidden')(h))
    return nn.Dense(self.num_outputs, name='pair_head')(h)


def build(model_cfg, spec):
  """The model of a `model` config group for a task spec; pair tasks get a shared dual encoder."""
  entry = get(model_cfg.name)
  if not spec.pair:
    return entry.build(model_cfg, spec)
  single = dataclasses.replace(spec, pair=False, num_outputs=PAIR_FEATURES)
  return DualEncoder(entry.build(model_cfg, single), spec.num_outputs)
