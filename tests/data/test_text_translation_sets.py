"""Translation sets: fra-eng held out by English sentence, standardization, mocked TFDS."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from kerasdl.data.errors import DatasetNotFoundError
from kerasdl.data.text_translation import (
    TFDS_TRANSLATION_DATASETS,
    detokenize,
    load_translation_dataset,
    normalize_unicode,
    standardize_text,
)


@pytest.fixture(scope="module")
def fra_eng():
    return load_translation_dataset("fra_eng")


def _standardized(strings):
    return [t.decode("utf-8") for t in standardize_text(tf.constant(strings)).numpy()]


def test_no_test_sentence_is_seen_in_training(fra_eng):
    train = {
        s.decode("utf-8")
        for s, _ in fra_eng.train.batch(4096).as_numpy_iterator()
        for s in s
    }
    seen = set(_standardized(sorted(train)))
    test = _standardized(fra_eng.test_sources)
    assert len(test) == len(set(test)) == fra_eng.num_examples["test"] > 1000
    assert not seen & set(test)


def test_test_sentences_keep_all_their_translations(fra_eng):
    counts = [len(references) for references in fra_eng.test_references]
    assert min(counts) >= 1 and max(counts) > 1
    assert (fra_eng.source_language, fra_eng.target_language) == ("en", "fr")


def test_sentences_are_at_most_ten_words(fra_eng):
    for source, _ in fra_eng.train.take(2000).as_numpy_iterator():
        assert len(source.decode("utf-8").split()) <= 10
    assert all(len(s.split()) <= 10 for s in fra_eng.test_sources)


def test_normalization_folds_typography():
    assert normalize_unicode("Va\u202f!  ") == "Va !"
    assert _standardized(["I\u2019m COLD.", "Qui\u00a0?", "«Oui», dit-il."]) == [
        "i'm cold .",
        "qui ?",
        "« oui » , dit-il .",
    ]


def test_detokenize_stops_at_end_and_attaches_punctuation():
    vocabulary = tf.constant(["", "[UNK]", "[start]", "[end]", "j'ai", "froid", "."])
    tokens = tf.constant([[4, 5, 6, 3, 4], [4, 3, 5, 0, 0], [4, 0, 5, 0, 0]])
    assert [t.decode() for t in detokenize(tokens, vocabulary, 3).numpy()] == [
        "j'ai froid.",
        "j'ai",
        "j'ai froid",
    ]


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown translation dataset"):
        load_translation_dataset("klingon")
    with pytest.raises(ValueError, match="max_words=0"):
        load_translation_dataset("fra_eng", max_words=0)


@pytest.mark.parametrize("name", sorted(TFDS_TRANSLATION_DATASETS))
def test_tfds_translation_sets_from_mocked_data(tmp_path, name, fake_tfds_prepare):
    full_name, source_key, target_key = TFDS_TRANSLATION_DATASETS[name]
    fake_tfds_prepare(
        full_name, str(tmp_path), {"train": 12, "validation": 4, "test": 5}
    )

    def pairs(builder, split, **kwargs):
        count = builder.info.splits[split].num_examples
        sources = [f"sentence number {i}." for i in range(count)]
        sources[0] = "this one is far too long to keep because it has many words ."
        return tf.data.Dataset.from_tensor_slices(
            {source_key: sources, target_key: [f"phrase {i}." for i in range(count)]}
        )

    with tfds.testing.mock_data(
        policy=tfds.testing.MockPolicy.USE_FILES,
        data_dir=str(tmp_path),
        as_dataset_fn=pairs,
    ):
        data = load_translation_dataset(name, data_dir=str(tmp_path))
    # The first pair of every split has 14 source words and is dropped.
    assert data.num_examples == {"train": 11, "validation": 3, "test": 4}
    assert (data.source_language, data.target_language) == (source_key, target_key)
    assert data.test_references == [[f"phrase {i}."] for i in range(1, 5)]
    assert np.all([len(s.split()) <= 10 for s in data.test_sources])


def test_missing_tfds_translation_set_raises(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="wmt14_translate") as error:
        load_translation_dataset("wmt14_translate", data_dir=str(tmp_path))
    # How to get it, and the embedded set a translation recipe can use instead.
    message = str(error.value)
    assert "load_translation_dataset(..., download=True)" in message
    assert "--dataset fra_eng" in message and "banking77" not in message
