"""TransformerDecoder's key/value cache: cached == uncached, graphs, buffers, errors."""

import keras
import numpy as np
import pytest
from keras import ops

from kerasdl.layers import TransformerDecoder
from kerasdl.testing import compiled

RNG = np.random.default_rng(0)
TARGET = RNG.normal(size=(2, 7, 8)).astype("float32")
SOURCE = RNG.normal(size=(2, 5, 6)).astype("float32")
SOURCE_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)


def block(with_encoder, normalize_first=False):
    keras.utils.set_random_seed(1)
    decoder = TransformerDecoder(16, 2, normalize_first=normalize_first)
    if with_encoder:
        decoder(TARGET, SOURCE)
    else:
        decoder(TARGET)
    return decoder


def uncached(decoder, with_encoder):
    if with_encoder:
        return decoder(TARGET, SOURCE, encoder_padding_mask=SOURCE_MASK)
    return decoder(TARGET)


def encoder_kwargs(decoder, with_encoder):
    if not with_encoder:
        return {}
    return {
        "cross_attention_cache": decoder.cross_attention_cache(SOURCE),
        "encoder_padding_mask": SOURCE_MASK,
    }


@pytest.mark.parametrize("normalize_first", [False, True])
@pytest.mark.parametrize("with_encoder", [False, True])
def test_prefix_then_one_position_at_a_time_equals_uncached(
    with_encoder, normalize_first
):
    decoder = block(with_encoder, normalize_first)
    expected = ops.convert_to_numpy(uncached(decoder, with_encoder))
    kwargs = encoder_kwargs(decoder, with_encoder)
    cache = decoder.initial_self_attention_cache(2, 9)  # longer than needed
    outputs, cache = decoder(
        TARGET[:, :3], self_attention_cache=cache, cache_index=0, **kwargs
    )
    pieces = [outputs]
    for index in range(3, 7):
        outputs, cache = decoder(
            TARGET[:, index : index + 1],
            self_attention_cache=cache,
            cache_index=index,
            **kwargs,
        )
        pieces.append(outputs)
    received = np.concatenate([ops.convert_to_numpy(p) for p in pieces], axis=1)
    np.testing.assert_allclose(received, expected, atol=1e-5)


def test_cache_holds_the_keys_and_values_of_the_positions_written():
    decoder = block(False)
    cache = decoder.initial_self_attention_cache(2, 9)
    _, cache = decoder(TARGET[:, :4], self_attention_cache=cache, cache_index=0)
    keys = ops.convert_to_numpy(cache["key"])
    expected = ops.convert_to_numpy(decoder.self_attention.key_dense(TARGET[:, :4]))
    np.testing.assert_allclose(keys[:, :4], expected, atol=1e-6)
    np.testing.assert_array_equal(keys[:, 4:], 0.0)  # not written yet
    assert cache["value"].shape == (2, 9, 2, 4)


def test_positions_after_the_new_tokens_are_never_read():
    decoder = block(True)
    kwargs = encoder_kwargs(decoder, True)
    clean = decoder.initial_self_attention_cache(2, 9)
    noisy = {
        name: RNG.normal(size=tuple(t.shape)).astype("float32") * 100
        for name, t in clean.items()
    }
    expected, _ = decoder(
        TARGET[:, :4], self_attention_cache=clean, cache_index=0, **kwargs
    )
    received, _ = decoder(
        TARGET[:, :4], self_attention_cache=noisy, cache_index=0, **kwargs
    )
    np.testing.assert_allclose(received, expected, atol=1e-5)


def test_cross_attention_cache_equals_projecting_the_encoder_outputs():
    decoder = block(True)
    cache = decoder.initial_self_attention_cache(2, 7)
    from_cache, _ = decoder(
        TARGET[:, :2],
        self_attention_cache=cache,
        cache_index=0,
        **encoder_kwargs(decoder, True),
    )
    from_encoder, _ = decoder(
        TARGET[:, :2],
        SOURCE,
        encoder_padding_mask=SOURCE_MASK,
        self_attention_cache=cache,
        cache_index=0,
    )
    np.testing.assert_allclose(from_cache, from_encoder, atol=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_cached_steps_compile_with_a_tensor_index(jit_compile):
    decoder = block(True)
    expected = ops.convert_to_numpy(uncached(decoder, True))

    def step(x, cache, cross, index):
        return decoder(
            x,
            self_attention_cache=cache,
            cache_index=index,
            cross_attention_cache=cross,
            encoder_padding_mask=SOURCE_MASK,
        )

    step = compiled(step, jit_compile=jit_compile)
    cross = decoder.cross_attention_cache(SOURCE)
    cache = decoder.initial_self_attention_cache(2, 7)
    for index in range(7):
        outputs, cache = step(
            TARGET[:, index : index + 1], cache, cross, np.int32(index)
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(outputs)[:, 0], expected[:, index], atol=1e-5
        )


def test_cache_is_in_the_compute_dtype_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        decoder = TransformerDecoder(16, 2)
        decoder(TARGET)
        cache = decoder.initial_self_attention_cache(2, 7)
        outputs, cache = decoder(
            TARGET[:, :3], self_attention_cache=cache, cache_index=0
        )
    finally:
        keras.config.set_dtype_policy("float32")
    assert cache["key"].dtype == "float16" and outputs.dtype == "float16"
    np.testing.assert_allclose(
        ops.convert_to_numpy(outputs),
        ops.convert_to_numpy(decoder(TARGET))[:, :3],
        atol=1e-2,
    )


def test_rejects_bad_cache_calls():
    decoder_only = block(False)
    cache = decoder_only.initial_self_attention_cache(2, 7)
    with pytest.raises(ValueError, match="`cache_index`.*Received: cache_index=None"):
        decoder_only(TARGET, self_attention_cache=cache)
    with pytest.raises(ValueError, match="return_attention_scores=True"):
        decoder_only(
            TARGET,
            self_attention_cache=cache,
            cache_index=0,
            return_attention_scores=True,
        )
    with pytest.raises(ValueError, match="built without `encoder_sequence`"):
        decoder_only(TARGET, SOURCE, self_attention_cache=cache, cache_index=0)
    with pytest.raises(ValueError, match="no cross-attention"):
        decoder_only.cross_attention_cache(SOURCE)
    with pytest.raises(ValueError, match="Received: max_length=0"):
        decoder_only.initial_self_attention_cache(2, 0)
    encoder_decoder = block(True)
    with pytest.raises(ValueError, match="built with `encoder_sequence`"):
        encoder_decoder(TARGET, self_attention_cache=cache, cache_index=0)
    with pytest.raises(ValueError, match="only read together with"):
        encoder_decoder(
            TARGET,
            SOURCE,
            cross_attention_cache=encoder_decoder.cross_attention_cache(SOURCE),
        )
    with pytest.raises(ValueError, match="must be built"):
        TransformerDecoder(16, 2).initial_self_attention_cache(2, 7)
