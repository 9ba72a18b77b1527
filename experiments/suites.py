"""The experiment suites: grids of (config file + argument) cells x seeds.

Run one with `python -m ltmjax.experiments run <suite>` (`list` shows them all). Each cell
points at a config in configs/ with its argument (`configs/<task>.py:<model>[,cpu][,key=value]`);
a suite never copies a config, it only picks the argument and, rarely, an override.
"""
from ltmjax.experiments import Cell, Suite

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
    out += cells(f'mqar_T{t}', 'configs/mqar.py', f'T={t}', *extra)
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
