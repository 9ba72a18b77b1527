"""The one trainer: build, restore, loop, evaluate, save. It knows no task or model name."""
from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import time
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ltmjax import checkpoint, curriculum, distributed, models, optim, parallel, tasks
from ltmjax.errors import RunError
from ltmjax.metrics import MetricsWriter, Progress, format_metrics, to_floats

log = logging.getLogger('ltmjax')
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def build_task(config, **changes):
  """The task of the config's `task` group, with `changes` to that group (e.g. length=4096)."""
  task_cfg = config.task
  if changes:
    task_cfg = ml_collections.ConfigDict(config.task.to_dict())
    task_cfg.update(changes)
  return tasks.get(config.task.name)(
      task_cfg, seed=config.seed, batch_size=config.train.batch_size,
      eval_batch_size=config.train.eval_batch_size, eval_examples=config.train.eval_examples)


def build(config):
  """(task, model) from the config's `task` and `model` groups."""
  task = build_task(config)
  return task, models.build(config.model, task.spec)


def model_args(batch, spec):
  """Positional model inputs of a batch: (inputs, mask[, inputs2, mask2])."""
  args = (batch['inputs'], batch.get('mask'))
  if spec.pair:
    args += (batch['inputs2'], batch.get('mask2'))
  return args


def _cast(tree, dtype):
  return jax.tree.map(lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p,
                      tree)


# ----------------------------------------------------------------------------- the steps
# The one train-step builder: the Trainer jits these with its shardings; benchmarks and
# tools (experiments/, sample.py) build the same pure functions for their own models.

def example_batch(spec, batch_size: int = 1):
  """A batch of zeros with the input shapes of `spec` (for init and shape inference)."""
  b, t = batch_size, spec.seq_len
  if spec.input_kind == 'tokens':
    x = jnp.zeros((b, t), jnp.int32)
  else:
    x = jnp.zeros((b, t, spec.input_dim), jnp.float32)
  batch = {'inputs': x, 'mask': jnp.ones((b, t), bool)}
  if spec.pair:
    batch.update(inputs2=x, mask2=batch['mask'])
  return batch


def init_params(model, spec, key):
  """The parameters of `model` for a task of `spec`, initialised as the trainer does."""
  return model.init({'params': key, 'dropout': key}, *model_args(example_batch(spec), spec),
                    train=False)['params']


def init_state(model, spec, tx, key):
  """A fresh train state {'step', 'params', 'opt_state', 'rng'}.

  'rng' never changes: step s draws its dropout from fold_in(rng, s), so a resumed run
  repeats the dropout masks of an uninterrupted one.
  """
  init_key, state_key = jax.random.split(key)
  params = init_params(model, spec, init_key)
  return {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': tx.init(params),
          'rng': state_key}


def _make_loss(model, spec, loss_and_metrics, dtype: str):
  if dtype not in DTYPES:
    raise ValueError(f'unknown train.dtype {dtype!r}; known: {", ".join(DTYPES)}')
  compute_dtype = DTYPES[dtype]

  def loss(params, batch, rng, train):
    # Real-valued inputs are cast too, or they would promote the bf16 compute back to fp32.
    out = model.apply({'params': _cast(params, compute_dtype)},
                      *_cast(model_args(batch, spec), compute_dtype),
                      train=train, rngs={'dropout': rng})
    return loss_and_metrics(out, batch)
  return loss


def make_train_step(model, spec, loss_and_metrics, tx, dtype: str = 'float32'):
  """The train step `step(state, batch) -> (state, metrics)`: pure, for `jax.jit`.

  Args:
    model: a Flax module called as `apply(variables, *model_args(batch, spec), train=...)`.
    spec: the task's TaskSpec.
    loss_and_metrics: `(outputs, batch) -> (scalar loss, {name: scalar})`, e.g. a task's.
    tx: the optax optimizer (the one `init_state` was given).
    dtype: compute dtype, 'float32' or 'bfloat16' (parameters and optimizer state stay as
      they are).
  Returns:
    The step. Its metrics add 'grad_norm' and 'nonfinite' (1 where the loss or the
    gradient norm is NaN/inf) to those of `loss_and_metrics`.
  """
  loss = _make_loss(model, spec, loss_and_metrics, dtype)

  def train_step(state, batch):
    rng = jax.random.fold_in(state['rng'], state['step'])
    (value, metrics), grads = jax.value_and_grad(loss, has_aux=True)(
        state['params'], batch, rng, True)
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    metrics = dict(metrics, grad_norm=optax.global_norm(grads))
    metrics['nonfinite'] = (~(jnp.isfinite(value) & jnp.isfinite(metrics['grad_norm']))
                            ).astype(jnp.int32)
    return {'step': state['step'] + 1, 'params': params, 'opt_state': opt_state,
            'rng': state['rng']}, metrics
  return train_step


