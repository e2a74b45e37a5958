"""Image sets read through TensorFlow Datasets, only ever from disk unless asked to download."""

from kerasdl.data.tfds_prepared import prepared_builder

TFDS_IMAGE_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")
VALIDATION_FRACTION = 0.1  # the last 10% of TFDS' "train" split is the validation set


def get_prepared_builder(name, data_dir=None, download=False):
    """Returns the TFDS builder of `name`, prepared on disk with all its records.

    Args:
        name: one of `TFDS_IMAGE_DATASETS` (other TFDS names work too).
        data_dir: TFDS data directory; `None` uses TFDS' default
            (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`). Defaults to `None`.
        download: download and prepare the data set when it is missing.
            Defaults to `False`.

    Raises:
        DatasetNotFoundError: not prepared in `data_dir` and `download=False`.
        DatasetFormatError: prepared, but its metadata cannot be read or one of
            its record files is missing.
    """
    return prepared_builder(
        name,
        data_dir,
        download,
        loader="load_image_dataset",
        offline="--dataset digits (sklearn's 8x8 digits) or --dataset mnist8k "
        "(8,000 MNIST images shipped with kerasdl)",
    )


def tfds_split_specs(builder, limit=None):
    """TFDS split strings and sizes for (train, validation, test).

    Validation is the last `VALIDATION_FRACTION` of TFDS' "train" split
    (deterministic; TFDS' files are already in random order), test is "test".
    `limit` caps each split at its first `limit` examples.
    """
    total = builder.info.splits["train"].num_examples
    num_validation = round(total * VALIDATION_FRACTION)
    num_train = total - num_validation
    num_test = builder.info.splits["test"].num_examples
    if limit is not None:
        num_train, num_validation, num_test = (
            min(limit, num_train),
            min(limit, num_validation),
            min(limit, num_test),
        )
    first_validation = total - round(total * VALIDATION_FRACTION)
    return {
        "train": (f"train[:{num_train}]", num_train),
        "validation": (
            f"train[{first_validation}:{first_validation + num_validation}]",
            num_validation,
        ),
        "test": (f"test[:{num_test}]", num_test),
    }
