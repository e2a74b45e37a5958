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


@pytest.mark.parametrize("value", [0, -1, 2.7, "3", None, True])
def test_check_every_is_validated(value):
    # Not truncated or coerced: 2.7 would silently check every 2 batches.
    with pytest.raises(ValueError, match=f"Received: check_every={value!r}"):
        TerminateOnNonFiniteLoss(check_every=value)


def test_check_every_takes_numpy_integers():
    assert TerminateOnNonFiniteLoss(check_every=np.int64(3)).check_every == 3


def _model_with_nan_moving_mean():
    # In training, batch normalization uses batch statistics: a NaN moving mean
    # never reaches the loss, but the model it leaves behind predicts NaN.
    inputs = keras.Input((2,))
    norm = keras.layers.BatchNormalization()
    model = keras.Model(inputs, keras.layers.Dense(1)(norm(inputs)))
    model.compile("sgd", "mse")
    norm.moving_mean.assign(np.full((2,), np.nan, "float32"))
    return model


def test_raises_at_epoch_end_on_a_non_finite_weight_with_a_finite_loss():
    model = _model_with_nan_moving_mean()
    with pytest.raises(NonFiniteLossError, match="moving_mean.*end of epoch 1"):
        model.fit(
            np.ones((8, 2)),
            np.ones(8),
            epochs=2,
            verbose=0,
            callbacks=[TerminateOnNonFiniteLoss()],
        )


def test_check_weights_false_checks_the_loss_only():
    model = _model_with_nan_moving_mean()
    history = model.fit(
        np.ones((8, 2)),
        np.ones(8),
        epochs=2,
        verbose=0,
        callbacks=[TerminateOnNonFiniteLoss(check_weights=False)],
    )
    assert np.isfinite(history.history["loss"]).all()


def test_config_round_trip():
    callback = TerminateOnNonFiniteLoss(check_every=4, check_weights=False)
    restored = TerminateOnNonFiniteLoss(**callback.get_config())
    assert (restored.check_every, restored.check_weights) == (4, False)