def make_eval_step(model, spec, loss_and_metrics, dtype: str = 'float32'):
  """The eval step `step(params, batch) -> metrics` (no dropout): pure, for `jax.jit`."""
  loss = _make_loss(model, spec, loss_and_metrics, dtype)
  return lambda params, batch: loss(params, batch, jax.random.PRNGKey(0), False)[1]


class Trainer:
  """The compiled steps of one run on `mesh`; `run()` below drives it.

  Public: `init_state(key)`, `train_step(state, batch)`, `eval_step(params, batch)`,
  `evaluate(params)`, `lower_train_step(state, batch)` (for memory analysis), and
  `abstract_state` / `state_sharding` / `batch_sharding`. The steps are the ones
  `make_train_step` and `make_eval_step` build, jitted with this mesh's shardings.
  """

  def __init__(self, config, task, model, mesh):
    self.config, self.task, self.model, self.mesh = config, task, model, mesh
    accumulate = max(int(config.opt.accumulate_steps), 1)
    if config.train.steps % accumulate:
      raise ValueError(f'train.steps={config.train.steps} must be a multiple of '
                       f'opt.accumulate_steps={accumulate}')
    self.tx = optim.build(config.opt, config.train.steps // accumulate)
    spec, loss = task.spec, task.loss_and_metrics
    train_step = make_train_step(model, spec, loss, self.tx, config.train.dtype)
    eval_step = make_eval_step(model, spec, loss, config.train.dtype)
    init = functools.partial(init_state, model, spec, self.tx)
    self.batch_sharding = parallel.batch_sharding(mesh)
    with jax.set_mesh(mesh):  # code that needs the mesh (ring attention) finds it here
      self.abstract_state = jax.eval_shape(init, jax.random.PRNGKey(config.seed))
    self.state_sharding = parallel.state_shardings(mesh, self.abstract_state)
    self.abstract_state = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        self.abstract_state, self.state_sharding)
    replicated = parallel.replicated(mesh)
    self._train_jit = jax.jit(train_step, donate_argnums=0,
                              out_shardings=(self.state_sharding, replicated))
    self.init_state = self._under_mesh(jax.jit(init, out_shardings=self.state_sharding))
    self.train_step = self._under_mesh(self._train_jit)
    self.eval_step = self._under_mesh(jax.jit(eval_step, out_shardings=replicated))

  def _under_mesh(self, fn):
    def call(*args):
      with jax.set_mesh(self.mesh):
        return fn(*args)
    return call

  def lower_train_step(self, state, batch):
    """The jitted train step lowered for (state, batch): `.compile().memory_analysis()`."""
    with jax.set_mesh(self.mesh):
      return self._train_jit.lower(state, batch)

  def evaluate(self, params) -> Dict[str, float]:
    pid, pcount = jax.process_index(), jax.process_count()
    totals, n = {}, 0
    for batch in self.task.eval_batches(pid, pcount):
      metrics = self.eval_step(params, parallel.global_batch(batch, self.batch_sharding))
      for k, v in metrics.items():
        totals[k] = totals.get(k, 0.0) + v
      n += 1
    if not n:
      raise RunError('the evaluation set gave no batch: make train.eval_batch_size no larger '
                     'than the eval set')
    return {k: v / n for k, v in to_floats(totals).items()}


def git_revision() -> Optional[str]:
  try:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=root, capture_output=True,
                         text=True, timeout=5)
    return out.stdout.strip() or None if out.returncode == 0 else None
  except (OSError, subprocess.SubprocessError):
    return None


