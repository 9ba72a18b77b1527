"""Pathfinder and Path-X (Linsley et al. 2018; Long Range Arena), generated here.

An image shows two long dashed, smoothly curving contours, a few short distractor
contours, and two round markers. Label 1: both markers sit on the two ends of the same
contour; label 0: they sit on different contours (labels alternate with the example index,
so every split is balanced). The model sees the image flattened row-major into a sequence
of RES*RES pixel intensities (tokens 0..255): 1024 for Pathfinder (RES=32), 16384 for
Path-X (RES=128).

The images follow Linsley et al.'s generator (snakes2.py of github.com/drewlinsley/pathfinder,
with LRA's per-resolution settings for 32, 64 and 128 px): two target snakes of
`contour_length` paddles whose origins are a fixed seed distance apart, distractor snakes,
grayscale anti-aliased rendering; a negative pairs one target's origin with the other
target's tip. `ltmjax.tasks.contours` has the construction, the settings and where we
differ (contours keep BRIDGE px apart, so that "connected" is exactly what a flood fill that
may jump BRIDGE px sees) and `ltmjax.tasks.marker_balance` how the two classes are thinned
to one distribution of marker distances (the original's differ at 64 px). Difficulty grows
with `contour_length`; LRA uses the hardest setting (14; 9 and 6 are Linsley et al.'s easier
ones).

The data is a tfds dataset (`ltm_pathfinder`, array_record) written by `PathfinderBuilder`
in parallel over processes on first use; `PathfinderTask` reads it with grain
(`ltmjax.tasks.generated`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from ltmjax.tasks import generated
from ltmjax.tasks.base import TaskSpec
from ltmjax.tasks.contours import (  # noqa: F401  (re-exported)
    SPLITS, example_rng, generate_chunk, generate_image, geometry)

CHUNK = 100   # images per generation work item


@dataclasses.dataclass
class PathfinderConfig(generated.GeneratedConfig):
  resolution: int = 32       # 32: Pathfinder (T=1024); 128: Path-X (T=16384)
  train_examples: int = 160_000   # LRA's 200k images split 80/10/10
  val_examples: int = 20_000
  test_examples: int = 20_000
  contour_length: int = 14   # paddles per target snake: LRA uses the hardest (14)


class PathfinderBuilder(generated.GeneratedBuilder):
  """tfds builder `ltm_pathfinder`: generated locally from a seed, in parallel processes."""
  name, VERSION = 'ltm_pathfinder', tfds.core.Version('2.3.0')
  RELEASE_NOTES = {'2.0.0': "Linsley et al.'s construction (contours.py).",
                   '2.1.0': 'A tip marker keeps the same clearance from its own snake as from '
                            'the other: no marker distance that only positives have.',
                   '2.3.0': "Images thinned by marker distance (marker_balance.py): the classes' "
                            'distances agree at 64 px too (2.2.0, a per-image matching, withdrawn).'}
  BUILDER_CONFIGS = [PathfinderConfig(name='lra32'),
                     PathfinderConfig(name='pathx128', resolution=128)]
  config_cls, generate_chunk, CHUNK = PathfinderConfig, staticmethod(generate_chunk), CHUNK
  SUPERVISED_KEYS = ('image', 'label')

  def features(self):
    r = self.builder_config.resolution
    return {'image': tfds.features.Tensor(shape=(r, r, 1), dtype=np.uint8),
            'markers': tfds.features.Tensor(shape=(2, 2), dtype=np.int32),
            'label': tfds.features.ClassLabel(num_classes=2)}


class PathfinderTask(generated.GeneratedTask):
  """LRA Pathfinder / Path-X: are the two markers connected? From the flattened pixels."""
  name, builder_cls = 'pathfinder', PathfinderBuilder

  def __init__(self, cfg, **kw):
    geometry(cfg.resolution)   # a resolution without LRA's settings fails here, not in a worker
    super().__init__(cfg, **kw)
    self.spec = TaskSpec('tokens', 256, 'sequence', 2, cfg.resolution ** 2)

  def label(self):
    return 'Path-X' if self.cfg.resolution >= 128 else 'Pathfinder'

  def benchmark(self):   # LRA averages Pathfinder at 32 px; Path-X is in no average
    return 'lra' if self.cfg.resolution == 32 else ''

  def preprocess(self, record):
    return {'inputs': record['image'].reshape(-1).astype(np.int32),
            'targets': np.int32(record['label'])}
