"""Translators: Seq2SeqAttention and TransformerTranslator, teacher forcing vs decoding."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasdl.models.seq2seq import Seq2SeqAttention
from kerasdl.models.transformer_translator import TransformerTranslator

SOURCE = np.array([[5, 6, 7, 0], [8, 9, 0, 0]], "int32")
TARGET_IN = np.array([[2, 5, 6, 0, 0], [2, 7, 0, 0, 0]], "int32")
START, END, MAX_LENGTH = 2, 3, 8


def _models():
    keras.utils.set_random_seed(0)
    return [
        Seq2SeqAttention(20, 30, embedding_dim=8, units=8, dropout=0.0),
        TransformerTranslator(
            20,
            30,
            hidden_dim=8,
            num_layers=1,
            num_heads=2,
            intermediate_dim=16,
            dropout=0.0,
        ),
    ]


@pytest.fixture(params=[0, 1], ids=["seq2seq", "transformer"])
def model(request):
    return _models()[request.param]


def test_teacher_forcing_logits_and_attention_shapes(model):
    logits = model({"source": SOURCE, "target_in": TARGET_IN})
    assert tuple(logits.shape) == (2, 5, 30) and logits.dtype == "float32"
    weights = np.asarray(model.attention_weights(SOURCE, TARGET_IN))
    assert weights.shape == (2, 5, 4)
    real = TARGET_IN != 0  # Padded target positions ask nothing (all-zero rows).
    np.testing.assert_allclose(weights.sum(-1)[real], 1.0, rtol=1e-5)
    assert np.all(weights[1, :, 2:] == 0)  # Source padding gets no attention.


def test_greedy_decoding_matches_teacher_forcing_argmax(model):
    """Step-by-step generation and the one-pass training graph compute the same model."""
    tokens = np.asarray(model.generate(SOURCE, START, END, MAX_LENGTH))
    assert tokens.shape == (2, MAX_LENGTH) and np.all(tokens[:, 0] == START)
    assert not np.any(tokens[:, 1:] == 0) or np.any(tokens == END)  # pad only after end
    logits = np.array(model({"source": SOURCE, "target_in": tokens[:, :-1]}))
    logits[..., 0] = -np.inf  # Padding is never generated.
    for row, row_logits in zip(tokens, logits):
        generated = row[1:]
        length = (
            (list(generated).index(END) + 1) if END in generated else len(generated)
        )
        np.testing.assert_array_equal(
            row_logits.argmax(-1)[:length], generated[:length]
        )


def test_beam_search_in_a_graph_equals_eager(model):
    eager = np.asarray(model.generate(SOURCE, START, END, MAX_LENGTH, beam_size=3))
    graph = tf.function(
        lambda source: model.generate(source, START, END, MAX_LENGTH, beam_size=3)
    )
    np.testing.assert_array_equal(graph(tf.constant(SOURCE)).numpy(), eager)


def test_config_round_trip(model):
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="units=0"):
        Seq2SeqAttention(10, 10, units=0)
    with pytest.raises(ValueError, match="hidden_dim=10, num_heads=4"):
        TransformerTranslator(10, 10, hidden_dim=10, num_heads=4)
    with pytest.raises(ValueError, match="dropout=1.5"):
        TransformerTranslator(10, 10, dropout=1.5)
