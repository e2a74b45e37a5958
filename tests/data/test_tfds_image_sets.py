"""TFDS image sets, on mocked data: never downloads, clear error when missing."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from kerasdl.data import (
    DatasetFormatError,
    DatasetNotFoundError,
    load_image_dataset,
)
from kerasdl.data.tfds_prepared import tfds_split_specs

FAKE_SIZES = {"train": 50, "test": 12}


def random_examples(builder, split, **kwargs):
    """Mocked records: as many random examples as the (sliced) split holds."""
    count = builder.info.splits[split].num_examples
    image_shape = builder.info.features["image"].shape
    num_classes = builder.info.features["label"].num_classes
    rng = np.random.default_rng(0)
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": rng.integers(0, 256, (count, *image_shape)).astype(np.uint8),
            "label": rng.integers(0, num_classes, count).astype(np.int64),
        }
    )


@pytest.mark.parametrize(
    "name, shape, num_classes",
    [
        ("mnist", (28, 28, 1), 10),
        ("fashion_mnist", (28, 28, 1), 10),
        ("cifar10", (32, 32, 3), 10),
        ("cifar100", (32, 32, 3), 100),
    ],
)
def test_mocked_tfds_dataset(tmp_path, name, shape, num_classes, fake_tfds_prepare):
    fake_tfds_prepare(name, str(tmp_path), FAKE_SIZES)
    with tfds.testing.mock_data(
        policy=tfds.testing.MockPolicy.USE_FILES,
        data_dir=str(tmp_path),
        as_dataset_fn=random_examples,
    ):
        data = load_image_dataset(
            name, data_dir=str(tmp_path), batch_size=8, augment=name == "cifar10"
        )
        # 50 train examples: 45 train + the last 5 (10%) for validation.
        assert data.num_examples == {"train": 45, "validation": 5, "test": 12}
        assert (data.input_shape, data.input_dtype) == (shape, "uint8")
        assert data.num_classes == num_classes == len(data.class_names)
        assert data.rescale == pytest.approx(1 / 255)
        for split in ("train", "validation", "test"):
            labels = [y for _, y in getattr(data, split)]
            assert sum(len(y) for y in labels) == data.num_examples[split]
        images, labels = next(iter(data.train))
        assert tuple(images.shape) == (8, *shape) and images.dtype == tf.uint8
        assert labels.dtype == tf.int32
        limited = load_image_dataset(name, data_dir=str(tmp_path), limit=3)
        assert limited.num_examples == {"train": 3, "validation": 3, "test": 3}


def test_missing_dataset_raises_without_downloading(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("kerasdl must not download implicitly")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    with pytest.raises(DatasetNotFoundError) as error:
        load_image_dataset("cifar10", data_dir=str(tmp_path))
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    for expected in (
        "'cifar10'",
        str(tmp_path),
        "tfds build cifar10",
        "--data-dir",
        "--dataset digits",
    ):
        assert expected in message


def test_a_missing_record_file_is_one_clear_error(tmp_path, fake_tfds_prepare):
    fake_tfds_prepare("mnist", str(tmp_path), FAKE_SIZES)
    (tmp_path / "mnist" / "3.0.1" / "mnist-test.tfrecord-00000-of-00001").unlink()
    with pytest.raises(DatasetFormatError, match="lacks its record file .*mnist-test"):
        load_image_dataset("mnist", data_dir=str(tmp_path))


def test_unreadable_metadata_is_one_clear_error(tmp_path, fake_tfds_prepare):
    fake_tfds_prepare("mnist", str(tmp_path), FAKE_SIZES)
    (tmp_path / "mnist" / "3.0.1" / "dataset_info.json").write_text("{not json")
    with pytest.raises(DatasetFormatError, match="cannot read the prepared 'mnist'"):
        load_image_dataset("mnist", data_dir=str(tmp_path))


@pytest.mark.parametrize(
    "limit, expected",
    [
        (
            None,
            {
                "train": ("train[:45]", 45),
                "validation": ("train[45:50]", 5),
                "test": ("test[:12]", 12),
            },
        ),
        (
            3,
            {
                "train": ("train[:3]", 3),
                "validation": ("train[45:48]", 3),
                "test": ("test[:3]", 3),
            },
        ),
    ],
)
def test_split_specs_hold_out_the_end_of_train(
    tmp_path, fake_tfds_prepare, limit, expected
):
    # The validation split starts where the unlimited training split ends, limit
    # or not, so a smaller --limit never moves validation into training data.
    builder = fake_tfds_prepare("mnist", str(tmp_path), FAKE_SIZES)
    assert tfds_split_specs(builder, limit) == expected
