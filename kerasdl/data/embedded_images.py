"""The image sets that need no download: sklearn's 8x8 digits and the embedded mnist8k.

Parsed arrays are cached per process (the first call reads the files, later
calls return the same read-only arrays), so recipes and tests stay fast.
"""

import functools
import os

import numpy as np

from kerasdl.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from kerasdl.data.splits import stratified_split

EMBEDDED_DIR = os.path.join(os.path.dirname(__file__), "embedded")
MNIST8K_DIR = os.path.join(EMBEDDED_DIR, "mnist8k")
MNIST8K_IMAGES = "t10k-images-idx3-ubyte.gz"
MNIST8K_LABELS = "t10k-labels-idx1-ubyte.gz"

# The splits are fixed (not the caller's seed), so every run evaluates on the same images.
SPLIT_SEED = 0
DIGITS_FRACTIONS = (0.70, 0.15, 0.15)  # 1,797 -> 1,259 / 269 / 269 (rounded per class)
MNIST8K_FRACTIONS = (
    0.75,
    0.125,
    0.125,
)  # 8,000 -> 6,004 / 998 / 998 (rounded per class)


def _read_only(*arrays):
    for array in arrays:
        array.setflags(write=False)
    return arrays


@functools.cache
def load_digits_arrays():
    """sklearn's `load_digits` as images `(1797, 8, 8, 1)` float32 in 0..16 and int32 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)[..., None]
    labels = digits.target.astype(np.int32)
    return _read_only(images, labels)


@functools.cache
def load_mnist8k_arrays(directory=MNIST8K_DIR):
    """The embedded MNIST images `(8000, 28, 28, 1)` uint8 and int32 labels.

    Raises:
        FileNotFoundError: a file is missing.
        DatasetFormatError: a file is corrupt (bad gzip, wrong magic number,
            size not matching its header) or images and labels disagree.
    """
    from kerasdl.data.errors import DatasetFormatError

    images = read_idx(os.path.join(directory, MNIST8K_IMAGES), IMAGES_MAGIC)
    labels = read_idx(os.path.join(directory, MNIST8K_LABELS), LABELS_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetFormatError(
            f"mnist8k images have shape {images.shape}, expected (N, 28, 28)."
        )
    if labels.shape != (images.shape[0],):
        raise DatasetFormatError(
            f"mnist8k has {images.shape[0]} images but labels of shape {labels.shape}."
        )
    if labels.max() > 9:
        raise DatasetFormatError(f"mnist8k labels must be 0..9, found {labels.max()}.")
    return _read_only(images[..., None], labels.astype(np.int32))


@functools.cache
def split_indices(name):
    """The fixed stratified (train, validation, test) index arrays of an embedded set."""
    if name == "digits":
        _, labels = load_digits_arrays()
        return stratified_split(labels, DIGITS_FRACTIONS, seed=SPLIT_SEED)
    if name == "mnist8k":
        _, labels = load_mnist8k_arrays()
        return stratified_split(labels, MNIST8K_FRACTIONS, seed=SPLIT_SEED)
    raise ValueError(f"No embedded image set named {name!r}.")
