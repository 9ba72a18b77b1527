"""Pathfinder: labels re-derived by flood fill on the pixels; balance; determinism; tiny build."""
from collections import deque

import ml_collections
import numpy as np
from absl.testing import absltest

from ltmjax.tasks import pathfinder


def _connected(image, a, b, jump):
  """Breadth-first search over ink pixels, stepping up to `jump` pixels in each axis."""
  ink = image > 0
  seen = np.zeros_like(ink)
  queue = deque([tuple(a)])
  seen[tuple(a)] = True
  n = ink.shape[0]
  while queue:
    r, c = queue.popleft()
    if (r, c) == tuple(b):
      return True
    for dr in range(-jump, jump + 1):
      for dc in range(-jump, jump + 1):
        rr, cc = r + dr, c + dc
        if 0 <= rr < n and 0 <= cc < n and ink[rr, cc] and not seen[rr, cc]:
          seen[rr, cc] = True
          queue.append((rr, cc))
  return False


class GeneratorTest(absltest.TestCase):

  def _check(self, resolution, count):
    jump = pathfinder.geometry(resolution)['bridge']
    items = pathfinder.generate_chunk(0, 'train', 0, count, resolution, 14, 4, 4, 30.0)
    labels = []
    for _, ex in items:
      image, markers, label = ex['image'][..., 0], ex['markers'], ex['label']
      self.assertEqual(image.shape, (resolution, resolution))
      self.assertEqual(image.dtype, np.uint8)
      self.assertTrue(set(np.unique(image)) <= {0, 255})
      self.assertTrue((image[tuple(markers.T)] > 0).all())          # markers are drawn
      self.assertEqual(_connected(image, markers[0], markers[1], jump), bool(label))
      labels.append(label)
    return labels

  def test_labels_match_flood_fill_32(self):
    labels = self._check(32, 60)
    self.assertEqual(sum(labels), 30)                                 # balanced

  def test_labels_match_flood_fill_pathx_128(self):
    self._check(128, 4)

  def test_contours_are_dashed(self):
    # A positive contour joins its markers only when the flood fill may jump the gaps.
    image, (marker_a, marker_b) = pathfinder.generate_image(
        pathfinder.example_rng(0, 'train', 1), 1)
    self.assertTrue(_connected(image, marker_a, marker_b, 2))
    self.assertFalse(_connected(image, marker_a, marker_b, 1))
    self.assertGreater((image > 0).sum(), 40)

  def test_deterministic(self):
    a = pathfinder.generate_image(pathfinder.example_rng(3, 'test', 5), 0)
    b = pathfinder.generate_image(pathfinder.example_rng(3, 'test', 5), 0)
    c = pathfinder.generate_image(pathfinder.example_rng(3, 'test', 6), 0)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    self.assertFalse(np.array_equal(a[0], c[0]))


def test_tiny_build_reads_back_through_tfds_and_batches(tmp_path):
  import tensorflow_datasets as tfds
  cfg = dict(pathfinder.PathfinderTask.default_config())
  cfg.update(data_dir=str(tmp_path), train_examples=24, val_examples=8, test_examples=8,
             workers=1)
  task = pathfinder.PathfinderTask(ml_collections.ConfigDict(cfg), seed=0, batch_size=8,
                                   eval_batch_size=4)
  assert task.spec.seq_len == 1024 and task.spec.input_dim == 256
  name = 'ltm_pathfinder/' + task.builder.builder_config.name
  source = tfds.data_source(name, split='test', data_dir=str(tmp_path), download=False)
  assert len(source) == 8
  assert sorted(int(source[i]['label']) for i in range(8)) == [0] * 4 + [1] * 4
  for i in range(8):
    ex = source[i]
    assert _connected(ex['image'][..., 0], ex['markers'][0], ex['markers'][1], 2) == bool(ex['label'])
  batch = next(task.train_iterator())
  assert batch['inputs'].shape == (8, 1024) and batch['inputs'].dtype == np.int32
  assert batch['targets'].shape == (8,)
  assert batch['inputs'].min() >= 0 and batch['inputs'].max() <= 255
  assert len(list(task.eval_batches())) == 2


if __name__ == '__main__':
  absltest.main()
