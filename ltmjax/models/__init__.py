"""Model registry: a plain dict from name to (default_config, build).

`build(cfg, spec)` takes the config's `model` group and the task's `TaskSpec` and
returns a Flax module called as `module.apply(variables, inputs, mask, train=...)`
(plus `inputs2, mask2` for pair tasks) that returns [B, num_outputs] for
'sequence' tasks and [B, T, num_outputs] for 'token' tasks.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Dict

import flax.linen as nn
import jax.numpy as jnp

from ltmjax import registry
from ltmjax.models import memory_transformer, recurrent, transformer


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  default_config: Callable[[], Dict[str, Any]]
  build: Callable[..., Any]
  label: Callable[[Any], str]  # the `model` config group -> its row name in tables


def _named(text: str) -> Callable[[Any], str]:
  return lambda cfg: text


# The order of this dict is the order of rows in tables (result.json's `model_order`).
MODELS: Dict[str, ModelEntry] = {
    'lstm': ModelEntry(recurrent.default_config, recurrent.build,
                       functools.partial(recurrent.label, 'LSTM')),
    'gru': ModelEntry(recurrent.default_config, recurrent.build,
                      functools.partial(recurrent.label, 'GRU')),
    'transformer': ModelEntry(transformer.default_config, transformer.build,
                              _named('Transformer')),
    'ltmt': ModelEntry(memory_transformer.default_config, memory_transformer.build,
                       _named('LTM-T')),
}


def get(name: str) -> ModelEntry:
  """The registry entry for `name`; unknown names raise a ValueError listing the known ones."""
  return registry.lookup(MODELS, name, 'model')


def label(model_cfg) -> str:
  """Table row name of a `model` config group, from its registry entry (e.g. 'BiLSTM')."""
  return get(model_cfg.name).label(model_cfg)


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
