"""`load_text_dataset`: text classification sets as `(raw string, label)` pipelines.

| name | task | split (train / validation / test) |
| --- | --- | --- |
| `"banking77"` | 77 banking intents (embedded official train split, 10,003) | stratified 80/10/10 |
| `"sms_spam"` | spam (1) vs ham (0) (embedded UCI collection, 5,574) | stratified 70/15/15 |
| `"imdb_reviews"` | movie review sentiment (TFDS, from disk only) | train[:90%] / train[90%:] / test |

Banking77's official test split is held out (not shipped), so its test split here is
a fixed stratified slice of the official train file: figures on it are comparable
between kerasdl runs, not with the published test-set numbers. The embedded splits use
a fixed seed (`SPLIT_SEED`); the `seed` argument only drives shuffling.
"""

import csv
import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from kerasdl.data.errors import DatasetFormatError
from kerasdl.data.splits import stratified_split
from kerasdl.data.tfds_prepared import prepared_builder, tfds_split_specs

EMBEDDED_DIR = os.path.join(os.path.dirname(__file__), "embedded")
EMBEDDED_TEXT_DATASETS = ("banking77", "sms_spam")
TFDS_TEXT_DATASETS = ("imdb_reviews",)
TEXT_DATASETS = EMBEDDED_TEXT_DATASETS + TFDS_TEXT_DATASETS
SPLIT_SEED = 0  # The embedded splits never change with the run's seed.
SPLIT_FRACTIONS = {"banking77": (0.8, 0.1, 0.1), "sms_spam": (0.7, 0.15, 0.15)}


@dataclasses.dataclass
class TextDataset:
    """A text classification set split into train/validation/test pipelines.

    Each split yields batches of `(texts, labels)`: `texts` tf.string `(batch,)`, the
    raw sentences (models tokenize them themselves), `labels` int32 class ids.
    `train` is shuffled (seeded, reshuffled every epoch).

    Attributes:
        name: data set name, e.g. `"banking77"`.
        train: training `tf.data.Dataset`.
        validation: validation `tf.data.Dataset`.
        test: test `tf.data.Dataset`.
        train_texts: unbatched `tf.data.Dataset` of the training strings, for
            `TextVectorization.adapt`.
        num_classes: number of classes.
        class_names: one name per class id.
        num_examples: examples per split, `{"train": ..., "validation": ..., "test": ...}`.
    """

    name: str
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    train_texts: tf.data.Dataset
    num_classes: int
    class_names: list
    num_examples: dict


def read_banking77(directory=None):
    """Returns `(texts, labels, class_names)`; labels follow `categories.json`'s order."""
    directory = directory or os.path.join(EMBEDDED_DIR, "banking77")
    with open(os.path.join(directory, "categories.json"), encoding="utf-8") as file:
        class_names = json.load(file)
    index = {name: i for i, name in enumerate(class_names)}
    texts, labels = [], []
    with open(
        os.path.join(directory, "train.csv"), encoding="utf-8", newline=""
    ) as file:
        for line_number, row in enumerate(csv.DictReader(file), start=2):
            category = row.get("category")
            if category not in index or row.get("text") is None:
                raise DatasetFormatError(
                    f"banking77/train.csv line {line_number}: expected columns "
                    f"text,category with a category from categories.json. "
                    f"Received: {row!r}"
                )
            texts.append(row["text"])
            labels.append(index[category])
    return texts, np.asarray(labels, np.int32), class_names


def read_sms_spam(directory=None):
    """Returns `(texts, labels, ["ham", "spam"])` from the tab-separated collection."""
    directory = directory or os.path.join(EMBEDDED_DIR, "sms-spam")
    class_names = ["ham", "spam"]
    texts, labels = [], []
    path = os.path.join(directory, "SMSSpamCollection")
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            label, tab, text = line.rstrip("\n").partition("\t")
            if not tab or label not in class_names:
                raise DatasetFormatError(
                    f"{path} line {line_number}: expected 'ham<TAB>text' or "
                    f"'spam<TAB>text'. Received: {line[:60]!r}"
                )
            texts.append(text)
            labels.append(class_names.index(label))
    return texts, np.asarray(labels, np.int32), class_names


