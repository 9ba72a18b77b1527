"""Reader of the IDX format (LeCun's MNIST files, also used by Fashion-MNIST).

An IDX file is: two zero bytes, a dtype code byte, a byte giving the number of
dimensions n, n big-endian uint32 sizes, then the values in C order, big-endian.
Files may be gzip-compressed (the usual `*.gz` downloads); both forms are read.
"""
from __future__ import annotations

import gzip
import os
import struct
from typing import List, Tuple

import numpy as np

# dtype code -> big-endian numpy dtype (the codes of the IDX specification).
DTYPES = {
    0x08: np.dtype('>u1'),
    0x09: np.dtype('>i1'),
    0x0B: np.dtype('>i2'),
    0x0C: np.dtype('>i4'),
    0x0D: np.dtype('>f4'),
    0x0E: np.dtype('>f8'),
}
GZIP_MAGIC = b'\x1f\x8b'


class IDXError(ValueError):
  """A file that is not a well-formed IDX file."""


def parse_idx(data: bytes, name: str = '<bytes>') -> np.ndarray:
  """Decodes the bytes of an (uncompressed) IDX file.

  Args:
    data: the file's bytes.
    name: shown in error messages.
  Returns:
    An array of the file's shape in native byte order (uint8 stays uint8).
  Raises:
    IDXError: bad magic number, unknown dtype code, or a size that does not match.
  """
  if len(data) < 4:
    raise IDXError(f'{name}: {len(data)} bytes is too short for an IDX header')
  zero, code, ndim = struct.unpack('>HBB', data[:4])
  if zero != 0:
    raise IDXError(f'{name}: bad IDX magic number 0x{data[:4].hex()} '
                   '(must start with two zero bytes)')
  if code not in DTYPES:
    raise IDXError(f'{name}: unknown IDX dtype code 0x{code:02x} '
                   f'(known: {", ".join(f"0x{c:02x}" for c in DTYPES)})')
  header = 4 + 4 * ndim
  if len(data) < header:
    raise IDXError(f'{name}: header declares {ndim} dimensions but the file ends after '
                   f'{len(data)} bytes')
  shape = struct.unpack(f'>{ndim}I', data[4:header])
  dtype = DTYPES[code]
  expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(data) - header != expected:
    raise IDXError(f'{name}: shape {tuple(shape)} of {dtype.name} needs {expected} data bytes, '
                   f'found {len(data) - header}')
  values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
  return values.astype(dtype.newbyteorder('='))


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file, gzip-compressed or raw (detected from the content, not the name)."""
  with open(path, 'rb') as f:
    data = f.read()
  if data[:2] == GZIP_MAGIC:
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError) as e:
      raise IDXError(f'{path}: corrupt gzip data ({e})') from e
  return parse_idx(data, path)


def find_split_files(data_dir: str, split: str) -> Tuple[str, str]:
  """Paths of the images and labels files of `split` ('train' or 'test') in `data_dir`.

  Accepts the original names (`train-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, with or
  without `.gz`) and the dotted variant some mirrors use (`train-images.idx3-ubyte`).
  Raises FileNotFoundError (listing the names looked for) when either is missing.
  """
  prefix = {'train': 'train', 'test': 't10k'}.get(split)
  if prefix is None:
    raise ValueError(f"IDX folders hold the splits 'train' and 'test', not {split!r}")
  found = []
  for kind, ndim in (('images', 3), ('labels', 1)):
    names = _candidates(prefix, kind, ndim)
    paths = [os.path.join(data_dir, n) for n in names]
    existing = [p for p in paths if os.path.isfile(p)]
    if not existing:
      raise FileNotFoundError(f'no {names[0]}[.gz] in {data_dir}')
    found.append(existing[0])
  return found[0], found[1]


def _candidates(prefix: str, kind: str, ndim: int) -> List[str]:
  stems = [f'{prefix}-{kind}-idx{ndim}-ubyte', f'{prefix}-{kind}.idx{ndim}-ubyte']
  return [s + ext for s in stems for ext in ('', '.gz')]


def read_split(data_dir: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
  """(images [N, H, W] uint8, labels [N] uint8) of `split` from an IDX folder."""
  images_path, labels_path = find_split_files(data_dir, split)
  images, labels = read_idx(images_path), read_idx(labels_path)
  if images.ndim != 3 or labels.ndim != 1:
    raise IDXError(f'{images_path} / {labels_path}: expected [N, H, W] images and [N] labels, '
                   f'got shapes {images.shape} and {labels.shape}')
  if len(images) != len(labels):
    raise IDXError(f'{images_path} has {len(images)} images but {labels_path} has '
                   f'{len(labels)} labels')
  return images, labels
