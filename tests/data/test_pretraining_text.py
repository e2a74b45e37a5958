"""The pretraining corpus: Tatoeba's English sentences in the book's layout and vocabulary."""

import numpy as np
import pytest

from kerasdl.data import DatasetFormatError, load_language_modeling_dataset
from kerasdl.data import pretraining_text as corpus


@pytest.fixture(scope="module")
def book():
    return load_language_modeling_dataset(sequence_length=32, batch_size=8)


@pytest.fixture(scope="module")
def text():
    return corpus.read_pretraining_text("tatoeba", seed=0)


def test_book_typography_curls_apostrophes_and_paired_quotes():
    assert corpus.book_typography('Tom\'s "big" day.') == "Tom’s “big” day."
    assert corpus.book_typography('"A" and "B"') == "“A” and “B”"
    assert corpus.book_typography("no quotes") == "no quotes"


def test_every_distinct_english_sentence_of_both_pair_files_appears_once():
    sentences = corpus.read_tatoeba_english()
    assert len(sentences) == len(set(sentences))
    fra = {line.split("\t")[0] for line in _lines("fra-eng/fra.txt")}
    deu = {line.split("\t")[0] for line in _lines("deu-eng/deu.txt")}
    assert set(sentences) == fra | deu
    assert len(deu - fra) > 10_000  # the second file adds sentences


def test_the_text_is_laid_out_as_the_book(text):
    lines = text.split("\n")
    assert max(len(line) for line in lines) <= corpus.LINE_WIDTH
    assert "'" not in text and '"' not in text
    paragraphs = text.split("\n\n")
    assert all(paragraph.strip() for paragraph in paragraphs)
    # The same sentences in every order: only the order depends on the seed.
    other = corpus.read_pretraining_text("tatoeba", seed=1)
    assert other != text
    assert sorted("".join(other.split())) == sorted("".join(text.split()))
    assert corpus.read_pretraining_text("tatoeba", seed=0) == text


def test_batches_use_the_books_vocabulary_with_targets_shifted_by_one(book, text):
    data = corpus.load_pretraining_dataset(
        book.vocabulary, sequence_length=32, batch_size=8
    )
    inputs, targets = next(iter(data.train))
    assert inputs.shape == targets.shape == (8, 32)
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    assert int(np.max(inputs)) < book.vocabulary.size
    decoded = "".join(book.vocabulary.decode(inputs[0]))
    assert decoded in text
    # Digits, $ and % are not in the book: a few unknown ids, no more.
    assert 0 < data.unknown_fraction < 0.002
    assert data.num_tokens == len(text)
    held_out = np.concatenate([x.numpy().ravel() for x, _ in data.validation])
    assert 0.04 * data.num_tokens < held_out.size < 0.05 * data.num_tokens


def test_windows_are_drawn_anew_each_epoch_and_seeded(book):
    def first_batches(seed):
        data = corpus.load_pretraining_dataset(
            book.vocabulary, sequence_length=32, batch_size=8, seed=seed
        )
        return [x.numpy() for x, _ in data.train.take(2)]

    a, b = first_batches(0), first_batches(0)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], first_batches(1)[0])


def test_refusals_name_the_problem(book, tmp_path):
    with pytest.raises(ValueError, match="name must be one of"):
        corpus.read_pretraining_text("wikipedia")
    with pytest.raises(ValueError, match="too few for one batch"):
        corpus.load_pretraining_dataset(
            book.vocabulary, sequence_length=4096, batch_size=4096
        )
    with pytest.raises(DatasetFormatError, match="Cannot read the Tatoeba pairs"):
        corpus.read_tatoeba_english(str(tmp_path))
    (tmp_path / "fra-eng").mkdir()
    (tmp_path / "fra-eng" / "fra.txt").write_text("no tabs here\n")
    with pytest.raises(DatasetFormatError, match="has no"):
        corpus.read_tatoeba_english(str(tmp_path))


def _lines(name):
    import os

    from kerasdl.data.timemachine import EMBEDDED_DIR

    with open(os.path.join(EMBEDDED_DIR, name), encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if "\t" in line]
