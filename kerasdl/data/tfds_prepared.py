"""A TFDS data set prepared on disk, or one clear error that says why not."""

import os

from kerasdl.data.errors import DatasetFormatError, DatasetNotFoundError

VALIDATION_FRACTION = 0.1  # the last 10% of TFDS' "train" split is the validation set


def _not_found_message(name, builder, loader, offline):
    version_dir = builder.data_dir
    root = os.path.dirname(os.path.dirname(version_dir))
    return (
        f"Dataset {name!r} is not prepared in the TFDS data directory {root!r} "
        f"(looked for {version_dir!r}), and kerasdl never downloads implicitly.\n"
        "To get it: on a machine with internet access run\n"
        f"    tfds build {name} --data_dir <dir>\n"
        f"(or `{loader}(..., download=True)`), copy <dir> here and pass "
        "--data-dir <dir> (or set TFDS_DATA_DIR).\n"
        f"Offline alternative: {offline}."
    )


def prepared_builder(name, data_dir=None, download=False, *, loader, offline):
    """Returns the TFDS builder of `name`, prepared on disk with all its records.

    Args:
        name: a TFDS data set name, such as `"mnist"` or `"imdb_reviews"`.
        data_dir: TFDS data directory; `None` uses TFDS' default
            (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`). Defaults to `None`.
        download: download and prepare the data set when it is missing.
            Defaults to `False`.
        loader: the kerasdl function that loads it, named in the not-found
            message (`"load_image_dataset"`).
        offline: the embedded data sets to use instead, for that message.

    Raises:
        DatasetNotFoundError: not prepared in `data_dir` and `download=False`.
        DatasetFormatError: prepared, but its metadata cannot be read or one of
            its record files is missing.

    Example:

    ```python
    builder = prepared_builder(
        "mnist", "/data/tfds", loader="load_image_dataset", offline="--dataset digits"
    )
    ```
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
        prepared = builder.is_prepared()
    except Exception as error:  # noqa: BLE001 -- TFDS raises many kinds.
        root = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else ""
        raise DatasetFormatError(
            f"cannot read the prepared {name!r} in the TFDS data directory {root!r} "
            f"({reason or type(error).__name__}); rebuild it with `tfds build "
            f"{name} --data_dir <dir>` or pass another --data-dir"
        ) from None
    if not prepared:
        if not download:
            raise DatasetNotFoundError(
                _not_found_message(name, builder, loader, offline)
            )
        builder.download_and_prepare()
    missing = [
        os.fspath(path)
        for split in builder.info.splits.values()
        for path in split.filepaths
        if not os.path.exists(path)
    ]
    if missing:
        raise DatasetFormatError(
            f"the prepared {name!r} in {builder.data_dir!r} lacks its record file "
            f"{missing[0]}{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}"
            f"; rebuild it with `tfds build {name} --data_dir <dir>` or pass another "
            "--data-dir"
        )
    return builder


def tfds_split_specs(builder, limit=None):
    """TFDS split strings and sizes for (train, validation, test).

    Validation is the last `VALIDATION_FRACTION` of TFDS' "train" split
    (deterministic; TFDS' files are already in random order), test is "test".
    `limit` caps each split at its first `limit` examples.
    """
    total = builder.info.splits["train"].num_examples
    num_validation = round(total * VALIDATION_FRACTION)
    num_train = first_validation = total - num_validation
    num_test = builder.info.splits["test"].num_examples
    if limit is not None:
        num_train, num_validation, num_test = (
            min(limit, num_train),
            min(limit, num_validation),
            min(limit, num_test),
        )
    return {
        "train": (f"train[:{num_train}]", num_train),
        "validation": (
            f"train[{first_validation}:{first_validation + num_validation}]",
            num_validation,
        ),
        "test": (f"test[:{num_test}]", num_test),
    }
