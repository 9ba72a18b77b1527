"""Byte-level text tasks of the Long Range Arena: Text (IMDB) and Retrieval (AAN).

Tokens are the UTF-8 bytes of the text shifted by one, so that 0 is padding: vocabulary
257, the ids of LRA's `tfds.deprecated.text.ByteTextEncoder` (Tay et al. 2021, "Long
Range Arena", sections 3.3-3.4). Sequences are truncated or zero-padded to `seq_len`
with a mask that is True at real bytes.

- Text: IMDB reviews (tfds `imdb_reviews/plain_text`; 25k train, 25k test, 2 classes).
  The paper's table gives 4K bytes, while LRA's released `base_tc_config.py` sets
  max_length=1000 (its train.py truncates to it), hence `seq_len` (default 4096).
- Retrieval: two papers of the ACL Anthology Network; does one cite the other? The data
  is the user's copy of LRA's `new_aan_pairs.{train,eval,test}.tsv`, turned into an
  array_record tfds dataset by `LraAan` below the first time it is needed. 4000 bytes per
  document as in LRA's `base_match_config.py` (max_length=4000).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Tuple

import numpy as np
import tensorflow_datasets as tfds

from ltmjax.tasks import pipeline
from ltmjax.tasks.base import TaskSpec
from ltmjax.tasks.dataset import DatasetTask

VOCAB = 257     # 256 byte values + padding id 0
PAD_ID = 0

AAN_FILES = {'train': 'new_aan_pairs.train.tsv', 'validation': 'new_aan_pairs.eval.tsv',
             'test': 'new_aan_pairs.test.tsv'}
AAN_URL = 'https://storage.googleapis.com/long-range-arena/lra_release.gz'


def encode_bytes(text, seq_len: int) -> Tuple[np.ndarray, np.ndarray]:
  """UTF-8 bytes of `text` (str or bytes) + 1, truncated/padded to seq_len.

  Returns:
    (inputs [seq_len] int32 in 0..256 with 0 = padding, mask [seq_len] bool).
  """
  data = text.encode('utf-8') if isinstance(text, str) else bytes(text)
  tokens = np.frombuffer(data[:seq_len], np.uint8).astype(np.int32) + 1
  return pipeline.pad_tokens(tokens, seq_len, PAD_ID)


def decode_bytes(inputs_T: np.ndarray) -> bytes:
  """Inverse of `encode_bytes` (padding dropped): the (possibly truncated) UTF-8 bytes."""
  tokens = np.asarray(inputs_T)
  return bytes((tokens[tokens != PAD_ID] - 1).astype(np.uint8).tolist())


class TextTask(DatasetTask):
  """LRA Text: byte-level IMDB sentiment classification (2 classes)."""
  name = 'text'

  @staticmethod
  def default_config() -> Dict[str, Any]:
    return dict(
        seq_len=4096,
        data_dir='',               # tfds data dir; '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
        train_split='train',
        eval_split='test',         # LRA evaluates on IMDB's test split (it has no validation split)
    )

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    self.seq_len = int(cfg.seq_len)
    self.spec = TaskSpec('tokens', VOCAB, 'sequence', 2, self.seq_len)

  def label(self):
    return f'Text (T={self.seq_len})'

  def benchmark(self):   # LRA Text, and Retrieval (a subclass)
    return 'lra'

  def open_split(self, split: str):
    return pipeline.open_tfds('imdb_reviews/plain_text', split, self.cfg.data_dir or None)

  def preprocess(self, record) -> Dict[str, np.ndarray]:
    inputs, mask = encode_bytes(record['text'], self.seq_len)
    return {'inputs': inputs, 'mask': mask, 'targets': np.int32(record['label'])}


class LraAan(tfds.core.GeneratorBasedBuilder):
  """LRA Retrieval pairs (ACL Anthology Network) from the user's copy of LRA's TSV files."""
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'LRA release (lra_release.gz, tsv_data/new_aan_pairs.*.tsv).'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f'Download LRA\'s release {AAN_URL}, extract it (`tar xzf lra_release.gz`) and copy '
      'new_aan_pairs.train.tsv, new_aan_pairs.eval.tsv and new_aan_pairs.test.tsv from its '
      'tsv_data folder (lra_release/lra_release/tsv_data in LRA\'s dataset_setup.sh) into the '
      'manual directory (task.manual_dir; default <tfds data_dir>/downloads/manual/lra_aan).')

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description='Byte-level document matching of LRA (Tay et al. 2021): label 1 when '
                    'paper text1 cites paper text2.',
        features=tfds.features.FeaturesDict({
            'id1': tfds.features.Text(), 'id2': tfds.features.Text(),
            'text1': tfds.features.Text(), 'text2': tfds.features.Text(),
            'label': tfds.features.ClassLabel(num_classes=2)}),
        supervised_keys=None,
        homepage='https://github.com/google-research/long-range-arena')

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(dl_manager.manual_dir / name)
            for split, name in AAN_FILES.items()}

  def _generate_examples(self, path):
    # LRA reads these files with tab as the only delimiter and no quoting.
    with path.open('rb') as f:
      for line_no, line in enumerate(f):
        line = line.rstrip(b'\r\n')
        if not line:
          continue
        fields = line.split(b'\t')
        if len(fields) != 5:
          raise ValueError(f'{path}:{line_no + 1}: expected 5 tab-separated fields '
                           f'(label, id1, id2, text1, text2), found {len(fields)}')
        yield line_no, {'label': int(float(fields[0])), 'id1': fields[1], 'id2': fields[2],
                        'text1': fields[3], 'text2': fields[4]}


def aan_manual_dir(data_dir: str, manual_dir: str = '') -> str:
  """The folder holding the TSV files: `manual_dir`, else <data_dir>/downloads/manual/lra_aan."""
  return manual_dir or os.path.join(data_dir, 'downloads', 'manual', 'lra_aan')


def open_aan(split: str, data_dir: str = '', manual_dir: str = ''):
  """A split of LRA AAN as a random-access source, preparing the dataset on first use.

  Args:
    split: 'train', 'validation' or 'test' (tfds slicing allowed, e.g. 'train[:10%]').
    data_dir: tfds data dir ('' = $TFDS_DATA_DIR or ~/tensorflow_datasets).
    manual_dir: folder of the TSV files (see `aan_manual_dir`).
  Returns:
    a sequence of {'text1', 'text2', 'id1', 'id2': bytes, 'label': int} records.
  Raises:
    FileNotFoundError: (one line) the dataset is not prepared and the TSV files are missing.
  """
  data_dir = data_dir or pipeline.default_data_dir()
  builder = LraAan(data_dir=data_dir)
  if not builder.is_prepared():
    manual = aan_manual_dir(data_dir, manual_dir)
    missing = [n for n in AAN_FILES.values() if not os.path.isfile(os.path.join(manual, n))]
    if missing:
      raise FileNotFoundError(f'LRA Retrieval data missing: no {", ".join(missing)} in {manual}. '
                              + LraAan.MANUAL_DOWNLOAD_INSTRUCTIONS)
    # With several hosts on one filesystem, prepare once from a single process first.
    builder.download_and_prepare(
        file_format='array_record',
        download_config=tfds.download.DownloadConfig(manual_dir=manual))
  return builder.as_data_source(split=split)


class RetrievalTask(TextTask):
  """LRA Retrieval: does document 1 cite document 2? A pair task (2 classes)."""
  name = 'retrieval'

  @classmethod
  def default_config(cls) -> Dict[str, Any]:
    # LRA reports test accuracy; 'validation' is the eval file.
    return dict(super().default_config(),
                seq_len=4000,          # bytes per document
                manual_dir='')         # TSV folder; '' = <data_dir>/downloads/manual/lra_aan

  def __init__(self, cfg, **kw):
    super().__init__(cfg, **kw)
    self.spec = TaskSpec('tokens', VOCAB, 'sequence', 2, self.seq_len, pair=True)

  def label(self):
    return f'Retrieval (T={self.seq_len})'

  def open_split(self, split: str):
    return open_aan(split, self.cfg.data_dir, self.cfg.manual_dir)

  def preprocess(self, record) -> Dict[str, np.ndarray]:
    inputs, mask = encode_bytes(record['text1'], self.seq_len)
    inputs2, mask2 = encode_bytes(record['text2'], self.seq_len)
    return {'inputs': inputs, 'mask': mask, 'inputs2': inputs2, 'mask2': mask2,
            'targets': np.int32(record['label'])}
