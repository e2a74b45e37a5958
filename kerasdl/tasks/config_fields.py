"""The config fields every task shares, with their ranges and resume rules.

Each helper returns a `dataclasses.field` whose metadata `kerasdl.tasks.validation`
checks and `RunDirectory.check_resume` reads (`resume=True`: the value may change
when a run resumes, because it moves where or how long the run goes, not what the
weights mean).
"""

from __future__ import annotations

import dataclasses

SEED_MAX = 2**32 - 1  # NumPy's and Keras' seeds are 32-bit.


def _field(default, help=None, **rules):
    metadata = dict(rules)
    if help:
        metadata["help"] = help
    return dataclasses.field(default=default, metadata=metadata)


def epochs(default):
    return _field(
        default,
        "most epochs (more on resume: trains on)",
        min=1,
        max=100_000,
        resume=True,
    )


def batch_size(default=64):
    return _field(default, min=1, max=1 << 20)


def learning_rate(default):
    return _field(default, "peak learning rate", above=0, max=10)


def lr_schedule(default="cosine"):
    return _field(default, choices=("constant", "cosine"))


def patience(default):
    return _field(
        default,
        "epochs without a val_loss improvement before stopping",
        min=0,
        max=100_000,
        resume=True,
    )


def seed(default=0, help=None):
    return _field(default, help, min=0, max=SEED_MAX)


def dataset(default, names: str, help=None):
    """A dataset name, one of `names` ("module:NAME" of a tuple, imported when
    checked, e.g. `"kerasdl.data.image_dataset:IMAGE_DATASETS"`).

    Checked before the workdir is opened, so a typo never reaches the loaders (or
    the export directory, whose name the dataset is part of).
    """
    return _field(default, help, one_of=names)


def model(default, names: str, help=None):
    """A model name, one of `names` ("module:NAME" of a registry, e.g.
    `"kerasdl.models:MODELS"`), checked before any data is loaded."""
    return _field(default, help, one_of=names)


def vocabulary_size(default, help=None, maximum=10_000_000):
    """A `TextVectorization` `max_tokens`: at least 2, the padding and the
    out-of-vocabulary token (Keras refuses fewer)."""
    return _field(default, help, min=2, max=maximum)


def fraction(default, help=None):
    """A rate in [0, 1): dropout, label smoothing, momentum."""
    return _field(default, help, min=0, below=1)


def positive(default, help=None, maximum=None):
    return _field(default, help, min=1, max=maximum)


def steps_per_execution(default=1):
    """Batches per compiled call: changes speed only, so it may change on resume."""
    return _field(
        default,
        "batches per compiled training call",
        min=1,
        max=100_000,
        resume=True,
    )


def data_dir():
    return _field(None, "tensorflow-datasets directory", path="input", resume=True)


def download():
    return _field(False, "download a missing tensorflow-datasets set", resume=True)


def limit():
    return _field(None, "cap on examples per split (quick runs)", min=1)


def output():
    return _field(
        "saved_models", "where exported versions go", path="output", resume=True
    )


def verbose():
    return _field(
        "auto",
        "fit's progress: 1 bar, 2 lines",
        choices=("auto", "0", "1", "2"),
        resume=True,
    )
