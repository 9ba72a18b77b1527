"""Every task trains end to end from its `:cpu` config through the real trainer (tiny sizes).

Dataset tasks read data made here: generated ListOps/Pathfinder builds in a temp dir,
`tfds.testing.mock_data` for catalog datasets, and a hand-written AAN TSV for retrieval.
"""
import contextlib
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from ml_collections import config_flags

from ltmjax import train
from tests.test_text import PAIRS, write_tsv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MODEL = {'lstm': dict(hidden=8)}


def load(config_arg):
  path, _, arg = config_arg.partition(':')
  module = config_flags.config_flags._LoadConfigModule('cfg', os.path.join(ROOT, path))
  return module.get_config(arg)


def tiny(config, task_overrides, model_name):
  with config.unlocked():
    config.train.update(steps=2, batch_size=4, eval_batch_size=4, eval_examples=4, log_every=1,
                        eval_every=2, progress=False)
    config.ckpt.every = 2
    config.parallel.update(data=1, model=1)
    config.model.update(TINY_MODEL[model_name])
    config.task.update(task_overrides)
  return config


CASES = [
    ('configs/copy.py:cpu', {}, None),
    ('configs/adding.py:cpu', {}, None),
    ('configs/selective_copy.py:cpu', dict(length=24, num_tokens=4), None),
    ('configs/mqar.py:cpu', dict(length=32, num_pairs=4, vocab=64), None),
    ('configs/char_lm.py:cpu', dict(seq_len=32), None),
    ('configs/listops.py:cpu', dict(train_examples=8, val_examples=4, test_examples=4,
                                    min_length=10, max_length=40, seq_len=40), 'data_dir'),
    ('configs/pathfinder.py:cpu', dict(train_examples=8, val_examples=4, test_examples=4),
     'data_dir'),
    ('configs/seq_mnist.py:mnist,cpu,order=row', dict(source='tfds'), 'mock'),
    ('configs/image.py:cpu', {}, 'mock'),
    ('configs/text.py:cpu', dict(seq_len=64), 'mock'),
    ('configs/retrieval.py:cpu', dict(seq_len=64), 'manual'),
]


@pytest.mark.parametrize('config_arg, task_overrides, data', CASES,
                         ids=[c[0].split('/')[1] for c in CASES])
def test_task_trains_from_its_cpu_config(tmp_path, config_arg, task_overrides, data):
  # One model is enough here: every config x model is loaded and built in test_experiments.
  model_name = 'lstm'
  path, _, arg = config_arg.partition(':')
  config = load(f'{path}:{model_name},{arg}')
  overrides = dict(task_overrides)
  context = contextlib.nullcontext()
  if data == 'data_dir':
    overrides['data_dir'] = str(tmp_path / 'tfds')
  elif data == 'mock':
    context = tfds.testing.mock_data(num_examples=8)
  elif data == 'manual':
    write_tsv(tmp_path / 'manual', {f'new_aan_pairs.{s}.tsv': PAIRS
                                    for s in ('train', 'eval', 'test')})
    overrides.update(data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path / 'manual'))
  config = tiny(config, overrides, model_name)
  with context:
    result = train.run(config, str(tmp_path / 'run'))
  assert result['status'] == 'complete' and result['steps'] == 2
  assert np.isfinite(result['metrics']['loss'])
  assert result['primary_metric'] in result['metrics']
  saved = json.load(open(tmp_path / 'run' / 'result.json'))
  assert saved['task'] == config.task.name and saved['model'] == model_name
