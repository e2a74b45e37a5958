"""Strings-in text classifiers: RNN (GRU/LSTM, deep, bidirectional) and Transformer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasdl.models.text_classifier import (
    rnn_text_classifier,
    transformer_text_classifier,
)

TEXTS = [
    "my card has not arrived",
    "how do i top up",
    "what is the exchange rate",
    "my card was stolen yesterday",
]


def _vectorizer(sequence_length=12):
    vectorizer = keras.layers.TextVectorization(
        max_tokens=50, output_sequence_length=sequence_length
    )
    vectorizer.adapt(TEXTS)
    return vectorizer


@pytest.mark.parametrize(
    "builder, kwargs",
    [
        (rnn_text_classifier, {"cell": "gru"}),
        (rnn_text_classifier, {"cell": "lstm", "num_layers": 2, "bidirectional": True}),
        (
            transformer_text_classifier,
            {"num_layers": 1, "hidden_dim": 16, "intermediate_dim": 32},
        ),
    ],
)
def test_raw_strings_in_probabilities_out_and_one_training_step(builder, kwargs):
    if builder is rnn_text_classifier:
        kwargs = dict(kwargs, embedding_dim=8, units=8)
    model = builder(_vectorizer(), 3, **kwargs)
    probabilities = model(tf.constant(TEXTS)).numpy()
    assert probabilities.shape == (4, 3) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(tf.constant(TEXTS), np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_length_does_not_change_the_rnn_prediction(bidirectional):
    """Padding is masked: the same text padded to 12 or 20 tokens scores the same."""
    short = rnn_text_classifier(
        _vectorizer(12), 3, units=8, bidirectional=bidirectional
    )
    long = rnn_text_classifier(_vectorizer(20), 3, units=8, bidirectional=bidirectional)
    short.set_weights(long.get_weights())
    np.testing.assert_allclose(
        short(tf.constant(TEXTS)), long(tf.constant(TEXTS)), atol=1e-5
    )


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="cell='rnn'"):
        rnn_text_classifier(_vectorizer(), 3, cell="rnn")
    with pytest.raises(ValueError, match="num_layers=0"):
        rnn_text_classifier(_vectorizer(), 3, num_layers=0)
    with pytest.raises(ValueError, match="adapt"):
        rnn_text_classifier(keras.layers.TextVectorization(), 3)
    with pytest.raises(ValueError, match="output_sequence_length=None"):
        vectorizer = keras.layers.TextVectorization(max_tokens=50)
        vectorizer.adapt(TEXTS)
        transformer_text_classifier(vectorizer, 3)
