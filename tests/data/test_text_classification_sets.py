"""Text classification sets: embedded banking77 / sms-spam splits, mocked TFDS imdb."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from kerasdl.data.errors import DatasetFormatError, DatasetNotFoundError
from kerasdl.data.text_classification import (
    EMBEDDED_DIR,
    load_text_dataset,
    read_banking77,
)


def _all(dataset):
    texts, labels = [], []
    for x, y in dataset:
        texts += [t.decode("utf-8") for t in x.numpy()]
        labels += list(y.numpy())
    return texts, np.asarray(labels)


def test_banking77_labels_follow_categories_json():
    texts, labels, class_names = read_banking77()
    with open(os.path.join(EMBEDDED_DIR, "banking77", "categories.json")) as file:
        assert class_names == json.load(file)
    assert len(class_names) == 77 and len(texts) == len(labels) == 10_003
    assert texts[0] == "I am still waiting on my card?"
    assert class_names[labels[0]] == "card_arrival"


def test_banking77_split_is_fixed_disjoint_and_stratified():
    first = load_text_dataset("banking77", batch_size=256, seed=0)
    second = load_text_dataset("banking77", batch_size=256, seed=1)
    assert first.num_classes == 77 and sum(first.num_examples.values()) == 10_003
    test_a, labels_a = _all(first.test)
    test_b, _ = _all(second.test)
    assert test_a == test_b  # The split does not depend on the run's seed.
    train, labels_train = _all(first.train)
    _all(first.validation)
    assert len(train) == first.num_examples["train"]
    # Every intent is in every split, in about the same proportion.
    assert set(labels_a) == set(labels_train) == set(range(77))
    share_train = np.bincount(labels_train, minlength=77) / len(labels_train)
    share_test = np.bincount(labels_a, minlength=77) / len(labels_a)
    assert np.max(np.abs(share_train - share_test)) < 0.01
    # Disjoint by example: at most the handful of duplicate sentences in the file.
    assert len(set(test_a) & set(train)) <= 10


def test_sms_spam_is_binary_and_stratified():
    data = load_text_dataset("sms-spam", batch_size=512)
    assert data.name == "sms_spam" and data.class_names == ["ham", "spam"]
    _, labels_train = _all(data.train)
    _, labels_test = _all(data.test)
    assert abs(labels_train.mean() - labels_test.mean()) < 0.01
    texts, labels = next(iter(data.train))
    assert texts.dtype == tf.string and labels.dtype == tf.int32


def test_limit_caps_every_split():
    data = load_text_dataset("banking77", limit=5, batch_size=2)
    assert data.num_examples == {"train": 5, "validation": 5, "test": 5}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "reuters"}, "Unknown text dataset"),
        ({"name": "banking77", "batch_size": 0}, "batch_size=0"),
        ({"name": "banking77", "limit": -1}, "limit=-1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_text_dataset(**kwargs)


def _random_reviews(builder, split, **kwargs):
    count = builder.info.splits[split].num_examples
    rng = np.random.default_rng(0)
    return tf.data.Dataset.from_tensor_slices(
        {
            "text": [
                f"review {i} was {'good' if i % 2 else 'bad'}" for i in range(count)
            ],
            "label": rng.integers(0, 2, count).astype(np.int64),
        }
    )


def test_imdb_reviews_from_mocked_tfds(tmp_path, fake_tfds_prepare):
    fake_tfds_prepare("imdb_reviews", str(tmp_path), {"train": 40, "test": 10})
    with tfds.testing.mock_data(
        policy=tfds.testing.MockPolicy.USE_FILES,
        data_dir=str(tmp_path),
        as_dataset_fn=_random_reviews,
    ):
        data = load_text_dataset("imdb_reviews", data_dir=str(tmp_path), batch_size=8)
        assert data.num_examples == {"train": 36, "validation": 4, "test": 10}
        assert data.class_names == ["neg", "pos"]
        texts, labels = next(iter(data.train))
        assert texts.dtype == tf.string and labels.dtype == tf.int32
        assert sum(len(y) for _, y in data.test) == 10


def test_missing_tfds_set_raises_dataset_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="imdb_reviews") as error:
        load_text_dataset("imdb_reviews", data_dir=str(tmp_path))
    message = str(error.value)
    assert str(tmp_path) in message and "tfds build imdb_reviews" in message
    assert "--dataset banking77" in message


def test_a_missing_tfds_record_file_is_one_clear_error(tmp_path, fake_tfds_prepare):
    builder = fake_tfds_prepare(
        "imdb_reviews", str(tmp_path), {"train": 40, "test": 10}
    )
    os.remove(builder.info.splits["test"].filepaths[0])
    with pytest.raises(
        DatasetFormatError, match="lacks its record file .*imdb_reviews-test"
    ):
        load_text_dataset("imdb_reviews", data_dir=str(tmp_path))


def test_unreadable_tfds_metadata_is_one_clear_error(tmp_path, fake_tfds_prepare):
    builder = fake_tfds_prepare(
        "imdb_reviews", str(tmp_path), {"train": 40, "test": 10}
    )
    with open(os.path.join(builder.data_dir, "dataset_info.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(
        DatasetFormatError, match="cannot read the prepared 'imdb_reviews'"
    ):
        load_text_dataset("imdb_reviews", data_dir=str(tmp_path))
