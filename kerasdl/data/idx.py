"""Reading IDX files (the MNIST format), gzip-compressed or not, with NumPy only."""

import gzip
import os
import zlib

import numpy as np

from kerasdl.data.errors import DatasetFormatError

# Third byte of the magic number -> element dtype (big-endian for multi-byte types).
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dimension (count,)


def read_idx(path, expected_magic=None):
    """Reads an IDX file into a NumPy array.

    The header is big-endian: a 4-byte magic number (two zero bytes, a type code,
    the number of dimensions), then one 4-byte size per dimension, then the data.

    Args:
        path: file path; names ending in `.gz` are decompressed.
        expected_magic: if given, the magic number the file must have
            (2051 for MNIST images, 2049 for labels). Defaults to `None`.

    Returns:
        A NumPy array of the header's shape and type.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetFormatError: the file is not valid gzip, its magic number is
            wrong, or its size does not match its header.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        if str(path).endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetFormatError(
            f"{path} is not a readable gzip file ({error}). The file is corrupt or "
            "truncated; restore it (e.g. `git checkout -- <file>` or reinstall kerasdl)."
        ) from error

    if len(data) < 4:
        raise DatasetFormatError(
            f"{path} has {len(data)} bytes, too few for an IDX header."
        )
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DatasetFormatError(
            f"{path} has IDX magic number {magic}, expected {expected_magic}. "
            "The file is corrupt or is not the IDX file it should be."
        )
    zeros, type_code, ndim = data[0:2], data[2], data[3]
    if zeros != b"\x00\x00" or type_code not in IDX_DTYPES or ndim == 0:
        raise DatasetFormatError(
            f"{path} does not start with a valid IDX magic number (got {magic:#010x})."
        )
    header_size = 4 + 4 * ndim
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    dtype = IDX_DTYPES[type_code]
    expected_size = header_size + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected_size:
        raise DatasetFormatError(
            f"{path} holds {len(data)} bytes but its header (shape {shape}, "
            f"{dtype}) implies {expected_size}. The file is truncated or corrupt."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))
