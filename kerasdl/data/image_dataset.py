"""`load_image_dataset`: every image set as batched, cached, prefetched `tf.data` pipelines."""

import dataclasses

import numpy as np
import tensorflow as tf

from kerasdl.data import embedded_images, tfds_images
from kerasdl.data.tfds_prepared import tfds_split_specs

EMBEDDED_IMAGE_DATASETS = ("digits", "mnist8k")
IMAGE_DATASETS = EMBEDDED_IMAGE_DATASETS + tfds_images.TFDS_IMAGE_DATASETS
# Horizontal flips keep the class for photos and clothes, not for digits.
FLIP_INVARIANT = ("fashion_mnist", "cifar10", "cifar100")


@dataclasses.dataclass
class ImageDataset:
    """An image classification data set split into train/validation/test pipelines.

    Each split yields `(raw_images, labels)` batches: images in their stored dtype
    and range (`input_dtype`; models apply `Rescaling(rescale)` themselves), labels
    int32 class ids. `train` is shuffled (reshuffled each epoch, seeded).

    Attributes:
        name: data set name, e.g. `"digits"`.
        train: training `tf.data.Dataset`.
        validation: validation `tf.data.Dataset`.
        test: test `tf.data.Dataset`.
        num_classes: number of classes.
        input_shape: image shape without batch axis, e.g. `(8, 8, 1)`.
        input_dtype: image dtype name, `"float32"` or `"uint8"`.
        rescale: factor mapping raw values to [0, 1] (1/16 digits, 1/255 uint8).
        class_names: one name per class id.
        num_examples: examples per split, `{"train": ..., "validation": ..., "test": ...}`.
    """

    name: str
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    input_shape: tuple
    input_dtype: str
    rescale: float
    class_names: list
    num_examples: dict


def augmentation_layers(name, seed=0):
    """The Keras preprocessing layers `augment=True` applies to training batches.

    Random translation by up to 10% of height and width (zero fill for
    digit sets, reflection for photos), plus random horizontal flips for
    `FLIP_INVARIANT` sets (CIFAR, Fashion-MNIST).
    """
    import keras

    fill_mode = "reflect" if name in FLIP_INVARIANT else "constant"
    layers = []
    if name in FLIP_INVARIANT:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    layers.append(
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode=fill_mode, seed=seed)
    )
    return keras.Sequential(layers, name=f"{name}_augmentation")


def build_pipeline(
    dataset, *, batch_size, training, num_examples=None, seed=0, augmentation=None
):
    """cache -> (shuffle) -> batch -> (augment) -> prefetch for one split.

    Args:
        dataset: unbatched `tf.data.Dataset` of `(image, label)`.
        batch_size: batch size.
        training: shuffle (seeded, reshuffled every epoch) and augment.
        num_examples: split size, used as the shuffle buffer (capped at 10,000).
        seed: shuffle seed.
        augmentation: optional Keras layer applied to training batches; its
            output is cast back to the input dtype so the element spec is the
            same with and without augmentation.
    """
    dataset = dataset.cache()
    if training:
        buffer_size = min(num_examples or 10_000, 10_000)
        dataset = dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if training and augmentation is not None:
        image_dtype = dataset.element_spec[0].dtype

        def augment(images, labels):
            augmented = augmentation(tf.cast(images, tf.float32), training=True)
            if image_dtype.is_integer:
                augmented = tf.clip_by_value(
                    tf.round(augmented), image_dtype.min, image_dtype.max
                )
            return tf.cast(augmented, image_dtype), labels

        dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _embedded_splits(name, limit):
    if name == "digits":
        images, labels = embedded_images.load_digits_arrays()
        rescale, class_names = 1.0 / 16.0, [str(d) for d in range(10)]
    else:
        images, labels = embedded_images.load_mnist8k_arrays()
        rescale, class_names = 1.0 / 255.0, [str(d) for d in range(10)]
    splits = {}
    for split, indices in zip(
        ("train", "validation", "test"), embedded_images.split_indices(name)
    ):
        indices = indices[:limit] if limit is not None else indices
        splits[split] = (
            tf.data.Dataset.from_tensor_slices((images[indices], labels[indices])),
            len(indices),
        )
    info = {
        "num_classes": 10,
        "input_shape": tuple(images.shape[1:]),
        "input_dtype": str(images.dtype),
        "rescale": rescale,
        "class_names": class_names,
    }
    return splits, info


