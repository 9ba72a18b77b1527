"""IDX reader and sequential image tasks (MNIST family, CIFAR-10) on hand-written files."""
import gzip
import os
import struct

import chex
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ltmjax.tasks import idx, images


def idx_bytes(array: np.ndarray, code: int) -> bytes:
  """An IDX file written by hand: 0, 0, dtype code, ndim, big-endian sizes, big-endian data."""
  header = struct.pack('>BBBB', 0, 0, code, array.ndim)
  header += struct.pack(f'>{array.ndim}I', *array.shape)
  return header + array.astype(array.dtype.newbyteorder('>')).tobytes()


def write(path, data: bytes, gz: bool):
  with open(path, 'wb') as f:
    f.write(gzip.compress(data) if gz else data)
  return str(path)


def make_idx_dir(path, num_train=20, num_test=5, seed=0, gz=True):
  """A fake MNIST folder: random 28x28 images, labels i % 10."""
  rng = np.random.default_rng(seed)
  os.makedirs(path, exist_ok=True)
  arrays = {}
  for split, prefix, n in (('train', 'train', num_train), ('test', 't10k', num_test)):
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    y = (np.arange(n) % 10).astype(np.uint8)
    ext = '.gz' if gz else ''
    write(os.path.join(path, f'{prefix}-images-idx3-ubyte{ext}'), idx_bytes(x, 0x08), gz)
    write(os.path.join(path, f'{prefix}-labels-idx1-ubyte{ext}'), idx_bytes(y, 0x08), gz)
    arrays[split] = (x, y)
  return arrays


def make_task(cls, batch_size=4, eval_batch_size=5, **overrides):
  cfg = cls.default_config()
  cfg.update(overrides)
  return cls(ml_collections.ConfigDict(cfg), seed=0, batch_size=batch_size,
             eval_batch_size=eval_batch_size, eval_examples=1024)


class IdxTest(chex.TestCase):

  @pytest.fixture(autouse=True)
  def _tmp(self, tmp_path):
    self.tmp = tmp_path

  def test_round_trip_all_dtypes_raw_and_gzip(self):
    rng = np.random.default_rng(1)
    cases = [(rng.integers(0, 256, (3, 4, 5)).astype(np.uint8), 0x08),
             (rng.integers(-128, 128, (7,)).astype(np.int8), 0x09),
             (rng.integers(-30000, 30000, (2, 3)).astype(np.int16), 0x0B),
             (rng.integers(-2**31, 2**31 - 1, (4, 1)).astype(np.int32), 0x0C),
             (rng.normal(size=(2, 2, 2)).astype(np.float32), 0x0D),
             (rng.normal(size=(5,)).astype(np.float64), 0x0E)]
    for i, (array, code) in enumerate(cases):
      for gz in (False, True):
        path = write(self.tmp / f'a{i}{"gz" if gz else ""}', idx_bytes(array, code), gz)
        got = idx.read_idx(path)
        self.assertEqual(got.shape, array.shape)
        self.assertEqual(got.dtype, array.dtype)     # native byte order, same kind and size
        np.testing.assert_array_equal(got, array)

  def test_header_is_big_endian(self):
    # 2 images of 1x3 with bytes 1..6: decoding the sizes little-endian would fail.
    data = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(idx.parse_idx(data), [[[1, 2, 3]], [[4, 5, 6]]])
    data16 = bytes([0, 0, 0x0B, 1, 0, 0, 0, 1, 0x01, 0x02])
    self.assertEqual(idx.parse_idx(data16)[0], 0x0102)

  def test_malformed_files(self):
    good = idx_bytes(np.zeros((2, 3), np.uint8), 0x08)
    bad = {
        'short': (good[:3], 'too short'),
        'magic': (b'\x01' + good[1:], 'magic'),
        'dtype': (good[:2] + b'\x07' + good[3:], 'dtype code 0x07'),
        'dims': (good[:6], 'declares 2 dimensions'),
        'truncated': (good[:-1], 'needs 6 data bytes, found 5'),
        'extra': (good + b'\x00', 'needs 6 data bytes, found 7'),
    }
    for name, (data, message) in bad.items():
      path = write(self.tmp / name, data, gz=False)
      with self.assertRaisesRegex(idx.IDXError, message):
        idx.read_idx(path)
    path = write(self.tmp / 'corrupt.gz', gzip.compress(good)[:-6], gz=False)
    with self.assertRaisesRegex(idx.IDXError, 'corrupt gzip'):
      idx.read_idx(path)

  def test_read_split_and_file_names(self):
    arrays = make_idx_dir(self.tmp / 'gz', gz=True)
    x, y = idx.read_split(str(self.tmp / 'gz'), 'train')
    self.assertEqual(x.shape, (20, 28, 28))
    np.testing.assert_array_equal(x, arrays['train'][0])
    np.testing.assert_array_equal(y, arrays['train'][1])
    make_idx_dir(self.tmp / 'raw', gz=False)
    raw = self.tmp / 'raw'
    os.rename(raw / 't10k-images-idx3-ubyte', raw / 't10k-images.idx3-ubyte')
    self.assertEqual(idx.read_split(str(self.tmp / 'raw'), 'test')[0].shape, (5, 28, 28))
    os.remove(self.tmp / 'raw' / 't10k-labels-idx1-ubyte')
    with self.assertRaisesRegex(FileNotFoundError, 't10k-labels-idx1-ubyte'):
      idx.read_split(str(self.tmp / 'raw'), 'test')
    with self.assertRaisesRegex(ValueError, 'train.*test'):
      idx.read_split(str(self.tmp / 'gz'), 'validation')

  def test_count_mismatch(self):
    make_idx_dir(self.tmp, gz=False)
    write(self.tmp / 'train-labels-idx1-ubyte', idx_bytes(np.zeros(19, np.uint8), 0x08), False)
    with self.assertRaisesRegex(idx.IDXError, '20 images but .* 19 labels'):
      idx.read_split(str(self.tmp), 'train')


