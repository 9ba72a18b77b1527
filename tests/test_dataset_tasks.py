"""The dataset-task bases: a toy generated family declares only its config, chunk and features."""
import dataclasses

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

from ltmjax import config_lib
from ltmjax.tasks import base, generated
from ltmjax.tasks.dataset import DatasetTask

SPLIT_CODE = {'train': 0, 'validation': 1, 'test': 2}


def generate_chunk(data_seed, split, start, stop, offset):
  """Example i of a split: value 1000 * data_seed + 100 * split + i + offset, label i % 2."""
  return [(i, {'value': np.int32(1000 * data_seed + 100 * SPLIT_CODE[split] + i + offset),
               'label': i % 2}) for i in range(start, stop)]


@dataclasses.dataclass
class ToyConfig(generated.GeneratedConfig):
  train_examples: int = 12
  val_examples: int = 4
  test_examples: int = 8
  offset: int = 3


class ToyBuilder(generated.GeneratedBuilder):
  name = 'ltm_test_toy'
  VERSION = tfds.core.Version('1.0.0')
  config_cls, generate_chunk, CHUNK = ToyConfig, staticmethod(generate_chunk), 5

  def features(self):
    return {'value': tfds.features.Tensor(shape=(), dtype=np.int32),
            'label': tfds.features.ClassLabel(num_classes=2)}


class ToyTask(generated.GeneratedTask):
  name, builder_cls = 'toy', ToyBuilder

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    self.spec = base.TaskSpec('tokens', 10_000, 'sequence', 2, 1)

  def preprocess(self, record):
    return {'inputs': np.asarray([record['value']], np.int32), 'targets': np.int32(record['label'])}


def _task(tmp_path, eval_examples=None, **cfg):
  config = ml_collections.ConfigDict(dict(ToyTask.default_config(), data_dir=str(tmp_path),
                                          **dict(dict(workers=1), **cfg)))
  return ToyTask(config, seed=0, batch_size=4, eval_batch_size=2, eval_examples=eval_examples)


def _values(batches):
  return [int(v) for b in batches for v in b['inputs'][:, 0]]


def test_the_config_class_gives_the_task_keys_and_the_dataset_name(tmp_path):
  assert set(ToyTask.default_config()) == {
      'data_dir', 'train_split', 'eval_split', 'train_examples', 'val_examples',
      'test_examples', 'data_seed', 'workers', 'offset'}
  task = _task(tmp_path)
  # Everything the data depend on is in the name; `workers` is not.
  assert task.builder.builder_config.name == 'n12-4-8_offset3_s0'
  assert _task(tmp_path, workers=2).builder.builder_config.name == 'n12-4-8_offset3_s0'
  assert _task(tmp_path, offset=5, data_seed=1).builder.builder_config.name == 'n12-4-8_offset5_s1'


def test_splits_are_written_from_generate_chunk_with_the_options(tmp_path):
  task = _task(tmp_path, offset=5, data_seed=1)
  for split, n in (('train', 12), ('validation', 4), ('test', 8)):   # 12 = chunks 5 + 5 + 2
    source = task.open_split(split)
    values = sorted(int(source[i]['value']) for i in range(len(source)))
    assert values == [1005 + 100 * SPLIT_CODE[split] + i for i in range(n)], split
  # The training batches cover the train split; eval reads the test split in its order.
  train = task.train_iterator()
  assert sorted(_values(next(train) for _ in range(3))) == [1005 + i for i in range(12)]
  test = task.open_split('test')
  assert _values(task.eval_batches()) == [int(test[i]['value']) for i in range(8)]


def test_one_eval_size_key_caps_a_dataset_split(tmp_path):
  assert DatasetTask.default_eval_examples == 0 and base.ProceduralTask.default_eval_examples > 0
  config = config_lib.base_config(model='lstm', task='listops')   # the default follows the task
  assert config.train.eval_examples == 0
  assert config_lib.base_config(model='lstm', task='copy').train.eval_examples == 1024
  test = [int(r['value']) for r in _task(tmp_path).open_split('test')]
  assert sorted(test) == [203 + i for i in range(8)]
  assert _values(_task(tmp_path, eval_examples=5).eval_batches()) == test[:4]  # whole batches
  assert _values(_task(tmp_path, eval_examples=0).eval_batches()) == test
  halves = [_values(_task(tmp_path, eval_examples=4).eval_batches(p, 2)) for p in range(2)]
  assert halves == [test[0:4:2], test[1:4:2]]   # process p: row p of each global batch of 2
  with pytest.raises(ValueError, match='eval_examples'):
    _task(tmp_path, eval_examples=-1)


def test_classification_loss_and_chance(tmp_path):
  task = _task(tmp_path)
  assert task.reference_metrics() == {'chance_accuracy': 0.5}
  logits = jnp.asarray([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]])
  labels = jnp.asarray([0, 0, 1])
  loss, metrics = task.loss_and_metrics(logits, {'targets': labels})
  by_hand = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(1.0)), np.log1p(np.exp(4.0))])
  np.testing.assert_allclose(loss, by_hand, rtol=1e-6)
  np.testing.assert_allclose(metrics['accuracy'], 1 / 3, rtol=1e-6)
  np.testing.assert_allclose(
      loss, optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), rtol=1e-6)
