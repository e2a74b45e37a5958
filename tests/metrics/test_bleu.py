"""corpus_bleu: sacrebleu's corpus BLEU over one or more references per sentence."""

import dataclasses

import pytest
import sacrebleu

from kerasdl.metrics import BleuScore, corpus_bleu


def test_identical_hypothesis_and_reference_scores_100():
    bleu = corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]])

    assert bleu.score == pytest.approx(100.0)
    assert bleu.signature.startswith("nrefs:1|")


def test_single_reference_score_matches_sacrebleu():
    hypotheses = ["a cat was on the mat", "the dog barked at night"]
    references = [["the cat sat on the mat"], ["a dog barked in the night"]]

    bleu = corpus_bleu(hypotheses, references)

    expected = sacrebleu.corpus_bleu(hypotheses, [[refs[0] for refs in references]])
    assert 0.0 < bleu.score < 100.0
    assert bleu.score == pytest.approx(expected.score)


def test_every_reference_of_a_sentence_counts():
    hypothesis = ["a cat was on the mat"]
    first, second = "the cat sat on the mat", "a cat was on the mat"

    both = corpus_bleu(hypothesis, [[first, second]])
    first_only = corpus_bleu(hypothesis, [[first]])

    assert both.score == pytest.approx(100.0)  # Matches the second reference.
    assert first_only.score < 50.0
    assert both.signature.startswith("nrefs:2|")


def test_sentences_with_fewer_references_score_as_if_padded_with_repeats():
    hypotheses = ["the cat sat on the mat", "a dog barked loudly", "he is here"]
    references = [
        ["the cat sat on a mat", "a cat was on the mat"],
        ["the dog barked"],
        ["he is here now", "he has arrived", "here he is"],
    ]
    # A repeated reference adds no n-grams and no new length, so it changes nothing.
    padded = [refs + [refs[0]] * (3 - len(refs)) for refs in references]

    bleu = corpus_bleu(hypotheses, references)

    expected = sacrebleu.corpus_bleu(hypotheses, [list(s) for s in zip(*padded)])
    assert bleu.score == pytest.approx(expected.score)
    assert bleu.signature.startswith("nrefs:var|")


def test_returns_a_frozen_bleu_score_with_sacrebleus_signature():
    bleu = corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]])

    metric = sacrebleu.BLEU()
    metric.corpus_score(["the cat sat on the mat"], [["the cat sat on the mat"]])
    assert isinstance(bleu, BleuScore)
    assert isinstance(bleu.score, float)
    assert bleu.signature == str(metric.get_signature())
    with pytest.raises(dataclasses.FrozenInstanceError):
        bleu.score = 0.0


def test_accepts_tuples():
    bleu = corpus_bleu(("the cat sat on the mat",), (("the cat sat on the mat",),))

    assert bleu.score == pytest.approx(100.0)


def test_rejects_a_reference_list_count_other_than_the_hypothesis_count():
    with pytest.raises(ValueError, match="2 hypotheses and 1 reference lists"):
        corpus_bleu(["a cat", "a dog"], [["a cat"]])


def test_rejects_a_sentence_without_references():
    with pytest.raises(ValueError, match="at least one reference per sentence"):
        corpus_bleu(["a cat", "a dog"], [["a cat"], []])


def test_empty_corpus_is_refused():
    with pytest.raises(ValueError, match="at least one hypothesis"):
        corpus_bleu([], [])


def test_a_string_as_references_is_refused():
    with pytest.raises(
        TypeError, match="string 'the cat sat' as the references of sentence 0"
    ):
        corpus_bleu(["the cat sat"], ["the cat sat"])


def test_a_string_as_hypotheses_is_refused():
    with pytest.raises(TypeError, match="a string for hypotheses"):
        corpus_bleu("the cat sat", [["the cat sat"]])
