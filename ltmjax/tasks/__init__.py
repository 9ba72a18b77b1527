"""Task registry: a plain dict from name to task class.

A task class has `default_config()` (its `task` config group) and is built as
`cls(cfg, seed=..., batch_size=..., eval_batch_size=..., eval_examples=...)`; see
`ltmjax.tasks.base.Task` for what it gives the trainer.
"""
from __future__ import annotations

from typing import Dict, Type

from ltmjax.tasks import char_lm, images, listops, pathfinder, recall, synthetic, text
from ltmjax.tasks.base import Task, TaskSpec  # noqa: F401  (re-exported)

TASKS: Dict[str, Type[Task]] = {
    'copy': synthetic.CopyTask,
    'adding': synthetic.AddingTask,
    'selective_copy': recall.SelectiveCopyTask,
    'mqar': recall.MQARTask,
    'char_lm': char_lm.CharLMTask,
    'listops': listops.ListOpsTask,
    'pathfinder': pathfinder.PathfinderTask,
    'text': text.TextTask,
    'retrieval': text.RetrievalTask,
    'mnist': images.MnistTask,
    'permuted_mnist': images.PermutedMnistTask,
    'fashion_mnist': images.FashionMnistTask,
    'cifar10': images.Cifar10Task,
}


def get(name: str) -> Type[Task]:
  """The task class for `name`; unknown names raise a ValueError listing the known ones."""
  if name not in TASKS:
    raise ValueError(f'unknown task {name!r}; known tasks: {", ".join(sorted(TASKS))}')
  return TASKS[name]