class SequenceTest(chex.TestCase):

  def test_orders_shapes_and_values(self):
    image = np.arange(28 * 28, dtype=np.int64).reshape(28, 28, 1) % 256
    image = image.astype(np.uint8)
    pixel = images.image_to_sequence(image, 'pixel', 'real')
    row = images.image_to_sequence(image, 'row', 'real')
    tokens = images.image_to_sequence(image, 'pixel', 'tokens')
    self.assertEqual((pixel.shape, pixel.dtype), ((784, 1), np.float32))
    self.assertEqual((row.shape, row.dtype), ((28, 28), np.float32))
    self.assertEqual((tokens.shape, tokens.dtype), ((784,), np.int32))
    np.testing.assert_array_equal(tokens, np.arange(784) % 256)        # raster order
    np.testing.assert_allclose(pixel[:, 0], tokens / 255.0, rtol=1e-6)
    np.testing.assert_allclose(row[3], image[3, :, 0] / 255.0, rtol=1e-6)  # step 3 = row 3
    rgb = np.stack([image[..., 0]] * 3, -1)
    self.assertEqual(images.image_to_sequence(rgb, 'row', 'real').shape, (28, 84))
    self.assertEqual(images.image_to_sequence(rgb, 'pixel', 'real').shape, (784, 3))

  def test_permutation_is_a_fixed_bijection(self):
    p = images.image_permutation(784, 7)
    np.testing.assert_array_equal(p, images.image_permutation(784, 7))
    self.assertFalse(np.array_equal(p, images.image_permutation(784, 8)))
    np.testing.assert_array_equal(np.sort(p), np.arange(784))
    image = np.random.default_rng(0).integers(0, 256, (28, 28, 1), dtype=np.uint8)
    seq = images.image_to_sequence(image, 'pixel', 'tokens', p)
    np.testing.assert_array_equal(seq, image.reshape(-1)[p])
    np.testing.assert_array_equal(np.sort(seq), np.sort(image.reshape(-1)))  # same multiset

  def test_grayscale(self):
    colors = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
    gray = images.to_grayscale(colors)
    self.assertEqual((gray.shape, gray.dtype), ((1, 4, 1), np.uint8))
    np.testing.assert_array_equal(gray[0, :, 0], [76, 150, 29, 255])


