"""Task registry: a plain dict from name to task class.

A task class has `default_config()` (its `task` config group) and is built as
`cls(cfg, seed=..., batch_size=..., eval_batch_size=..., eval_examples=...)`; see
`ltmjax.tasks.base.Task` for what it gives the trainer. Three bases hold the plumbing:
`base.ProceduralTask` (batches drawn from (seed, step)), `dataset.DatasetTask` (splits of a
random-access source) and `generated.GeneratedTask` (a tfds dataset we generate locally).
"""
from __future__ import annotations

from typing import Dict, Type

from ltmjax import registry
from ltmjax.tasks import (babi, char_lm, images, listops, passkey, pathfinder, recall,
                          synthetic, text)
from ltmjax.tasks.base import Task, TaskSpec  # noqa: F401  (re-exported)

# The order of this dict is the order of task columns in tables (result.json's
# `column_order`): the memory tasks, then LRA's own order, then the rest.
TASKS: Dict[str, Type[Task]] = {
    'copy': synthetic.CopyTask,
    'adding': synthetic.AddingTask,
    'selective_copy': recall.SelectiveCopyTask,
    'mqar': recall.MQARTask,
    'segment_copy': synthetic.SegmentCopyTask,
    'listops': listops.ListOpsTask,
    'text': text.TextTask,
    'retrieval': text.RetrievalTask,
    'cifar10': images.Cifar10Task,
    'pathfinder': pathfinder.PathfinderTask,
    'mnist': images.MnistTask,
    'permuted_mnist': images.PermutedMnistTask,
    'fashion_mnist': images.FashionMnistTask,
    'char_lm': char_lm.CharLMTask,
    'babilong': babi.BabiTask,
    'passkey': passkey.PasskeyTask,
}


def get(name: str) -> Type[Task]:
  """The task class for `name`; unknown names raise a ValueError listing the known ones."""
  return registry.lookup(TASKS, name, 'task')


def order(name: str) -> int:
  """The rank of task `name` among table columns: its position in TASKS."""
  return registry.rank(TASKS, name, 'task')
