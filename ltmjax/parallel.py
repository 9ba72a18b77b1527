"""Devices: one Mesh with axes ('data', 'seq', 'model'), shardings, multi-host batches.

Batches are sharded over 'data'; attention heads and MLP hidden units over 'model'
(by parameter name, see `param_spec`); 'seq' splits the sequence for ring attention
(`ltmjax.attention.ring_attention`, size 1 unless parallel.seq > 1). The train step is `jax.jit`
with these shardings, and `jax.shard_map` where a collective is written by hand — what
`pmap` became (pmap is in maintenance mode, built on shard_map). With several processes
(ltmjax/distributed.py) the mesh spans all of them and each feeds its rows of the batch.
"""
from __future__ import annotations

import re
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXES = ('data', 'seq', 'model')


def make_mesh(parallel_cfg, devices=None) -> Mesh:
  """A ('data', 'seq', 'model') mesh; -1 on 'data' or 'model' takes the devices left over.

  Explicit sizes may use fewer devices than there are (the first data*seq*model).
  """
  devices = list(jax.devices() if devices is None else devices)
  n = len(devices)
  data, model = int(parallel_cfg.data), int(parallel_cfg.model)
  seq = int(parallel_cfg.get('seq', 1))
  if data == -1 and model == -1:
    raise ValueError('parallel.data and parallel.model cannot both be -1')
  if seq < 1:
    raise ValueError(f'parallel.seq must be >= 1, got {seq}')
  if data == -1:
    data = n // (model * seq) if model > 0 and n % (model * seq) == 0 else -1
  if model == -1:
    model = n // (data * seq) if data > 0 and n % (data * seq) == 0 else -1
  if data < 1 or model < 1 or data * seq * model > n or (
      -1 in (parallel_cfg.data, parallel_cfg.model) and data * seq * model != n):
    raise ValueError(f'parallel.data={parallel_cfg.data} x parallel.seq={seq} x '
                     f'parallel.model={parallel_cfg.model} does not fit the {n} devices; set '
                     f'data*seq*model <= {n} (-1 takes the remaining devices)')
  # jax.devices() lists each process's devices together, so every process holds a
  # contiguous block of 'data' rows: the rows it feeds (`global_batch`).
  return Mesh(np.asarray(devices[:data * seq * model]).reshape(data, seq, model), AXES)


def check_processes(mesh: Mesh) -> None:
  """With several processes, each must hold whole 'data' rows of the mesh, since each
  feeds its own rows of the batch (`global_batch`)."""
  count = jax.process_count()
  if count == 1:
    return
  per_row = mesh.shape['seq'] * mesh.shape['model']
  if mesh.devices.size != jax.device_count() or jax.local_device_count() % per_row:
    raise ValueError(
        f'with {count} processes the mesh must use all {jax.device_count()} devices and '
        f'parallel.seq*parallel.model ({per_row}) must divide the {jax.local_device_count()} '
        'devices of each process; use parallel.data=-1')


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P('data'))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


# (regex on the '/'-joined parameter path, rank) -> spec. Heads / hidden units go on 'model'.
_RULES = (
    (r'(^|/)(query|key|value)(/kernel)?$', 3, P(None, 'model', None)),
    (r'(^|/)(query|key|value)/bias$', 2, P('model', None)),
    (r'(^|/)out(/kernel)?$', 3, P('model', None, None)),
    (r'(^|/)mlp_in(/kernel)?$', 2, P(None, 'model')),
    (r'(^|/)mlp_in/bias$', 1, P('model')),
    (r'(^|/)mlp_out(/kernel)?$', 2, P('model', None)),
)


def _path_str(path) -> str:
  parts = []
  for k in path:
    parts.append(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k)))))
  return '/'.join(parts)


def param_spec(path: str, shape, model_size: int) -> P:
  """PartitionSpec of one parameter: the sharded axis must divide by the 'model' size."""
  if model_size > 1:
    for pattern, rank, spec in _RULES:
      if len(shape) == rank and re.search(pattern, path):
        axis = spec.index('model')
        if shape[axis] % model_size == 0:
          return spec
  return P()


def state_shardings(mesh: Mesh, abstract_state: Any):
  """NamedShardings for a train-state pytree: parameter-shaped leaves follow `param_spec`
  (optimizer moments are found by the same path suffix); everything else is replicated."""
  model_size = mesh.shape['model']

  def one(path, leaf):
    shape = getattr(leaf, 'shape', ())
    return NamedSharding(mesh, param_spec(_path_str(path), shape, model_size))
  return jax.tree_util.tree_map_with_path(one, abstract_state)


def global_batch(local_batch, sharding: NamedSharding):
  """One global jax.Array per field from this process's rows of the batch."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      local_batch)