def _tfds_splits(name, data_dir, limit, download):
    builder = tfds_images.get_prepared_builder(name, data_dir, download=download)
    image_feature = builder.info.features["image"]
    label_feature = builder.info.features["label"]
    splits = {}
    for split, (split_string, count) in tfds_split_specs(builder, limit).items():
        dataset = builder.as_dataset(
            split=split_string, as_supervised=True, shuffle_files=False
        )
        dataset = dataset.map(
            lambda image, label: (image, tf.cast(label, tf.int32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        splits[split] = (dataset, count)
    info = {
        "num_classes": label_feature.num_classes,
        "input_shape": tuple(image_feature.shape),
        "input_dtype": np.dtype(image_feature.np_dtype).name,
        "rescale": 1.0 / 255.0,
        "class_names": list(label_feature.names),
    }
    return splits, info


def load_image_dataset(
    name,
    *,
    batch_size=64,
    data_dir=None,
    seed=0,
    limit=None,
    augment=False,
    download=False,
):
    """Loads an image classification set as train/validation/test `tf.data` pipelines.

    Sets and their splits:

    | name | images | split (train / validation / test) |
    | --- | --- | --- |
    | `"digits"` | sklearn 8x8x1 float32 0..16 | stratified 70/15/15: 1,259 / 269 / 269 |
    | `"mnist8k"` | embedded 28x28x1 uint8 | stratified 75/12.5/12.5: 6,004 / 998 / 998 |
    | `"mnist"`, `"fashion_mnist"` | TFDS 28x28x1 uint8 | train[:90%] / train[90%:] / test |
    | `"cifar10"`, `"cifar100"` | TFDS 32x32x3 uint8 | train[:90%] / train[90%:] / test |

    The embedded splits use a fixed seed (the same images every run); `seed` only
    drives shuffling and augmentation. TFDS sets are read from `data_dir` and never
    downloaded unless `download=True`.

    Args:
        name: one of `IMAGE_DATASETS`.
        batch_size: batch size of every split. Defaults to `64`.
        data_dir: TFDS data directory (TFDS sets only). Defaults to `None`
            (TFDS' default, `$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
        seed: shuffle/augmentation seed. Defaults to `0`.
        limit: keep at most this many examples per split (quick runs, tests).
            Defaults to `None` (all).
        augment: randomly translate (and, for CIFAR/Fashion-MNIST, flip) training
            images with Keras preprocessing layers. Defaults to `False`.
        download: download and prepare a missing TFDS set. Defaults to `False`.

    Returns:
        An `ImageDataset`.

    Raises:
        ValueError: unknown `name`, or a non-positive `batch_size`/`limit`.
        DatasetNotFoundError: a TFDS set is not prepared in `data_dir` and
            `download=False`.
        DatasetFormatError: an embedded file is corrupt.

    Example:

    ```python
    data = kerasdl.data.load_image_dataset("digits", batch_size=32)
    model = kerasdl.models.get_model("lenet", data.input_shape, data.num_classes,
                                     rescale=data.rescale)
    ```
    """
    if name not in IMAGE_DATASETS:
        raise ValueError(
            f"Unknown image dataset {name!r}. Known: {', '.join(IMAGE_DATASETS)}."
        )
    if int(batch_size) < 1:
        raise ValueError(
            f"`batch_size` must be >= 1. Received: batch_size={batch_size}"
        )
    if limit is not None and int(limit) < 1:
        raise ValueError(f"`limit` must be >= 1 or None. Received: limit={limit}")

    if name in EMBEDDED_IMAGE_DATASETS:
        splits, info = _embedded_splits(name, limit)
    else:
        splits, info = _tfds_splits(name, data_dir, limit, download)

    augmentation = augmentation_layers(name, seed=seed) if augment else None
    pipelines = {
        split: build_pipeline(
            dataset,
            batch_size=batch_size,
            training=split == "train",
            num_examples=count,
            seed=seed,
            augmentation=augmentation,
        )
        for split, (dataset, count) in splits.items()
    }
    return ImageDataset(
        name=name,
        train=pipelines["train"],
        validation=pipelines["validation"],
        test=pipelines["test"],
        num_examples={split: count for split, (_, count) in splits.items()},
        **info,
    )
