import os

import pytest


@pytest.fixture
def fake_tfds_prepare():
    """Writes what TFDS reads of a prepared data set: its metadata (split sizes)
    and one empty record file per split (mocked reads never open them).

    Call it as `fake_tfds_prepare(name, data_dir, {"train": 50, "test": 12})`;
    it returns the builder.
    """
    import tensorflow_datasets as tfds

    def prepare(name, data_dir, sizes):
        builder = tfds.builder(name, data_dir=data_dir)
        builder.info.set_splits(
            tfds.core.SplitDict(
                [
                    tfds.core.SplitInfo(
                        name=split,
                        shard_lengths=[n],
                        num_bytes=0,
                        filename_template=None,
                    )
                    for split, n in sizes.items()
                ]
            )
        )
        os.makedirs(builder.data_dir, exist_ok=True)
        builder.info.write_to_directory(builder.data_dir)
        for split in builder.info.splits.values():
            for path in split.filepaths:
                open(path, "wb").close()
        return builder

    return prepare
