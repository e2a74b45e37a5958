import keras
import numpy as np
import pytest

from kerasdl.layers import PositionEmbedding, SinePositionEncoding
from kerasdl.testing import run_layer_test


def numpy_sine_encoding(length, width, start=0, max_wavelength=10000.0):
    # PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))
    encoding = np.zeros((length, width))
    for pos in range(start, start + length):
        for j in range(width):
            i2 = j - j % 2
            angle = pos / max_wavelength ** (i2 / width)
            encoding[pos - start, j] = np.sin(angle) if j % 2 == 0 else np.cos(angle)
    return encoding


def test_sine_layer_contract():
    run_layer_test(
        SinePositionEncoding,
        {"max_wavelength": 10000},
        input_shape=(2, 7, 6),
        expected_output_shape=(2, 7, 6),
        expected_num_trainable_weights=0,
        run_training_step=False,
    )


@pytest.mark.parametrize("width", [6, 7])
def test_sine_matches_seed_formula(width):
    x = np.zeros((2, 9, width), "float32")
    np.testing.assert_allclose(
        SinePositionEncoding()(x)[1], numpy_sine_encoding(9, width), atol=1e-5
    )
    np.testing.assert_allclose(
        SinePositionEncoding()(x[:, :3], start_index=5)[0],
        numpy_sine_encoding(3, width, start=5),
        atol=1e-5,
    )


def test_position_embedding_contract():
    run_layer_test(
        PositionEmbedding,
        {"sequence_length": 10},
        input_shape=(2, 7, 6),
        expected_output_shape=(2, 7, 6),
        expected_num_trainable_weights=1,
    )


def test_position_embedding_slices_rows():
    layer = PositionEmbedding(sequence_length=5)
    x = np.zeros((2, 3, 4), "float32")
    layer(x)
    table = keras.ops.convert_to_numpy(layer.position_embeddings)
    np.testing.assert_allclose(layer(x)[1], table[:3])
    np.testing.assert_allclose(layer(x[:, :2], start_index=3)[0], table[3:5])


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sequence_length=0"):
        PositionEmbedding(0)
    with pytest.raises(ValueError, match="sequence_length=4"):
        PositionEmbedding(4)(np.zeros((1, 5, 2), "float32"))
    with pytest.raises(ValueError, match="max_wavelength=1"):
        SinePositionEncoding(max_wavelength=1)