def run(config, workdir: str, *, stop_at: Optional[int] = None,
        previous_config: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
  """Trains and evaluates `config` in `workdir`, resuming from its latest checkpoint.

  Args:
    config: a full config (see ltmjax.config_lib).
    workdir: holds checkpoints/, metrics.jsonl, tensorboard/ and result.json.
    stop_at: leave (checkpointed) after this step; a later call resumes. For jobs cut
      into time slices, and for tests.
    previous_config: the config (a dict) the workdir's run was started with, if it differs
      (`workdir.check_config` returns it): a resume that changes the learning-rate schedule
      says so in one line (optim.schedule_change).
  Returns:
    The content of result.json (written when the run reaches `train.steps`).
  """
  os.makedirs(workdir, exist_ok=True)
  start_time = time.time()
  mesh = parallel.make_mesh(config.parallel)
  parallel.check_processes(mesh)
  task, model = build(config)
  # train.curriculum: batches at other task lengths (checked before anything is compiled).
  train_iter = curriculum.train_iterator(config, task, lambda n: build_task(config, length=n),
                                         jax.process_index(), jax.process_count())
  trainer = Trainer(config, task, model, mesh)
  is_writer = jax.process_index() == 0
  ckpt = checkpoint.Checkpointer(checkpoint.directory_of(workdir), keep=config.ckpt.keep)
  try:
    restored = ckpt.restore(trainer.abstract_state)
  except BaseException:
    ckpt.close()   # an open manager's threads would report at exit
    raise
  if restored is None:
    state, last_saved = trainer.init_state(jax.random.PRNGKey(config.seed)), None
    log.info('starting %s on %s from scratch in %s', config.model.name, config.task.name, workdir)
  else:
    state, data_state, last_saved = restored
    train_iter.set_state(data_state)
    log.info('resumed from step %d in %s', last_saved, workdir)
    if previous_config:
      change = optim.schedule_change(previous_config.get('opt', {}),
                                     int(previous_config.get('train', {}).get('steps', 0)),
                                     config.opt, int(config.train.steps), int(last_saved))
      if change:
        log.warning(change)

  total = int(config.train.steps)
  end = total if stop_at is None else min(stop_at, total)
  step = int(jax.device_get(state['step']))
  writer = MetricsWriter(workdir, enabled=is_writer, resume_step=step)
  progress = Progress(total, step, enabled=config.train.progress and is_writer)
  nonfinite = jnp.zeros((), jnp.int32)
  train_metrics: Dict[str, float] = {}
  eval_metrics: Dict[str, float] = {}
  loop_start, loop_start_step = time.time(), step

  def check_finite():
    if int(jax.device_get(nonfinite)):
      ckpt.wait()
      kept = ckpt.latest_step()
      raise RunError(
          f'the loss or gradients became NaN/inf before step {step}; the last good checkpoint '
          f'(step {kept}) is kept in {ckpt.directory}. Lower opt.learning_rate, set '
          'opt.clip_norm, or use train.dtype=float32.')

  try:
    with distributed.PreemptionGuard() as preemption:
      while step < end:
        batch = parallel.global_batch(next(train_iter), trainer.batch_sharding)
        state, metrics = trainer.train_step(state, batch)
        nonfinite = nonfinite + metrics.pop('nonfinite')
        step += 1
        progress.update()
        if step % config.train.log_every == 0 or step == end:
          check_finite()
          train_metrics = to_floats(metrics)
          train_metrics['learning_rate'] = optim.rate_at(config.opt, total, step)
          writer.write(step, 'train', train_metrics)
          progress.show(step, 'train', train_metrics)
        if step % config.train.eval_every == 0 or step == total:
          check_finite()
          eval_metrics = trainer.evaluate(state['params'])
          writer.write(step, 'eval', eval_metrics)
          progress.show(step, 'eval', eval_metrics)
        stop = step < end and preemption.requested(step)
        if step % config.ckpt.every == 0 or step == end or (stop and last_saved != step):
          check_finite()
          ckpt.save(step, state, train_iter.get_state())
          last_saved = step
        if stop:  # `finally` waits for the checkpoint to be written
          raise distributed.Preempted(step, ckpt.directory, preemption.signum)
  finally:
    progress.close()
    writer.close()
    ckpt.close()

  if step < total:
    return {'status': 'stopped', 'steps': step}
  if not eval_metrics:  # the run was already complete: evaluate the restored state
    eval_metrics = trainer.evaluate(state['params'])
  train_time = time.time() - loop_start
  result = {
      'config': config.to_dict(),
      'model': config.model.name,
      'task': config.task.name,
      'model_label': models.label(config.model),
      'task_label': task.label(),
      # What tables and figures sort and average by (ltmjax.report names no task or model).
      'model_order': models.order(config.model.name),
      'column_order': [tasks.order(config.task.name), task.spec.seq_len],
      'seq_len': task.spec.seq_len,
      'benchmark': task.benchmark(),
      'seed': int(config.seed),
      'metrics': eval_metrics,
      'train_metrics': train_metrics,
      'primary_metric': task.primary_metric,
      'higher_is_better': task.higher_is_better,
      'reference_metrics': task.reference_metrics(),
      'steps': step,
      'wall_time_s': round(time.time() - start_time, 2),
      'steps_per_second': round((step - loop_start_step) / max(train_time, 1e-9), 3),
      'num_params': int(sum(np.prod(x.shape) for x in jax.tree.leaves(state['params']))),
      'git_revision': git_revision(),
      'device': jax.devices()[0].platform,
      'num_devices': jax.device_count(),
      'status': 'complete',
  }
  if is_writer:
    with open(os.path.join(workdir, 'result.json'), 'w') as f:
      json.dump(result, f, indent=2, sort_keys=True)
    log.info('done: %s', format_metrics(eval_metrics))
  return result

