"""TransformerLanguageModel: the language-model protocol, cached == uncached decoding."""

import keras
import numpy as np
import pytest
from keras import ops

from kerasdl.decoding import beam_search, greedy_search, sample, tile_for_beams
from kerasdl.models import (
    LANGUAGE_MODELS,
    TransformerLanguageModel,
    get_language_model,
)
from kerasdl.testing import compiled

VOCAB, LENGTH = 13, 12
TOKENS = np.random.default_rng(0).integers(1, VOCAB, size=(3, 10)).astype("int32")
PROMPT = TOKENS[:, :4]


def small(hidden_dim=8, **kwargs):
    keras.utils.set_random_seed(0)
    return TransformerLanguageModel(
        VOCAB,
        LENGTH,
        num_layers=2,
        num_heads=2,
        hidden_dim=hidden_dim,
        intermediate_dim=2 * hidden_dim,
        **kwargs,
    )


def test_prompt_then_one_token_at_a_time_equals_the_whole_sequence():
    model = small()
    expected = ops.convert_to_numpy(model(TOKENS))
    assert expected.shape == (3, 10, VOCAB) and expected.dtype == np.float32
    cache = model.initial_cache(3, LENGTH)
    logits, cache = model.call_with_cache(TOKENS[:, :4], cache, 0)  # the prompt
    pieces = [ops.convert_to_numpy(logits)]
    for index in range(4, 10):
        logits, cache = model.call_with_cache(
            TOKENS[:, index : index + 1], cache, index
        )
        pieces.append(ops.convert_to_numpy(logits))
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), expected, atol=1e-5)


def test_call_with_cache_compiles_with_a_tensor_index():
    model = small()
    expected = ops.convert_to_numpy(model(TOKENS))

    @compiled
    def step(tokens, cache, index):
        return model.call_with_cache(tokens, cache, index)

    cache = model.initial_cache(3, 10)
    for index in range(10):
        logits, cache = step(TOKENS[:, index : index + 1], cache, np.int32(index))
        np.testing.assert_allclose(
            ops.convert_to_numpy(logits)[:, 0], expected[:, index], atol=1e-5
        )


def uncached_fn(model):
    def next_token_fn(tokens, cache, step):
        return ops.take(model(tokens), step - 1, axis=1), cache

    return next_token_fn


def cached_fn(model):
    """`(next_token_fn, cache)`: the prompt but its last token goes in first."""
    cache = model.initial_cache(PROMPT.shape[0], LENGTH)
    _, cache = model.call_with_cache(PROMPT[:, :-1], cache, 0)

    def next_token_fn(tokens, cache, step):
        newest = ops.expand_dims(ops.take(tokens, step - 1, axis=1), 1)
        logits, cache = model.call_with_cache(newest, cache, step - 1)
        return logits[:, 0], cache

    return next_token_fn, cache


@pytest.mark.parametrize("search", ["greedy", "beam", "sample"])
def test_cached_decoding_returns_the_uncached_tokens(search):
    model = small(hidden_dim=16)
    # Embeddings larger than the initial N(0, 0.02), so the chosen tokens vary.
    embeddings = model.token_embedding.embeddings
    rng = np.random.default_rng(1)
    embeddings.assign(rng.normal(0, 1, embeddings.shape).astype("float32"))
    cached, cache = cached_fn(model)
    if search == "greedy":
        expected, _ = greedy_search(uncached_fn(model), PROMPT, LENGTH, end_token_id=2)
        received, _ = greedy_search(cached, PROMPT, LENGTH, end_token_id=2, cache=cache)
    elif search == "beam":
        kwargs = {"beam_size": 3}
        expected, _ = beam_search(uncached_fn(model), PROMPT, LENGTH, **kwargs)
        received, _ = beam_search(
            cached, PROMPT, LENGTH, cache=tile_for_beams(cache, 3), **kwargs
        )
    else:
        kwargs = {"temperature": 1.5, "top_k": 6, "seed": 7}
        expected = sample(uncached_fn(model), PROMPT, LENGTH, **kwargs)[0]
        received = sample(cached, PROMPT, LENGTH, cache=cache, **kwargs)[0]
    expected = ops.convert_to_numpy(expected)
    np.testing.assert_array_equal(ops.convert_to_numpy(received), expected)
    assert len(np.unique(expected[:, 4:])) > 2  # the model's choices vary


def test_keras_round_trip_and_a_training_step(tmp_path):
    model = small(dropout=0.1)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(TOKENS[:, :-1], TOKENS[:, 1:])
    path = str(tmp_path / "lm.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded, TransformerLanguageModel)
    assert reloaded.get_config()["sequence_length"] == LENGTH
    np.testing.assert_allclose(reloaded(TOKENS), model(TOKENS), atol=1e-6)


def test_registered_as_transformer_lm():
    assert "transformer_lm" in LANGUAGE_MODELS
    model = get_language_model(
        "transformer_lm", VOCAB, sequence_length=LENGTH, hidden_dim=8, num_heads=2
    )
    assert isinstance(model, TransformerLanguageModel)
    assert model(TOKENS).shape == (3, 10, VOCAB)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="divisible.*hidden_dim=10, num_heads=4"):
        TransformerLanguageModel(VOCAB, LENGTH, hidden_dim=10, num_heads=4)
    with pytest.raises(ValueError, match="Received: dropout=1.0"):
        TransformerLanguageModel(VOCAB, LENGTH, dropout=1.0)
    model = small()
    with pytest.raises(ValueError, match=r"\[1, 12\].*Received: max_length=13"):
        model.initial_cache(2, LENGTH + 1)
    with pytest.raises(ValueError, match="one entry per decoder block"):
        model.call_with_cache(PROMPT, model.initial_cache(3, LENGTH)[:1], 0)


def test_embeddings_start_small_with_positions_below_tokens():
    model = TransformerLanguageModel(VOCAB, 256, hidden_dim=64, num_heads=2)
    tokens = ops.convert_to_numpy(model.token_embedding.embeddings)
    positions = ops.convert_to_numpy(model.position_embedding.weights[0])
    assert abs(tokens.std() - 0.02) < 0.003 and abs(positions.std() - 0.01) < 0.001
