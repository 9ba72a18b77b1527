"""The experiment suites: grids of (config file + argument) cells x seeds.

Run one with `python -m ltmjax.experiments run <suite>` (`list` shows them all). Each cell
points at a config in configs/ with its argument (`configs/<task>.py:<model>[,cpu][,key=value]`,
a path relative to the folder the suite runs from, the checkout); a suite never copies a
config, it only picks the argument and, rarely, an override.
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

Override = Tuple[str, object]


@dataclasses.dataclass(frozen=True)
class Cell:
  """One configuration of a suite: a config file with its argument, plus overrides."""
  name: str                              # directory name under runs/<suite>/
  config: str                            # 'configs/copy.py:gru,cpu', relative to the checkout
  overrides: Tuple[Override, ...] = ()   # (('train.steps', 500), ...) -> --config.train.steps=500

  @property
  def config_file(self) -> str:
    return self.config.split(':', 1)[0]


@dataclasses.dataclass(frozen=True)
class Suite:
  """A grid of cells x seeds that reproduces one table."""
  name: str
  description: str
  cells: Tuple[Cell, ...]
  seeds: Tuple[int, ...] = (0, 1, 2)
  overrides: Tuple[Override, ...] = ()   # applied to every cell (before the cell's own)
  slurm: Tuple[Tuple[str, str], ...] = (('time', '24:00:00'), ('gres', 'gpu:1'),
                                        ('cpus-per-task', '8'), ('mem', '64G'))
  published: bool = True                 # add the published reference rows to the table


MODELS = ('lstm', 'gru', 'transformer', 'ltmt')
CPU_SLURM = (('time', '01:00:00'), ('cpus-per-task', '2'), ('mem', '8G'))


def cells(prefix, config_file, *args, models=MODELS, overrides=()):
  """One cell per model: `<prefix>_<model>` running `<config_file>:<model>[,args...]`."""
  return tuple(Cell(f'{prefix}_{m}', f'{config_file}:{",".join((m,) + args)}', tuple(overrides))
               for m in models)


def synthetic_cells(*extra):
  """Copy and adding at T = 100, 500, 1000, selective copy, and the MQAR length sweep."""
  out = ()
  for t in (100, 500, 1000):
    out += cells(f'copy_T{t}', 'configs/copy.py', f'T={t}', *extra)
  for t in (100, 500, 1000):
    out += cells(f'adding_T{t}', 'configs/adding.py', f'T={t}', *extra)
  out += cells('selective_copy', 'configs/selective_copy.py', *extra)
  for t in (64, 128, 256, 512):
    out += cells(f'mqar_T{t}', 'configs/mqar.py', f'L={t}', *extra)   # mqar's length is L
  return out


def lra_cells():
  out = ()
  for task in ('listops', 'text', 'retrieval', 'image', 'pathfinder'):
    out += cells(task, f'configs/{task}.py')
  return out + cells('pathx', 'configs/pathfinder.py', 'pathx')


def image_cells():
  out = ()
  for data in ('mnist', 'permuted_mnist', 'fashion_mnist'):
    out += cells(data, 'configs/seq_mnist.py', data)
  # Row by row (28 steps): the setting of the published GRU+SVM benchmark numbers.
  for data in ('mnist', 'fashion_mnist'):
    out += cells(f'{data}_rows', 'configs/seq_mnist.py', data, 'order=row')
  return out


SUITES = {s.name: s for s in (
    Suite('quickstart',
          'LSTM, GRU, Transformer and LTM-T on CPU-sized copy and adding (minutes on 2 cores)',
          cells('copy', 'configs/copy.py', 'cpu') + cells('adding', 'configs/adding.py', 'cpu'),
          seeds=(0,), slurm=CPU_SLURM),
    Suite('synthetic',
          'memory tasks: copy and adding at T=100/500/1000, selective copy, MQAR length sweep',
          synthetic_cells()),
    Suite('synthetic_cpu', 'the synthetic suite at CPU size (configs with `cpu`)',
          synthetic_cells('cpu'), seeds=(0,), slurm=CPU_SLURM),
    Suite('lra', 'Long Range Arena: ListOps, Text, Retrieval, Image, Pathfinder, Path-X',
          lra_cells()),
    Suite('sequential_images',
          'sequential MNIST, permuted MNIST and Fashion-MNIST (pixel by pixel; MNIST and '
          'Fashion-MNIST also row by row)', image_cells()),
    Suite('char_lm', 'character-level language modelling (bits per character)',
          cells('char_lm', 'configs/char_lm.py')),
)}
