"""The Time Machine: story text, contiguous split, vocabulary, shifted and sequential batches."""

import numpy as np
import pytest

from kerasdl.data import DatasetFormatError
from kerasdl.data.timemachine import (
    TIMEMACHINE_PATH,
    Vocabulary,
    load_language_modeling_dataset,
    read_timemachine,
    split_text,
    tokenize,
)


@pytest.fixture(scope="module")
def story():
    return read_timemachine()


def _batches(dataset, count):
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(count)]


def test_story_stops_before_the_licence(story):
    assert len(story) == 179_695
    assert story.startswith("The Time Machine")
    assert "Gutenberg" not in story
    assert story.rstrip().endswith("still lived on in the heart of man.")


def test_missing_file_and_missing_marker_raise(tmp_path):
    with pytest.raises(DatasetFormatError, match="does not exist"):
        read_timemachine(str(tmp_path / "absent.txt"))
    path = tmp_path / "no_marker.txt"
    path.write_text("The Time Traveller (for so it will be convenient...", "utf-8")
    with pytest.raises(DatasetFormatError, match="END OF THE PROJECT GUTENBERG"):
        read_timemachine(str(path))


def test_split_is_contiguous(story):
    train, validation = split_text(story, 0.1)
    assert train + validation == story
    assert len(validation) == round(0.1 * len(story))
    with pytest.raises(ValueError, match="validation_fraction"):
        split_text(story, 1.0)


def test_tokenize_levels():
    text = "The Time Traveller’s _Machine_—so. It’s 1895!"
    assert tokenize(text, "char") == list(text)
    assert tokenize(text, "word") == [
        "the", "time", "traveller’s", "machine", "—", "so", ".", "it’s", "1895", "!"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="level"):
        tokenize(text, "byte")


def test_vocabulary_order_unknown_and_config():
    vocabulary = Vocabulary.build(list("abracadabra"))
    assert vocabulary.tokens == ["<pad>", "<unk>", "a", "b", "r", "c", "d"]
    assert vocabulary.size == len(vocabulary) == 7
    ids = vocabulary.encode(list("cab?"))
    assert ids.dtype == np.int32 and ids.tolist() == [5, 2, 3, 1]
    assert vocabulary.decode(ids) == ["c", "a", "b", "<unk>"]
    restored = Vocabulary.from_config(vocabulary.get_config())
    assert restored.tokens == vocabulary.tokens
    assert Vocabulary.build(list("abracadabra"), min_frequency=2).tokens[2:] == [
        "a", "b", "r"
    ]  # fmt: skip
    assert Vocabulary.build(list("abracadabra"), max_size=4).tokens[2:] == ["a", "b"]
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary(["a", "b"])


def test_vocabulary_comes_from_the_training_split_only(tmp_path, story):
    # The real book, with a character that appears only in its last 10%.
    with open(TIMEMACHINE_PATH, encoding="utf-8") as file:
        text = file.read()
    end = text.index("*** END OF THE PROJECT")
    path = tmp_path / "timemachine.txt"
    path.write_text(text[: end - 100] + "§" + text[end - 100 :], "utf-8")
    data = load_language_modeling_dataset(path=str(path), sequence_length=8)
    assert "§" not in data.vocabulary.tokens
    assert len(data.train_ids) + len(data.validation_ids) == len(story) + 1
    _, validation_text = split_text(read_timemachine(str(path)))
    position = validation_text.index("§")
    assert data.validation_ids[position] == 1
    assert (data.train_ids != 1).all()


def test_random_batches_are_shifted_windows_of_the_stream():
    data = load_language_modeling_dataset(sequence_length=6, batch_size=4, seed=3)
    stream = data.train_ids
    for inputs, targets in _batches(data.train, 3):
        assert inputs.shape == targets.shape == (4, 6)
        assert inputs.dtype == targets.dtype == np.int32
        np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
        for row in inputs:
            start = _find(stream, row)
            np.testing.assert_array_equal(row, stream[start : start + 6])
    vocabulary = data.vocabulary
    first = "".join(vocabulary.decode(data.train_ids[:16]))
    assert first == "The Time Machine"


def _find(stream, row):
    candidates = np.flatnonzero(stream[: len(stream) - len(row)] == row[0])
    for start in candidates:
        if (stream[start : start + len(row)] == row).all():
            return start
    raise AssertionError(f"row {row} is not a window of the stream")


def test_random_sampling_is_seeded_and_differs_across_epochs():
    first = load_language_modeling_dataset(sequence_length=5, batch_size=3, seed=1)
    again = load_language_modeling_dataset(sequence_length=5, batch_size=3, seed=1)
    epoch_1, epoch_2 = _batches(first.train, 2), _batches(first.train, 2)
    assert not np.array_equal(epoch_1[0][0], epoch_2[0][0])
    np.testing.assert_array_equal(epoch_1[0][0], _batches(again.train, 2)[0][0])
    assert first.train.cardinality().numpy() == len(list(first.train))


def test_sequential_batches_continue_row_by_row():
    data = load_language_modeling_dataset(
        sequence_length=5, batch_size=3, sampling="sequential", seed=2
    )
    stream = data.train_ids
    row_length = (len(stream) - 5) // 3
    batches = _batches(data.train, 3)
    first_inputs = batches[0][0]
    offsets = [o for o in range(5) if (stream[o : o + 5] == first_inputs[0]).all()]
    assert len(offsets) == 1
    for i, (inputs, targets) in enumerate(batches):
        for row in range(3):
            start = offsets[0] + row * row_length + 5 * i
            np.testing.assert_array_equal(inputs[row], stream[start : start + 5])
            np.testing.assert_array_equal(targets[row], stream[start + 1 : start + 6])
    assert data.train.cardinality().numpy() == row_length // 5


def test_validation_is_deterministic_and_in_order():
    data = load_language_modeling_dataset(sequence_length=7, batch_size=4)
    first, second = _batches(data.validation, 2), _batches(data.validation, 2)
    np.testing.assert_array_equal(first[0][0], second[0][0])
    np.testing.assert_array_equal(first[0][0].reshape(-1), data.validation_ids[: 4 * 7])


def test_word_level_vocabulary():
    data = load_language_modeling_dataset(level="word", min_frequency=2)
    assert data.vocabulary.tokens[2:6] == [",", "the", ".", "i"]
    assert data.vocabulary.size < 4375
    assert (data.validation_ids == 1).mean() > 0.02


@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"name": "ptb"}, "name must be one of"),
        ({"level": "byte"}, "level must be one of"),
        ({"sampling": "shuffled"}, "sampling must be one of"),
        ({"sequence_length": 0}, "sequence_length must be a positive integer"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"sequence_length": 1000, "batch_size": 32}, "too few for one batch"),
        ({"validation_fraction": 0.0}, "validation_fraction"),
    ],
)
def test_bad_arguments_raise(arguments, match):
    with pytest.raises(ValueError, match=match):
        load_language_modeling_dataset(**arguments)
