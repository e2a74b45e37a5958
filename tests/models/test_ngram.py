"""KneserNeyLanguageModel: normalized distributions, unseen tokens, the book's figures."""

import math

import numpy as np
import pytest

from kerasdl.data.timemachine import Vocabulary, read_timemachine, split_text
from kerasdl.models.ngram import KneserNeyLanguageModel


@pytest.fixture(scope="module")
def book():
    train, validation = split_text(read_timemachine())
    vocabulary = Vocabulary.build(list(train))
    return (
        vocabulary,
        vocabulary.encode(list(train)),
        vocabulary.encode(list(validation)),
    )


@pytest.mark.parametrize("discount", [None, 0.75])
def test_distributions_sum_to_one_for_any_context(book, discount):
    vocabulary, train, validation = book
    model = KneserNeyLanguageModel(order=5, discount=discount).fit(
        train[:30_000], vocabulary.size
    )
    rng = np.random.default_rng(0)
    contexts = [rng.integers(0, vocabulary.size, size=n) for n in (0, 1, 3, 4, 9)]
    contexts += [validation[100:104], train[500:510]]  # seen and unseen n-grams
    for context in contexts:
        probabilities = np.exp(model.log_probs(context))
        assert probabilities.shape == (vocabulary.size,)
        assert abs(probabilities.sum() - 1.0) < 1e-9
        assert probabilities.min() > 0.0


def test_token_log_probs_match_the_full_distribution(book):
    vocabulary, train, validation = book
    model = KneserNeyLanguageModel(order=4).fit(train[:30_000], vocabulary.size)
    ids = validation[:40]
    scores = model.token_log_probs(ids)
    expected = [model.log_probs(ids[max(0, i - 3) : i])[ids[i]] for i in range(1, 40)]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_unseen_token_has_probability_above_zero():
    model = KneserNeyLanguageModel(order=3).fit([2, 3, 4, 2, 3, 4, 2], 6)
    log_probs = model.log_probs([2, 3])
    assert np.exp(log_probs).argmax() == 4
    assert math.isfinite(log_probs[5]) and log_probs[5] < log_probs[4]
    assert math.isfinite(model.cross_entropy([2, 3, 5, 5, 1]))


def test_perplexity_and_bits_agree_with_cross_entropy(book):
    vocabulary, train, validation = book
    model = KneserNeyLanguageModel(order=3).fit(train, vocabulary.size)
    nats = model.cross_entropy(validation)
    assert model.perplexity(validation) == pytest.approx(math.exp(nats))
    assert model.bits_per_token(validation) == pytest.approx(nats / math.log(2))


def test_orders_on_the_book_validation_split(book):
    # The baseline every neural language model must beat (bits per character).
    vocabulary, train, validation = book
    bits = {
        order: KneserNeyLanguageModel(order)
        .fit(train, vocabulary.size)
        .bits_per_token(validation)
        for order in (2, 5, 7, 8)
    }
    assert bits[2] > bits[5] > bits[7]
    assert bits[7] < bits[8]  # longer contexts start to overfit
    assert bits[7] == pytest.approx(2.109, abs=0.002)


def test_modified_discounts_beat_one_fixed_discount(book):
    vocabulary, train, validation = book
    modified = KneserNeyLanguageModel(5).fit(train, vocabulary.size)
    fixed = KneserNeyLanguageModel(5, discount=0.1).fit(train, vocabulary.size)
    assert modified.bits_per_token(validation) < fixed.bits_per_token(validation)
    assert all(0 < d <= k for k, d in enumerate(modified.discounts[5][1:], 1))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="order must be an integer >= 1"):
        KneserNeyLanguageModel(order=0)
    with pytest.raises(ValueError, match="discount must be in"):
        KneserNeyLanguageModel(discount=1.5)
    with pytest.raises(ValueError, match="not fitted"):
        KneserNeyLanguageModel().perplexity([1, 2, 3])
    model = KneserNeyLanguageModel(order=2).fit([2, 3, 2, 3], 4)
    with pytest.raises(ValueError, match="ids must be in"):
        model.cross_entropy([2, 7])
    with pytest.raises(ValueError, match="vocabulary_size must exceed"):
        KneserNeyLanguageModel(order=2).fit([2, 3, 9], 5)
