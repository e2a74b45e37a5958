"""IDX parsing: valid files, and clear errors for corrupt ones."""

import gzip
import shutil

import numpy as np
import pytest

from kerasdl.data import DatasetFormatError
from kerasdl.data.embedded_images import (
    MNIST8K_DIR,
    MNIST8K_IMAGES,
    MNIST8K_LABELS,
    load_mnist8k_arrays,
)
from kerasdl.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from kerasdl.data.splits import stratified_split


def write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(
        d.to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_round_trip(tmp_path):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    write_idx(tmp_path / "x.gz", images, IMAGES_MAGIC)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz", IMAGES_MAGIC), images)


def test_wrong_magic(tmp_path):
    write_idx(tmp_path / "labels.gz", np.zeros(5), LABELS_MAGIC)
    with pytest.raises(DatasetFormatError, match="magic number 2049, expected 2051"):
        read_idx(tmp_path / "labels.gz", IMAGES_MAGIC)


def test_truncated_payload(tmp_path):
    header = IMAGES_MAGIC.to_bytes(4, "big") + b"".join(
        d.to_bytes(4, "big") for d in (10, 28, 28)
    )
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(header + bytes(100))
    with pytest.raises(DatasetFormatError, match="truncated or corrupt"):
        read_idx(tmp_path / "short.gz", IMAGES_MAGIC)


def test_not_gzip(tmp_path):
    (tmp_path / "bad.gz").write_bytes(b"this is not gzip data at all")
    with pytest.raises(DatasetFormatError, match="not a readable gzip file"):
        read_idx(tmp_path / "bad.gz")


def test_corrupt_mnist8k_file_is_reported(tmp_path):
    shutil.copy(f"{MNIST8K_DIR}/{MNIST8K_IMAGES}", tmp_path / MNIST8K_IMAGES)
    data = (tmp_path / MNIST8K_IMAGES).read_bytes()
    (tmp_path / MNIST8K_LABELS).write_bytes(data[: len(data) // 2])  # wrong + cut
    with pytest.raises(DatasetFormatError, match=MNIST8K_LABELS):
        load_mnist8k_arrays(str(tmp_path))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="IDX file not found"):
        load_mnist8k_arrays(str(tmp_path))


def test_stratified_split_validation():
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(np.zeros(10), (0.5, 0.2))
    parts = stratified_split(np.repeat(np.arange(4), 25), (0.6, 0.2, 0.2), seed=3)
    assert [len(p) for p in parts] == [60, 20, 20]
