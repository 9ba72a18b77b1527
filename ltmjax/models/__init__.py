"""Model registry: a plain dict from name to (default_config, build).

`build(cfg, spec)` takes the config's `model` group and the task's `TaskSpec` and
returns a Flax module called as `module.apply(variables, inputs, mask, train=...)`
(plus `inputs2, mask2` for pair tasks) that returns [B, num_outputs] for
'sequence' tasks and [B, T, num_outputs] for 'token' tasks.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict

from ltmjax.models import ltmt, recurrent, transformer


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  default_config: Callable[[], Dict[str, Any]]
  build: Callable[..., Any]
  label: str  # row name in tables


MODELS: Dict[str, ModelEntry] = {
    'lstm': ModelEntry(recurrent.default_config, recurrent.build, 'LSTM'),
    'gru': ModelEntry(recurrent.default_config, recurrent.build, 'GRU'),
    'transformer': ModelEntry(transformer.default_config, transformer.build, 'Transformer'),
    'ltmt': ModelEntry(ltmt.default_config, ltmt.build, 'LTM-T'),
}


def get(name: str) -> ModelEntry:
  """The registry entry for `name`; unknown names raise a ValueError listing the known ones."""
  if name not in MODELS:
    raise ValueError(f'unknown model {name!r}; known models: {", ".join(sorted(MODELS))}')
  return MODELS[name]


def label(model_cfg) -> str:
  """Table row name of a `model` config group; variants (peephole, bidirectional) spelled out."""
  text = get(model_cfg.name).label
  if model_cfg.get('peephole'):
    text = 'Peephole ' + text
  if model_cfg.get('bidirectional'):
    text = 'Bi' + text
  return text
