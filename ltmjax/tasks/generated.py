"""Datasets we generate locally (ListOps, Pathfinder, ...): one tfds builder base, one task base.

A generated dataset is a pure function of its builder config: examples start..stop-1 of a
split are `generate_chunk(data_seed, split, start, stop, **options)`, so it can be rebuilt
anywhere, in parallel over processes (`pipeline.generate_parallel`), and the config's name
spells out everything the data depend on. A family declares only what differs:

    @dataclasses.dataclass
    class MyConfig(generated.GeneratedConfig):   # the generator's options, with defaults:
      train_examples: int = 10_000               # each is a keyword argument of generate_chunk,
      length: int = 100                          # a key of the task config, part of the name

    class MyBuilder(generated.GeneratedBuilder):
      name, VERSION = 'ltm_my', tfds.core.Version('1.0.0')
      config_cls, generate_chunk = MyConfig, staticmethod(generate_chunk)
      def features(self): return {'tokens': ..., 'label': ...}

    class MyTask(generated.GeneratedTask):       # + spec, preprocess (see tasks/dataset.py)
      name, builder_cls = 'my', MyBuilder

`generate_chunk` is a module-level function (worker processes pickle it) returning a list
of (key, tfds example) pairs. The task's config group is `data_dir`, `train_split`,
`eval_split` and the config class's fields (its generator options, the split sizes,
`data_seed`, `workers`); the dataset is written into data_dir on first use.
"""
from __future__ import annotations

import abc
import dataclasses
import functools
import logging
import re
import sys
import time
from typing import Any, Dict, List, Type

import tensorflow_datasets as tfds

from ltmjax.tasks import pipeline
from ltmjax.tasks.dataset import DatasetTask

log = logging.getLogger('ltmjax')

SPLIT_SIZES = {'train': 'train_examples', 'validation': 'val_examples', 'test': 'test_examples'}
COMMON_FIELDS = (*SPLIT_SIZES.values(), 'data_seed', 'workers')


@dataclasses.dataclass
class GeneratedConfig(tfds.core.BuilderConfig):
  """What every generated dataset depends on; a family's subclass adds its generator's options."""
  train_examples: int = 0
  val_examples: int = 0
  test_examples: int = 0
  data_seed: int = 0        # the generated dataset's seed (part of its name)
  workers: int = 0          # generation processes; 0 = one per core (not part of the data)


def data_fields(config_cls: Type[GeneratedConfig]) -> List[str]:
  """The fields a config class adds to tfds' BuilderConfig (the task config keys it gives)."""
  base = {f.name for f in dataclasses.fields(tfds.core.BuilderConfig)}
  return [f.name for f in dataclasses.fields(config_cls) if f.name not in base]


def generator_options(config_cls: Type[GeneratedConfig]) -> List[str]:
  """The fields passed by keyword to the family's `generate_chunk`."""
  return [name for name in data_fields(config_cls) if name not in COMMON_FIELDS]


def _name_part(value: Any) -> str:
  text = f'{value:g}' if isinstance(value, float) else str(value)
  return re.sub(r'[^\w+\-.]', '-', text)


def builder_config(config_cls: Type[GeneratedConfig], task_cfg) -> GeneratedConfig:
  """The builder config of a task config; its name encodes everything the data depend on,
  e.g. 'n2000-256-256_min_length50_max_length200_s0'."""
  values = {name: task_cfg[name] for name in data_fields(config_cls)}
  parts = ['n' + '-'.join(str(values[k]) for k in SPLIT_SIZES.values())]
  parts += [name + _name_part(values[name]) for name in generator_options(config_cls)]
  parts.append(f's{values["data_seed"]}')
  return config_cls(name='_'.join(parts), **values)


class GeneratedBuilder(tfds.core.GeneratorBasedBuilder):
  """A tfds builder whose splits `generate_chunk` writes from the builder config (no download)."""
  config_cls: Type[GeneratedConfig] = GeneratedConfig
  generate_chunk = None      # staticmethod(f): f(data_seed, split, start, stop, **options)
  CHUNK = 500                # examples per generation work item
  SUPERVISED_KEYS = None     # e.g. ('tokens', 'label')

  @abc.abstractmethod
  def features(self) -> Dict[str, Any]:
    """The tfds features of one example (a dict of FeatureConnectors)."""

  def _info(self):
    doc = sys.modules[type(self).__module__].__doc__ or ''
    return tfds.core.DatasetInfo(builder=self, description=doc.split('\n\n')[0],
                                 features=tfds.features.FeaturesDict(self.features()),
                                 supervised_keys=self.SUPERVISED_KEYS)

  def _split_generators(self, dl_manager):
    c = self.builder_config
    sizes = {split: getattr(c, key) for split, key in SPLIT_SIZES.items()}
    return {split: self._generate_examples(split, n) for split, n in sizes.items() if n > 0}

  def _generate_examples(self, split, num):
    c = self.builder_config
    options = {name: getattr(c, name) for name in generator_options(type(c))}
    make_chunk = functools.partial(type(self).generate_chunk, **options)
    chunks = [(c.data_seed, split, s, min(s + self.CHUNK, num)) for s in range(0, num, self.CHUNK)]
    yield from pipeline.generate_parallel(make_chunk, chunks, c.workers)


def prepare(builder: tfds.core.DatasetBuilder) -> tfds.core.DatasetBuilder:
  """Generates and writes the dataset unless it is already in its data_dir."""
  if not builder.is_prepared():
    start = time.time()
    log.info('generating %s into %s ...', builder.info.full_name, builder.data_dir)
    builder.download_and_prepare(file_format='array_record')
    log.info('generated %s in %.1f s', builder.info.full_name, time.time() - start)
  return builder


class GeneratedTask(DatasetTask):
  """A dataset task over a generated dataset: `builder_cls` makes it on first use.

  Subclasses that check their config do so before `super().__init__`, which generates.
  """
  builder_cls: Type[GeneratedBuilder]

  @classmethod
  def default_config(cls) -> Dict[str, Any]:
    fields = {f.name: f.default for f in dataclasses.fields(cls.builder_cls.config_cls)}
    return dict(
        data_dir='',               # '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
        train_split='train',
        eval_split='test',         # LRA reports test accuracy; 'validation' for model selection
        **{name: fields[name] for name in data_fields(cls.builder_cls.config_cls)})

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    self.builder = prepare(self.builder_cls(
        config=builder_config(self.builder_cls.config_cls, cfg),
        data_dir=cfg.data_dir or pipeline.default_data_dir(), file_format='array_record'))

  def open_split(self, split: str):
    return self.builder.as_data_source(split=split)
