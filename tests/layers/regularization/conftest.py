import keras
import numpy as np
import pytest


@pytest.fixture
def assert_mask_reaches_next_layer():
    """Checks that `layer` passes a Keras padding mask on in training.

    Embedding(mask_zero) -> layer -> LSTM: in training the layer returns a new
    tensor, so the LSTM skips the padded steps only if the mask came through.
    The layer's rate should be tiny, so that nothing is dropped.
    """

    def check(layer):
        ids = np.array([[3, 4, 0, 0]])
        inputs = keras.Input((None,), dtype="int32")
        x = keras.layers.Embedding(8, 3, mask_zero=True)(inputs)
        outputs = keras.layers.LSTM(2, return_sequences=True)(layer(x))
        model = keras.Model(inputs, outputs)
        y = keras.ops.convert_to_numpy(model(ids, training=True))
        # A masked step repeats the output of the last unmasked one.
        np.testing.assert_allclose(y[0, 2], y[0, 1], rtol=1e-5)
        np.testing.assert_allclose(y[0, 3], y[0, 1], rtol=1e-5)

    return check