class TaskTest(chex.TestCase):

  @pytest.fixture(autouse=True)
  def _tmp(self, tmp_path):
    self.tmp = tmp_path
    self.arrays = make_idx_dir(tmp_path)

  def test_mnist_from_idx_folder(self):
    x, y = self.arrays['train']
    for order, inp, shape, dtype in (('pixel', 'real', (4, 784, 1), np.float32),
                                     ('row', 'real', (4, 28, 28), np.float32),
                                     ('pixel', 'tokens', (4, 784), np.int32)):
      task = make_task(images.MnistTask, source='idx', data_dir=str(self.tmp), order=order,
                       input=inp)
      self.assertEqual(task.spec.seq_len, shape[1])
      self.assertEqual(task.spec.input_kind, inp)
      it = task.train_iterator()
      seen = set()
      for _ in range(5):     # one epoch of 20 images in batches of 4
        batch = next(it)
        self.assertEqual(set(batch), {'inputs', 'targets'})
        self.assertEqual((batch['inputs'].shape, batch['inputs'].dtype), (shape, dtype))
        self.assertEqual(batch['targets'].dtype, np.int32)
        for seq, label in zip(batch['inputs'], batch['targets']):
          flat = seq.reshape(-1) if inp == 'tokens' else np.round(seq.reshape(-1) * 255)
          i = int(np.flatnonzero((x.reshape(20, -1) == flat).all(1))[0])
          self.assertEqual(label, y[i])    # labels travel with their images
          seen.add(i)
      self.assertEqual(seen, set(range(20)))

  def test_eval_batches_are_the_test_split_in_order(self):
    task = make_task(images.MnistTask, source='idx', data_dir=str(self.tmp), input='tokens')
    batches = list(task.eval_batches())
    self.assertLen(batches, 1)
    np.testing.assert_array_equal(batches[0]['inputs'], self.arrays['test'][0].reshape(5, -1))
    np.testing.assert_array_equal(batches[0]['targets'], self.arrays['test'][1])

  def test_permuted_mnist(self):
    task = make_task(images.PermutedMnistTask, source='idx', data_dir=str(self.tmp),
                     input='tokens', permutation_seed=3)
    np.testing.assert_array_equal(task.permutation, images.image_permutation(784, 3))
    batch = next(iter(task.eval_batches()))
    x = self.arrays['test'][0].reshape(5, -1)
    np.testing.assert_array_equal(batch['inputs'], x[:, task.permutation])
    again = make_task(images.PermutedMnistTask, source='idx', data_dir=str(self.tmp),
                      input='tokens', permutation_seed=3)
    np.testing.assert_array_equal(next(iter(again.eval_batches()))['inputs'], batch['inputs'])

  def test_iterator_resumes_from_state(self):
    task = make_task(images.MnistTask, source='idx', data_dir=str(self.tmp))
    it = task.train_iterator()
    next(it)
    state = it.get_state()
    expected = [next(it)['targets'] for _ in range(3)]
    fresh = task.train_iterator()
    fresh.set_state(state)
    for want in expected:
      np.testing.assert_array_equal(next(fresh)['targets'], want)

  def test_fashion_mnist_missing_folder_error(self):
    task = make_task(images.FashionMnistTask, data_dir=str(self.tmp / 'nowhere'))
    with self.assertRaises(FileNotFoundError) as e:
      task.train_iterator()
    message = str(e.exception)
    self.assertNotIn('\n', message)
    for fix in ('apt-get install dataset-fashion-mnist', 'task.source=tfds', 'task.data_dir'):
      self.assertIn(fix, message)

  def test_invalid_settings(self):
    with self.assertRaisesRegex(ValueError, 'tokens'):
      make_task(images.MnistTask, order='row', input='tokens')
    with self.assertRaisesRegex(ValueError, 'tokens'):
      make_task(images.Cifar10Task, grayscale=False)          # 3 channels cannot be one token
    with self.assertRaisesRegex(ValueError, 'source'):
      make_task(images.Cifar10Task, source='idx')

  def test_loss_and_metrics(self):
    task = make_task(images.MnistTask, source='idx', data_dir=str(self.tmp))
    logits = jnp.zeros((4, 10)).at[jnp.arange(4), jnp.array([1, 2, 3, 0])].set(5.0)
    loss, metrics = task.loss_and_metrics(logits, {'targets': jnp.array([1, 2, 3, 4])})
    self.assertAlmostEqual(float(metrics['accuracy']), 0.75)
    self.assertGreater(float(loss), 0.0)


class TfdsTest(chex.TestCase):

  def test_tfds_mock_mnist_and_cifar10(self):
    with tfds.testing.mock_data(num_examples=8):
      mnist = make_task(images.MnistTask, order='row')
      batch = next(mnist.train_iterator())
      self.assertEqual(batch['inputs'].shape, (4, 28, 28))
      cifar = make_task(images.Cifar10Task, batch_size=8, eval_batch_size=8)
      record = cifar.open_split('test')[0]
      batch = next(cifar.eval_batches())
      self.assertEqual((batch['inputs'].shape, batch['inputs'].dtype), ((8, 1024), np.int32))
      np.testing.assert_array_equal(batch['inputs'][0],
                                    images.to_grayscale(record['image']).reshape(-1))
      self.assertEqual(batch['targets'][0], record['label'])
      self.assertEqual(cifar.spec.input_dim, 256)


@pytest.mark.skipif(not os.path.isdir(images.FASHION_MNIST_DEBIAN_DIR),
                    reason='Debian package dataset-fashion-mnist not installed')
def test_fashion_mnist_debian_files():
  task = make_task(images.FashionMnistTask)
  train, test = task.open_split('train'), task.open_split('test')
  assert (len(train), len(test)) == (60000, 10000)
  assert train[0]['image'].shape == (28, 28, 1)
  assert np.bincount(test.labels, minlength=10).tolist() == [1000] * 10