def _pipeline(dataset, batch_size, training, num_examples, seed):
    dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(
            min(max(num_examples, 1), 10_000), seed=seed, reshuffle_each_iteration=True
        )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _embedded_splits(name, limit):
    texts, labels, class_names = (
        read_banking77() if name == "banking77" else read_sms_spam()
    )
    texts = np.asarray(texts, dtype=object)
    splits = {}
    parts = stratified_split(labels, SPLIT_FRACTIONS[name], seed=SPLIT_SEED)
    for split, indices in zip(("train", "validation", "test"), parts):
        indices = indices[:limit] if limit is not None else indices
        splits[split] = (
            tf.data.Dataset.from_tensor_slices(
                (tf.constant(list(texts[indices]), tf.string), labels[indices])
            ),
            len(indices),
        )
    return splits, class_names


def prepared_tfds_builder(name, data_dir=None, download=False):
    """The TFDS builder of `name`, prepared on disk with all its records
    (`tfds_prepared.prepared_builder`, which says what it raises)."""
    return prepared_builder(
        name,
        data_dir,
        download,
        loader="load_text_dataset",
        offline="--dataset banking77 or --dataset sms_spam (shipped with kerasdl)",
    )


def _tfds_splits(name, data_dir, limit, download):
    builder = prepared_tfds_builder(name, data_dir, download)
    splits = {}
    for split, (split_string, count) in tfds_split_specs(builder, limit).items():
        dataset = builder.as_dataset(
            split=split_string, as_supervised=True, shuffle_files=False
        )
        dataset = dataset.map(lambda text, label: (text, tf.cast(label, tf.int32)))
        splits[split] = (dataset, count)
    return splits, list(builder.info.features["label"].names)


def load_text_dataset(
    name, *, batch_size=64, data_dir=None, seed=0, limit=None, download=False
):
    """Loads a text classification set as batched `(raw string, label)` pipelines.

    See the module docstring for the sets and their splits.

    Args:
        name: one of `TEXT_DATASETS` (`"sms-spam"` is accepted for `"sms_spam"`).
        batch_size: batch size of every split. Defaults to `64`.
        data_dir: TFDS data directory (TFDS sets only). Defaults to `None`
            (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
        seed: shuffle seed. Defaults to `0`.
        limit: keep at most this many examples per split. Defaults to `None` (all).
        download: download and prepare a missing TFDS set. Defaults to `False`.

    Returns:
        A `TextDataset`.

    Raises:
        ValueError: unknown `name`, or a non-positive `batch_size`/`limit`.
        DatasetNotFoundError: a TFDS set is not prepared and `download=False`.
        DatasetFormatError: an embedded file is malformed.

    Example:

    ```python
    data = kerasdl.data.load_text_dataset("banking77", batch_size=32)
    texts, labels = next(iter(data.train))  # tf.string (32,), int32 (32,)
    ```
    """
    name = name.replace("-", "_")
    if name not in TEXT_DATASETS:
        raise ValueError(
            f"Unknown text dataset {name!r}. Expected one of {', '.join(TEXT_DATASETS)}."
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}"
        )
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(
            f"`limit` must be a positive int or None. Received: limit={limit!r}"
        )
    if name in EMBEDDED_TEXT_DATASETS:
        splits, class_names = _embedded_splits(name, limit)
    else:
        splits, class_names = _tfds_splits(name, data_dir, limit, download)
    pipelines = {
        split: _pipeline(dataset, batch_size, split == "train", count, seed)
        for split, (dataset, count) in splits.items()
    }
    return TextDataset(
        name=name,
        train=pipelines["train"],
        validation=pipelines["validation"],
        test=pipelines["test"],
        train_texts=splits["train"][0].map(lambda text, label: text),
        num_classes=len(class_names),
        class_names=list(class_names),
        num_examples={split: count for split, (_, count) in splits.items()},
    )
