import keras
import numpy as np
import pytest

from kerasdl.callbacks.terminate_on_non_finite_loss import (
    NonFiniteLossError,
    TerminateOnNonFiniteLoss,
)


def test_raises_at_the_first_nan_batch():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse")
    x = np.ones((8, 2), "float32")
    x[5] = np.nan
    with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 1, batch 3"):
        model.fit(
            x,
            np.ones(8),
            batch_size=2,
            shuffle=False,
            verbose=0,
            callbacks=[TerminateOnNonFiniteLoss()],
        )


def test_finite_training_is_untouched():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse")
    history = model.fit(
        np.ones((8, 2)),
        np.ones(8),
        epochs=2,
        verbose=0,
        callbacks=[TerminateOnNonFiniteLoss()],
    )
    assert len(history.epoch) == 2


def test_check_every_is_validated():
    with pytest.raises(ValueError, match="Received: check_every=0"):
        TerminateOnNonFiniteLoss(check_every=0)
