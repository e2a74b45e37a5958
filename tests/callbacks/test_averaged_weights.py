"""AveragedWeightsForValidation: the average is validated, kept and left; training
goes on from the raw weights; its place among the callbacks does not matter."""

import keras
import numpy as np
import pytest

from kerasdl.callbacks import AveragedWeightsForValidation, EarlyStopping

X = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
Y = X @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.3


def _model(use_ema=True):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, use_ema=use_ema, ema_momentum=0.8),
        loss="mse",
    )
    return model


class Record(keras.callbacks.Callback):
    """The weights the first validation batch and each epoch's end see.

    (Read only where every backend holds them in the variables: JAX keeps
    them in the trainer's state during the batches.)
    """

    def __init__(self):
        super().__init__()
        self.validated, self.epoch_end = [], []

    def on_test_begin(self, logs=None):
        self._first = True

    def on_test_batch_begin(self, batch, logs=None):
        if self._first:
            self.validated.append(self.model.get_weights())
            self._first = False

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end.append(self.model.get_weights())


def _fit(model, callbacks, epochs=4):
    return model.fit(
        X, Y, batch_size=8, epochs=epochs, validation_data=(X, Y), verbose=0,
        callbacks=callbacks,
    )  # fmt: skip


@pytest.mark.parametrize("first", [True, False])
def test_validation_and_epoch_end_see_the_average_training_the_raw(first):
    model, record = _model(), Record()
    averaged = AveragedWeightsForValidation()
    history = _fit(model, [averaged, record] if first else [record, averaged])
    plain, plain_record = _model(), Record()
    plain_history = _fit(plain, [plain_record])  # The same run without it.
    # Training is unchanged: each epoch's training loss is the raw weights'.
    np.testing.assert_allclose(
        history.history["loss"], plain_history.history["loss"], rtol=1e-5
    )
    assert not np.allclose(
        history.history["val_loss"], plain_history.history["val_loss"]
    )
    for validated, end, raw in zip(
        record.validated, record.epoch_end, plain_record.epoch_end
    ):
        assert not np.allclose(validated[0], raw[0])  # Not the raw weights...
        for a, b in zip(validated, end):  # ...the same average until epoch end.
            np.testing.assert_array_equal(a, b)


def test_early_stopping_keeps_and_restores_the_best_average():
    model, record = _model(), Record()
    history = _fit(
        model,
        [EarlyStopping(patience=10, restore_best_weights=True), record,
         AveragedWeightsForValidation()],
        epochs=5,
    )  # fmt: skip
    best = int(np.argmin(history.history["val_loss"]))
    for a, b in zip(model.get_weights(), record.validated[best]):
        np.testing.assert_array_equal(a, b)
    assert model.evaluate(X, Y, verbose=0) == pytest.approx(
        history.history["val_loss"][best], rel=1e-5
    )


def test_standalone_evaluate_sees_the_average_and_leaves_the_raw_weights():
    model = _model()
    _fit(model, [], epochs=3)  # Keras leaves the average in the model.
    average = model.get_weights()
    # Keras' own hand-over shares the averages' arrays with the weights on
    # JAX, whose evaluate would then donate (delete) them: fresh copies.
    model.set_weights(average)
    average_loss = model.evaluate(X, Y, verbose=0)
    raw = [w + 0.5 for w in average]  # As if training had gone on.
    model.set_weights(raw)
    loss = model.evaluate(X, Y, verbose=0, callbacks=[AveragedWeightsForValidation()])
    assert loss == pytest.approx(average_loss, rel=1e-6)
    assert loss != pytest.approx(model.evaluate(X, Y, verbose=0), rel=1e-3)
    for a, b in zip(model.get_weights(), raw):
        np.testing.assert_array_equal(a, b)


def test_the_model_trains_on_after_fit_ends():
    # On JAX, Keras' own end of `fit` leaves the weights sharing the averages'
    # arrays, and a second `fit` failed ("Buffer has been deleted or donated").
    model = _model()
    _fit(model, [AveragedWeightsForValidation()], epochs=2)
    history = _fit(model, [AveragedWeightsForValidation()], epochs=2)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.evaluate(X, Y, verbose=0) == pytest.approx(
        history.history["val_loss"][-1], rel=1e-5
    )


def test_without_use_ema_nothing_changes():
    model, record = _model(use_ema=False), Record()
    _fit(model, [AveragedWeightsForValidation(), record], epochs=2)
    plain, plain_record = _model(use_ema=False), Record()
    _fit(plain, [plain_record], epochs=2)
    for a, b in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_config_round_trip():
    callback = AveragedWeightsForValidation()
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(callback)
    )
    assert isinstance(restored, AveragedWeightsForValidation)
