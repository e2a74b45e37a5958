"""digits and mnist8k: shapes, dtypes, deterministic stratified splits, pipelines."""

import numpy as np
import pytest

import kerasdl
from kerasdl.data import embedded_images, load_image_dataset


def all_batches(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


@pytest.mark.parametrize(
    "name, shape, dtype, rescale, total",
    [
        ("digits", (8, 8, 1), "float32", 1 / 16, 1797),
        ("mnist8k", (28, 28, 1), "uint8", 1 / 255, 8000),
    ],
)
def test_dataset_description(name, shape, dtype, rescale, total):
    data = load_image_dataset(name, batch_size=50)
    assert isinstance(data, kerasdl.data.ImageDataset)
    assert (data.name, data.input_shape, data.input_dtype) == (name, shape, dtype)
    assert data.num_classes == 10 and data.class_names == [str(d) for d in range(10)]
    assert data.rescale == pytest.approx(rescale)
    assert sum(data.num_examples.values()) == total
    images, labels = all_batches(data.validation)
    assert images.shape == (data.num_examples["validation"], *shape)
    assert images.dtype == dtype and labels.dtype == np.int32
    x, y = next(iter(data.train))
    assert tuple(x.shape) == (50, *shape) and tuple(y.shape) == (50,)


@pytest.mark.parametrize("name", ["digits", "mnist8k"])
def test_split_is_fixed_disjoint_and_stratified(name):
    train, validation, test = embedded_images.split_indices(name)
    indices = np.concatenate([train, validation, test])
    assert len(np.unique(indices)) == len(indices)  # disjoint, covers all
    _, labels = (
        embedded_images.load_digits_arrays()
        if name == "digits"
        else embedded_images.load_mnist8k_arrays()
    )
    assert len(indices) == len(labels)
    overall = np.bincount(labels) / len(labels)
    for part in (train, validation, test):
        np.testing.assert_allclose(
            np.bincount(labels[part]) / len(part), overall, atol=0.01
        )
    # The split does not depend on the caller's seed: same test images every run.
    a = load_image_dataset(name, batch_size=1000, seed=1)
    b = load_image_dataset(name, batch_size=1000, seed=2)
    np.testing.assert_array_equal(all_batches(a.test)[1], all_batches(b.test)[1])


def test_train_is_shuffled_with_the_seed():
    first = [
        all_batches(load_image_dataset("digits", seed=s).train)[1] for s in (0, 0, 1)
    ]
    np.testing.assert_array_equal(first[0], first[1])
    assert not np.array_equal(first[0], first[2])
    assert sorted(first[0]) == sorted(first[2])


def test_limit_caps_every_split():
    data = load_image_dataset("mnist8k", batch_size=16, limit=40)
    assert data.num_examples == {"train": 40, "validation": 40, "test": 40}
    assert len(all_batches(data.train)[1]) == 40


@pytest.mark.parametrize("name", ["digits", "mnist8k"])
def test_augment_keeps_dtype_and_range(name):
    plain = load_image_dataset(name, batch_size=32, limit=64)
    data = load_image_dataset(name, batch_size=32, limit=64, augment=True)
    assert data.train.element_spec == plain.train.element_spec
    images, _ = all_batches(data.train)
    assert images.min() >= 0 and images.max() <= (16 if name == "digits" else 255)
    # Augmentation only on train.
    np.testing.assert_array_equal(all_batches(data.test)[0], all_batches(plain.test)[0])


def test_arrays_are_cached_and_read_only():
    images, labels = embedded_images.load_mnist8k_arrays()
    assert embedded_images.load_mnist8k_arrays()[0] is images
    assert not images.flags.writeable
    assert images.shape == (8000, 28, 28, 1) and images.dtype == np.uint8
    assert np.bincount(labels).tolist()[:3] == [np.sum(labels == d) for d in range(3)]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="Unknown image dataset 'svhn'.*digits"):
        load_image_dataset("svhn")
    with pytest.raises(ValueError, match="batch_size.*Received: batch_size=0"):
        load_image_dataset("digits", batch_size=0)
    with pytest.raises(ValueError, match="limit.*Received: limit=0"):
        load_image_dataset("digits", limit=0)
