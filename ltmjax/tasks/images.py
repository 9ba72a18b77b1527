"""Sequential image classification: (permuted) MNIST, Fashion-MNIST, CIFAR-10 (LRA Image).

An image is read as a sequence, in one of two orders (`task.order`):
- 'pixel': T = H*W steps in raster order, one pixel per step. `task.input='tokens'` gives
  the intensity 0..255 as a token (vocabulary 256, embedded as in LRA Image);
  `task.input='real'` gives [T, C] values intensity/255 (sequential MNIST as in Le et
  al. 2015, "A Simple Way to Initialize Recurrent Networks of Rectified Linear Units").
- 'row': T = H steps of W*C real values (one image row per step).
Permuted MNIST applies one fixed permutation, drawn from `task.permutation_seed`, to the
H*W pixel positions of every image. CIFAR-10 is converted to grayscale by default, as in
LRA Image (Tay et al. 2021, section 3.5; T = 1024), with the luma weights
0.2989 R + 0.5870 G + 0.1140 B of `tf.image.rgb_to_grayscale`, rounded.

Data come from tfds (`task.source='tfds'`; needs the dataset prepared once online) or, for
the MNIST family, from a folder of the original IDX files (`task.source='idx'`,
`task.data_dir`). Fashion-MNIST reads Debian's `dataset-fashion-mnist` package by default.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Tuple

import numpy as np

from ltmjax.tasks import idx, pipeline
from ltmjax.tasks.base import TaskSpec
from ltmjax.tasks.dataset import DatasetTask

FASHION_MNIST_DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)


class ArraySource:
  """Random-access records {'image': [H, W, C] uint8, 'label': int} over in-memory arrays."""

  def __init__(self, images_NxHxWxC: np.ndarray, labels_N: np.ndarray):
    self.images, self.labels = images_NxHxWxC, labels_N

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    return {'image': self.images[i], 'label': self.labels[i]}


def to_grayscale(image_HxWx3: np.ndarray) -> np.ndarray:
  """[H, W, 3] uint8 RGB -> [H, W, 1] uint8 luma."""
  gray = image_HxWx3.astype(np.float32) @ GRAY_WEIGHTS
  return np.clip(np.round(gray), 0, 255).astype(np.uint8)[..., None]


def image_permutation(num_pixels: int, seed: int) -> np.ndarray:
  """The fixed pixel permutation of permuted MNIST: [num_pixels] int, a bijection."""
  return np.random.default_rng(seed).permutation(num_pixels)


def image_to_sequence(image_HxWxC: np.ndarray, order: str, input_kind: str,
                      permutation=None) -> np.ndarray:
  """One image as a model input sequence.

  Args:
    image_HxWxC: uint8 image.
    order: 'pixel' (T = H*W) or 'row' (T = H).
    input_kind: 'tokens' ([T] int32 intensities, needs C == 1 and pixel order) or
      'real' ([T, C] or [T, W*C] float32 in [0, 1]).
    permutation: optional [H*W] pixel positions: step t shows pixel permutation[t].
  Returns:
    [T] int32 or [T, D] float32.
  """
  h, w, c = image_HxWxC.shape
  pixels_PxC = image_HxWxC.reshape(h * w, c)
  if permutation is not None:
    pixels_PxC = pixels_PxC[permutation]
  if input_kind == 'tokens':
    return pixels_PxC[:, 0].astype(np.int32)
  real_PxC = pixels_PxC.astype(np.float32) / 255.0
  return real_PxC if order == 'pixel' else real_PxC.reshape(h, w * c)


class SequentialImageTask(DatasetTask):
  """Classify an image read pixel by pixel or row by row (10 classes)."""
  name = 'seq_image'
  tfds_name = ''            # catalog name for source='tfds'
  image_shape = (28, 28, 1)
  idx_files = True          # whether the original data come as IDX files
  default_idx_dir = ''      # data_dir used for source='idx' when task.data_dir is ''
  title = ''                # the table label's dataset name

  @classmethod
  def default_config(cls) -> Dict[str, Any]:
    return dict(
        source='tfds',             # tfds | idx (a folder of the original IDX files)
        data_dir='',               # idx: the IDX folder; tfds: data dir ('' = tfds default)
        order='pixel',             # pixel (T = H*W) | row (T = H)
        input='real',              # real (intensity / 255) | tokens (0..255; pixel order, gray)
        train_split='train',
        eval_split='test',
    )

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    self._arrays = {}   # IDX splits read so far: split -> ArraySource
    if cfg.source not in ('tfds', 'idx') or (cfg.source == 'idx' and not self.idx_files):
      raise ValueError(f"task.source for {self.name} must be "
                       f"{'tfds or idx' if self.idx_files else 'tfds'}, not {cfg.source!r}")
    if cfg.order not in ('pixel', 'row') or cfg.input not in ('real', 'tokens'):
      raise ValueError(f'task.order must be pixel|row and task.input real|tokens, '
                       f'not {cfg.order!r} / {cfg.input!r}')
    h, w, c = self.image_shape[0], self.image_shape[1], self.channels()
    if cfg.input == 'tokens' and (cfg.order != 'pixel' or c != 1):
      raise ValueError("task.input='tokens' needs task.order='pixel' and one channel "
                       f'(got order {cfg.order!r}, {c} channels)')
    self.seq_len = h * w if cfg.order == 'pixel' else h
    if cfg.input == 'tokens':
      self.spec = TaskSpec('tokens', 256, 'sequence', 10, self.seq_len)
    else:
      self.spec = TaskSpec('real', c if cfg.order == 'pixel' else w * c, 'sequence', 10,
                           self.seq_len)
    self.permutation = self.make_permutation()

  def channels(self) -> int:
    return self.image_shape[2]

  def make_permutation(self):
    return None

  def label(self):
    return f'{self.title} ({self.cfg.order}, T={self.seq_len})'

  def open_split(self, split: str):
    if self.cfg.source == 'tfds':
      return pipeline.open_tfds(self.tfds_name, split, self.cfg.data_dir or None)
    if split not in self._arrays:
      images_NxHxW, labels_N = idx.read_split(self.idx_dir(), split)
      self._arrays[split] = ArraySource(images_NxHxW[..., None], labels_N)
    return self._arrays[split]

  def idx_dir(self) -> str:
    data_dir = self.cfg.data_dir or self.default_idx_dir
    if not data_dir:
      raise ValueError(f"task.source='idx' needs task.data_dir: a folder of {self.title}'s "
                       'IDX files (train-images-idx3-ubyte.gz, ...)')
    return data_dir

  def preprocess(self, record) -> Dict[str, np.ndarray]:
    image = np.asarray(record['image'])
    if image.ndim == 2:
      image = image[..., None]
    if image.shape[-1] == 3 and self.channels() == 1:
      image = to_grayscale(image)
    inputs = image_to_sequence(image, self.cfg.order, self.cfg.input, self.permutation)
    return {'inputs': inputs, 'targets': np.int32(record['label'])}


class MnistTask(SequentialImageTask):
  """Sequential MNIST (pixel-by-pixel: T = 784)."""
  name, tfds_name, title = 'mnist', 'mnist', 'Sequential MNIST'


class PermutedMnistTask(SequentialImageTask):
  """Permuted sequential MNIST: one fixed random permutation of the 784 pixel positions."""
  name, tfds_name, title = 'permuted_mnist', 'mnist', 'Permuted MNIST'

  @classmethod
  def default_config(cls):
    return dict(super().default_config(), permutation_seed=92916)

  def make_permutation(self):
    h, w, _ = self.image_shape
    return image_permutation(h * w, int(self.cfg.permutation_seed))


class FashionMnistTask(SequentialImageTask):
  """Sequential Fashion-MNIST (Xiao et al. 2017); read from Debian's IDX files by default."""
  name, tfds_name, title = 'fashion_mnist', 'fashion_mnist', 'Sequential Fashion-MNIST'
  default_idx_dir = FASHION_MNIST_DEBIAN_DIR

  @classmethod
  def default_config(cls):
    return dict(super().default_config(), source='idx')

  def idx_dir(self) -> str:
    data_dir = super().idx_dir()
    if not os.path.isdir(data_dir):
      raise FileNotFoundError(
          f'Fashion-MNIST IDX folder {data_dir} not found: install Debian\'s package '
          f'(`apt-get install dataset-fashion-mnist`, files in {FASHION_MNIST_DEBIAN_DIR}), '
          'point --config.task.data_dir at a folder of the original IDX files, or use '
          '--config.task.source=tfds (prepare tfds fashion_mnist once on a machine with network)')
    return data_dir


class Cifar10Task(SequentialImageTask):
  """LRA Image: CIFAR-10 as 1024 grayscale pixel tokens (grayscale=False: RGB, real inputs)."""
  name, tfds_name, title = 'cifar10', 'cifar10', 'Image (CIFAR-10)'
  image_shape = (32, 32, 3)
  idx_files = False

  @classmethod
  def default_config(cls):
    return dict(super().default_config(), input='tokens', grayscale=True)

  def channels(self) -> int:
    return 1 if self.cfg.grayscale else 3

  def label(self):
    gray = ' gray' if self.cfg.grayscale else ''
    return f'Image (CIFAR-10{gray}, {self.cfg.order}, T={self.seq_len})'

  def benchmark(self):   # LRA Image is grayscale CIFAR-10 read pixel by pixel
    return 'lra' if self.cfg.grayscale and self.cfg.order == 'pixel' else ''
