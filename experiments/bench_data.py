"""Data-pipeline throughput vs the model's consumption rate, per dataset task.

    python experiments/bench_data.py                  # ListOps, Pathfinder (+ any prepared task)
    python experiments/bench_data.py --examples 4000 --models transformer,lstm

For ListOps and Pathfinder it first generates a small copy of the dataset (default
lengths and resolution, `--examples` training examples) with all cores and reports the
generation rate; then for every task it reads training batches through the grain
pipeline (`task.train_iterator()`) and times the trainer's train step (forward, backward,
update; `ltmjax.train.Trainer`) of each model's default config for that task
(configs/<task>.py) on this machine. Target: pipeline rate >= 10x the model's rate.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time

import jax
import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ltmjax import models, parallel, tasks, train  # noqa: E402
from ltmjax.tasks import listops, pathfinder  # noqa: E402


def load_config(task_name, model):
  path = os.path.join(os.path.dirname(__file__), '..', 'configs', f'{task_name}.py')
  spec = importlib.util.spec_from_file_location(task_name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(model)


def pipeline_rate(task, batches):
  it = task.train_iterator()
  next(it)                                           # start-up (threads, file open)
  start = time.perf_counter()
  for _ in range(batches):
    batch = next(it)
  return batches * batch['inputs'].shape[0] / (time.perf_counter() - start)


def model_rate(config, task, batch_size, steps=3):
  """Examples/s of the trainer's train step (`train.Trainer`: the config's model, optimizer
  and dtype) on `batch_size` examples, on one device."""
  model = models.build(config.model, task.spec)
  trainer = train.Trainer(config, task, model,
                          parallel.make_mesh(config.parallel, jax.devices()[:1]))
  batch = next(task.train_iterator())
  batch = parallel.global_batch({k: v[:batch_size] for k, v in batch.items()},
                                trainer.batch_sharding)
  state = trainer.init_state(jax.random.PRNGKey(config.seed))
  state, _ = trainer.train_step(state, batch)         # compile
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(steps):
    state, _ = trainer.train_step(state, batch)
  jax.block_until_ready(state)
  return steps * batch_size / (time.perf_counter() - start)


def generated_task(name, cls, data_dir, examples, batch_size):
  cfg = ml_collections.ConfigDict(dict(cls.default_config()))
  cfg.update(data_dir=data_dir, train_examples=examples, val_examples=256, test_examples=256)
  start = time.perf_counter()
  task = cls(cfg, seed=0, batch_size=batch_size, eval_batch_size=64)
  seconds = time.perf_counter() - start
  print(f'{name}: generated {examples + 512} examples in {seconds:.1f} s '
        f'({(examples + 512) / seconds:.0f} examples/s incl. tfds writing, '
        f'{os.cpu_count()} cores)', flush=True)
  return task


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--examples', type=int, default=4000)
  parser.add_argument('--batches', type=int, default=50)
  parser.add_argument('--models', default='lstm,transformer,ltmt')
  parser.add_argument('--model_batch', type=int, default=8,
                      help='examples per timed train step (CPU: keep small)')
  parser.add_argument('--data_dir', default='')
  args = parser.parse_args()
  tasks.TASKS.setdefault('listops', listops.ListOpsTask)
  tasks.TASKS.setdefault('pathfinder', pathfinder.PathfinderTask)
  data_dir = args.data_dir or tempfile.mkdtemp(prefix='bench_data_')

  rows = []
  for name in sorted(tasks.TASKS):
    cls = tasks.get(name)
    if 'data_dir' not in cls.default_config():
      continue                                       # procedural: no pipeline to measure
    try:
      config = load_config(name, 'lstm')
      bs = config.train.batch_size
      if cls in (listops.ListOpsTask, pathfinder.PathfinderTask):
        task = generated_task(name, cls, data_dir, args.examples, bs)
      else:
        task = cls(config.task, seed=0, batch_size=bs, eval_batch_size=64)
      data = pipeline_rate(task, args.batches)     # a task may open its data only here
    except (FileNotFoundError, ValueError, OSError) as e:
      print(f'{name}: data not available ({str(e).splitlines()[0][:100]})')
      continue
    for model in args.models.split(','):
      if model not in models.MODELS:
        print(f'{name}: model {model!r} is not registered; skipped')
        continue
      config = load_config(name, model)
      rate = model_rate(config, task, args.model_batch)
      rows.append((name, model, task.spec.seq_len, data, rate))
      print(f'{name:11s} {model:11s} pipeline {data:9.0f} ex/s   train step {rate:8.1f} ex/s',
            flush=True)

  print(f'\nDevice: {jax.devices()[0].device_kind} x{jax.device_count()}; '
        f'model rates measured on it at batch {args.model_batch} (default model configs)')
  print('| task | model | T | pipeline ex/s | model ex/s | ratio |')
  print('|---|---|---|---|---|---|')
  for name, model, t, data, rate in rows:
    print(f'| {name} | {model} | {t} | {data:.0f} | {rate:.1f} | {data / rate:.0f}x |')


if __name__ == '__main__':
  main()
