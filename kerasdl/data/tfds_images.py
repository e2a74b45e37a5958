"""Image sets read through TensorFlow Datasets, only ever from disk unless asked to download."""

from kerasdl.data.tfds_prepared import prepared_builder

TFDS_IMAGE_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")


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
