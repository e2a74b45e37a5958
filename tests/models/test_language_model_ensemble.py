"""LanguageModelEnsemble: averaged probabilities, the language-model protocol, saving."""

import keras
import numpy as np
import pytest
from keras import ops

from kerasdl.decoding import greedy_search, sample
from kerasdl.models import (
    LanguageModelEnsemble,
    RNNLanguageModel,
    TransformerLanguageModel,
)
from kerasdl.testing import compiled

VOCAB, CONTEXT = 11, 12
TOKENS = np.random.default_rng(0).integers(1, VOCAB, size=(3, 9)).astype("int32")


def members():
    keras.utils.set_random_seed(0)
    lstm = RNNLanguageModel(VOCAB, cell="lstm", units=8, embedding_dim=4, name="a")
    gru = RNNLanguageModel(VOCAB, cell="gru", units=6, embedding_dim=4, name="b")
    transformer = TransformerLanguageModel(
        VOCAB,
        CONTEXT,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        name="c",
    )
    for model in (lstm, gru, transformer):
        model(TOKENS)
    return [lstm, gru, transformer]


def softmax(x):
    x = np.asarray(x, "float64")
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_logits_are_the_log_of_the_averaged_probabilities():
    models = members()
    ensemble = LanguageModelEnsemble(models)
    logits = ops.convert_to_numpy(ensemble(TOKENS))
    assert logits.shape == (3, 9, VOCAB) and logits.dtype == np.float32
    expected = np.mean(
        [softmax(ops.convert_to_numpy(m(TOKENS))) for m in models], axis=0
    )
    np.testing.assert_allclose(np.exp(logits), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.exp(logits).sum(-1), 1.0, rtol=1e-5)


def test_context_is_the_shortest_of_the_members():
    lstm, gru, transformer = members()
    assert LanguageModelEnsemble([lstm, gru]).sequence_length is None
    assert LanguageModelEnsemble([lstm, transformer]).sequence_length == CONTEXT


def test_prompt_then_one_token_at_a_time_equals_the_whole_sequence():
    ensemble = LanguageModelEnsemble(members())
    expected = ops.convert_to_numpy(ensemble(TOKENS))
    cache = ensemble.initial_cache(3, CONTEXT)
    logits, cache = ensemble.call_with_cache(TOKENS[:, :4], cache, 0)
    pieces = [ops.convert_to_numpy(logits)]
    for index in range(4, 9):
        logits, cache = ensemble.call_with_cache(
            TOKENS[:, index : index + 1], cache, index
        )
        pieces.append(ops.convert_to_numpy(logits))
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), expected, atol=1e-5)


def test_cached_step_compiles_with_a_tensor_index():
    ensemble = LanguageModelEnsemble(members())
    expected = ops.convert_to_numpy(ensemble(TOKENS))

    @compiled
    def step(tokens, cache, index):
        return ensemble.call_with_cache(tokens, cache, index)

    cache = ensemble.initial_cache(3, 9)
    for index in range(9):
        logits, cache = step(TOKENS[:, index : index + 1], cache, np.int32(index))
        np.testing.assert_allclose(
            ops.convert_to_numpy(logits)[:, 0], expected[:, index], atol=1e-5
        )


def test_cached_sampling_with_top_k_1_equals_uncached_greedy_decoding():
    ensemble = LanguageModelEnsemble(members())
    prompt = TOKENS[:, :3]

    def uncached(tokens, cache, step):
        return ops.take(ensemble(tokens), step - 1, axis=1), cache

    def cached(tokens, cache, step):
        newest = ops.expand_dims(ops.take(tokens, step - 1, axis=1), 1)
        logits, cache = ensemble.call_with_cache(newest, cache, step - 1)
        return logits[:, 0], cache

    cache = ensemble.initial_cache(3, 10)
    _, cache = ensemble.call_with_cache(prompt[:, :-1], cache, 0)
    sampled, _ = sample(cached, prompt, 10, cache=cache, top_k=1, seed=0)
    greedy, _ = greedy_search(uncached, prompt, 10)
    sampled, greedy = ops.convert_to_numpy(sampled), ops.convert_to_numpy(greedy)
    np.testing.assert_array_equal(sampled, greedy)
    np.testing.assert_array_equal(sampled[:, :3], prompt)


def test_keras_file_round_trip(tmp_path):
    ensemble = LanguageModelEnsemble(members()[:2], name="char_ensemble")
    expected = ops.convert_to_numpy(ensemble(TOKENS))
    path = str(tmp_path / "ensemble.keras")
    ensemble.save(path)
    loaded = keras.saving.load_model(path)  # No custom_objects: registered.
    assert isinstance(loaded, LanguageModelEnsemble)
    assert [m.name for m in loaded.members] == ["a", "b"]
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded(TOKENS)), expected, atol=1e-6
    )


def test_members_keep_their_weights():
    models = members()
    ensemble = LanguageModelEnsemble(models)
    assert ensemble.count_params() == sum(m.count_params() for m in models)
    assert ensemble.members[0] is models[0]


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda m: [m[0]], ValueError, "at least two members"),
        (lambda m: [m[0], m[0]], ValueError, "only once"),
        (lambda m: [m[0], keras.Sequential([keras.layers.Dense(2)])], TypeError,
         "language-model protocol"),
        (lambda m: [m[0], RNNLanguageModel(VOCAB + 1, units=4)], ValueError,
         "share one vocabulary"),
    ],
)  # fmt: skip
def test_bad_members_are_refused_with_the_reason(make, error, message):
    with pytest.raises(error, match=message):
        LanguageModelEnsemble(make(members()))


def test_a_cache_of_another_size_or_no_index_is_refused():
    ensemble = LanguageModelEnsemble(members())
    cache = ensemble.initial_cache(3, CONTEXT)
    with pytest.raises(ValueError, match="one entry per member"):
        ensemble.call_with_cache(TOKENS[:, :2], cache[:2], 0)
    with pytest.raises(ValueError, match="`index`"):
        ensemble.call_with_cache(TOKENS[:, :2], cache)
