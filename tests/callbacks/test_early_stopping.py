import json
import math
import os

import keras
import numpy as np
import pytest

from kerasdl.callbacks import EarlyStopping

X = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
Y = X @ np.array([[1.0], [-2.0]], "float32")


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


class Script(keras.callbacks.Callback):
    """Writes a scripted `logs[name]` for each epoch and records the weights.

    Placed before `EarlyStopping`, which then sees the scripted values; the
    weights still change every epoch, so restoring the best ones shows.
    """

    def __init__(self, values, name="score"):
        super().__init__()
        self.values, self.name, self.weights = values, name, {}

    def on_epoch_end(self, epoch, logs=None):
        logs[self.name] = self.values[epoch]
        self.weights[epoch] = self.model.get_weights()


class InterruptAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("Interrupted")


def _fit(model, callbacks, epochs):
    history = model.fit(X, Y, epochs=epochs, verbose=0, callbacks=callbacks)
    return len(history.history["loss"])


def _assert_weights_equal(model, weights):
    for actual, expected in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(actual, expected)


def test_stops_after_patience_epochs_without_improvement():
    model = _model()
    early_stopping = EarlyStopping(monitor="score", mode="min", patience=2)
    epochs_run = _fit(
        model, [Script([3, 2, 1, 1.5, 1.2, 0.5, 0.1]), early_stopping], epochs=7
    )
    assert epochs_run == 5
    assert early_stopping.stopped_epoch == 4
    assert early_stopping.best == 1
    assert early_stopping.best_epoch == 2
    assert early_stopping.wait == 2


def test_patience_zero_stops_at_first_epoch_without_improvement():
    early_stopping = EarlyStopping(monitor="score", mode="min")
    assert _fit(_model(), [Script([3, 2, 2.5, 1]), early_stopping], epochs=4) == 3


def test_restores_best_weights_when_stopping():
    model = _model()
    script = Script([3, 1, 2, 2, 2, 2])
    early_stopping = EarlyStopping(
        monitor="score", mode="min", patience=2, restore_best_weights=True
    )
    assert _fit(model, [script, early_stopping], epochs=6) == 4
    _assert_weights_equal(model, script.weights[1])
    assert not np.array_equal(model.get_weights()[0], script.weights[3][0])


def test_restores_best_weights_when_epochs_run_out_first():
    model = _model()
    script = Script([3, 1, 2, 2])
    early_stopping = EarlyStopping(
        monitor="score", mode="min", patience=10, restore_best_weights=True
    )
    assert _fit(model, [script, early_stopping], epochs=4) == 4
    assert early_stopping.stopped_epoch == 0  # Keras' value for "not stopped"
    _assert_weights_equal(model, script.weights[1])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_value_stops_at_once_and_restores(bad):
    model = _model()
    script = Script([3, 1, 2, bad, 0.5, 0.1])
    early_stopping = EarlyStopping(
        monitor="score", mode="min", patience=10, restore_best_weights=True
    )
    assert _fit(model, [script, early_stopping], epochs=6) == 4
    assert early_stopping.stopped_epoch == 3
    assert early_stopping.best == 1
    _assert_weights_equal(model, script.weights[1])


def test_non_finite_value_stops_even_during_warm_up():
    early_stopping = EarlyStopping(monitor="score", mode="min", start_from_epoch=5)
    assert _fit(_model(), [Script([3, math.nan, 1]), early_stopping], epochs=3) == 2


def test_absolute_min_delta():
    # 1.0 -> 0.95 is not an improvement of more than 0.1; 0.85 is.
    early_stopping = EarlyStopping(
        monitor="score", mode="min", min_delta=0.1, patience=1
    )
    assert (
        _fit(_model(), [Script([1.0, 0.85, 0.8, 0.5]), early_stopping], epochs=4) == 3
    )
    assert early_stopping.best == 0.85


def test_relative_min_delta():
    # At 1% relative, 1000 -> 995 is no improvement; 100 -> 98 is.
    values = [1000.0, 995.0, 900.0, 100.0, 98.0, 97.5]
    early_stopping = EarlyStopping(
        monitor="score",
        mode="min",
        min_delta=0.01,
        min_delta_mode="relative",
        patience=1,
    )
    assert _fit(_model(), [Script(values), early_stopping], epochs=6) == 2
    early_stopping = EarlyStopping(
        monitor="score",
        mode="min",
        min_delta=0.01,
        min_delta_mode="relative",
        patience=2,
    )
    assert _fit(_model(), [Script(values), early_stopping], epochs=6) == 6
    assert early_stopping.best == 98.0
    assert early_stopping.best_epoch == 4


def test_auto_mode_judges_values_without_a_metric_object_by_name():
    # Values another callback writes: no compiled metric describes them.
    for name, maximize in [
        ("val_accuracy", True),
        ("val_auc", True),
        ("val_loss", False),
        ("mae", False),
        ("val_focal_accuracy_loss", False),
        ("val_top_error", False),
    ]:
        early_stopping = EarlyStopping(monitor=name)
        assert early_stopping.maximize is None  # resolved at the first epoch end
        _fit(_model(), [Script([0.5, 0.7], name), early_stopping], epochs=2)
        assert early_stopping.maximize is maximize, name
        expected = keras.ops.greater if maximize else keras.ops.less
        assert early_stopping.monitor_op is expected
    early_stopping = EarlyStopping(monitor="val_accuracy", patience=1)
    assert (
        _fit(
            _model(),
            [Script([0.5, 0.7, 0.6, 0.9], "val_accuracy"), early_stopping],
            epochs=4,
        )
        == 3
    )
    assert early_stopping.best == 0.7


def _classifier(metrics):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=metrics)
    return model


LABELS = (X[:, :1] > 0).astype("float32")


@pytest.mark.parametrize(
    "metric",
    [
        keras.metrics.MeanIoU(num_classes=2),
        keras.metrics.CosineSimilarity(),
        keras.metrics.PearsonCorrelation(),
        keras.metrics.R2Score(),
    ],
    ids=lambda metric: metric.name,
)
def test_auto_mode_maximizes_what_the_metric_object_says(metric):
    # Regression: names such as mean_io_u, cosine_similarity and
    # pearson_correlation were minimized, as the name did not say otherwise.
    # Rising values are improvements: no stop.
    early_stopping = EarlyStopping(monitor=metric.name, patience=1)
    model = _classifier([metric])
    script = Script([0.1, 0.2, 0.3, 0.4], metric.name)
    history = model.fit(
        X, LABELS, epochs=4, verbose=0, callbacks=[script, early_stopping]
    )
    assert len(history.epoch) == 4
    assert early_stopping.maximize is True
    assert early_stopping.monitor_op is keras.ops.greater


def test_auto_mode_minimizes_what_the_metric_object_says():
    # "mean_metric" says nothing by its name; the Hinge object says "down".
    early_stopping = EarlyStopping(monitor="mean_metric")
    _fit_classifier([keras.metrics.Hinge(name="mean_metric")], [early_stopping])
    assert early_stopping.monitor_op is keras.ops.less


def test_auto_mode_refuses_a_name_it_cannot_judge():
    early_stopping = EarlyStopping(monitor="score")
    with pytest.raises(ValueError, match=r"monitor='score'.*mode='max'.*mode='min'"):
        _fit(_model(), [Script([1, 2]), early_stopping], epochs=2)


def test_keras_metrics_declare_their_direction_where_early_stopping_reads_it():
    # `mode="auto"` reads Keras' private `_direction` marker, as Keras' own
    # MonitorCallback does (Keras 3.15). Should Keras rename it, this fails
    # before users' runs silently fall back to guessing by name.
    for metric, direction in [
        (keras.metrics.F1Score(), "up"),
        (keras.metrics.MeanIoU(num_classes=2), "up"),
        (keras.metrics.CosineSimilarity(), "up"),
        (keras.metrics.PearsonCorrelation(), "up"),
        (keras.metrics.AUC(), "up"),
        (keras.metrics.MeanSquaredError(), "down"),
        (keras.metrics.Hinge(), "down"),
    ]:
        assert getattr(metric, "_direction", None) == direction, metric.name


def _fit_classifier(metrics, callbacks, epochs=2):
    model = _classifier(metrics)
    return model.fit(X, LABELS, epochs=epochs, verbose=0, callbacks=callbacks)


def test_metric_of_shape_one_is_monitored():
    # Regression: F1Score's default average=None gives an array of shape (1,)
    # on a binary problem, which crashed the callback.
    early_stopping = EarlyStopping(monitor="f1_score", patience=5)
    _fit_classifier([keras.metrics.F1Score(threshold=0.5)], [early_stopping])
    assert isinstance(early_stopping.best, float)
    assert early_stopping.maximize is True


def test_metric_of_several_values_is_refused_with_advice():
    early_stopping = EarlyStopping(monitor="score", mode="max")
    with pytest.raises(ValueError, match=r"shape \(2,\).*average='macro'"):
        _fit(_model(), [Script([np.array([0.1, 0.2])] * 2), early_stopping], epochs=2)


def test_explicit_max_mode():
    early_stopping = EarlyStopping(monitor="score", mode="max", patience=1)
    assert _fit(_model(), [Script([1, 2, 1, 3]), early_stopping], epochs=4) == 3


def test_baseline_never_beaten_stops_after_patience():
    # Improving, but never below the baseline of 0.5.
    early_stopping = EarlyStopping(
        monitor="score", mode="min", baseline=0.5, patience=3
    )
    assert (
        _fit(_model(), [Script([3, 2, 1.5, 1, 0.9, 0.8]), early_stopping], epochs=6)
        == 3
    )
    assert early_stopping.best == 1.5


def test_baseline_beaten_resets_patience():
    early_stopping = EarlyStopping(
        monitor="score", mode="min", baseline=2.5, patience=2
    )
    assert (
        _fit(_model(), [Script([3, 2, 2.2, 1.9, 1.95, 2.0]), early_stopping], epochs=6)
        == 6
    )


def test_start_from_epoch_ignores_warm_up():
    # The warm-up's 0.1 would otherwise be best and stop training at epoch 2.
    early_stopping = EarlyStopping(
        monitor="score", mode="min", start_from_epoch=2, patience=1
    )
    assert _fit(_model(), [Script([0.1, 5, 3, 2, 1]), early_stopping], epochs=5) == 5
    assert early_stopping.best_epoch == 4


def test_missing_monitor_warns_and_does_not_stop():
    early_stopping = EarlyStopping(monitor="val_loss")
    with pytest.warns(UserWarning, match="'val_loss', which is not in the logs"):
        assert _fit(_model(), [early_stopping], epochs=3) == 3
    assert early_stopping.best is None


def test_monitors_real_validation_loss():
    model = _model()
    early_stopping = EarlyStopping(restore_best_weights=True, patience=2)
    history = model.fit(
        X, Y, validation_data=(X, Y), epochs=5, verbose=0, callbacks=[early_stopping]
    )
    assert early_stopping.best == pytest.approx(min(history.history["val_loss"]))


def test_state_is_reset_between_fits():
    early_stopping = EarlyStopping(monitor="score", mode="min", patience=1)
    model = _model()
    assert _fit(model, [Script([1, 2, 3]), early_stopping], epochs=3) == 2
    assert early_stopping.stopped_epoch == 1
    assert _fit(model, [Script([5, 4, 3]), early_stopping], epochs=3) == 3
    assert early_stopping.best == 3
    assert early_stopping.stopped_epoch == 0  # Keras' value for "not stopped"


def test_train_begin_resets_to_keras_values():
    # As Keras: best None, wait/stopped_epoch/best_epoch 0, no best weights.
    early_stopping = EarlyStopping(monitor="loss", restore_best_weights=True)
    early_stopping.set_model(_model())
    early_stopping.best, early_stopping.wait = 0.1, 3
    early_stopping.stopped_epoch = early_stopping.best_epoch = 5
    early_stopping.best_weights = [np.zeros(1)]
    early_stopping.on_train_begin()
    assert early_stopping.best is None and early_stopping.best_weights is None
    assert (early_stopping.wait, early_stopping.stopped_epoch) == (0, 0)
    assert early_stopping.best_epoch == 0


def test_set_state_reads_states_saved_with_none_epochs():
    state = {
        "monitor": "score",
        "best": None,
        "best_epoch": None,
        "stopped_epoch": None,
        "wait": 0,
        "last_epoch": None,
    }
    early_stopping = EarlyStopping(monitor="score", mode="min")
    early_stopping.set_state(state)
    assert (early_stopping.best_epoch, early_stopping.stopped_epoch) == (0, 0)


def test_get_state_set_state_round_trip_through_json():
    early_stopping = EarlyStopping(monitor="score", mode="min", patience=5)
    _fit(_model(), [Script([3, 1, 2]), early_stopping], epochs=3)
    state = json.loads(json.dumps(early_stopping.get_state()))
    fresh = EarlyStopping(monitor="score", mode="min", patience=5)
    fresh.set_state(state)
    assert fresh.get_state() == early_stopping.get_state()
    assert (fresh.best, fresh.best_epoch, fresh.wait) == (1, 1, 1)
    with pytest.raises(ValueError, match="monitors 'score'"):
        EarlyStopping(monitor="val_loss").set_state(state)


def _resumable_callbacks(tmp_path, values, backup_dir_for_early_stopping):
    script = Script(values)
    early_stopping = EarlyStopping(
        monitor="score",
        mode="min",
        patience=3,
        restore_best_weights=True,
        backup_dir=backup_dir_for_early_stopping,
    )
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    return script, early_stopping, [script, early_stopping, backup]


def test_state_survives_backup_and_restore_resume(tmp_path):
    values = [5, 4, 3, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1]
    es_dir = str(tmp_path / "early_stopping")

    # First run: interrupted at the start of epoch 4, after three improving
    # epochs (best 3 at epoch 2) and one without improvement (wait 1).
    model = _model()
    script, early_stopping, callbacks = _resumable_callbacks(tmp_path, values, es_dir)
    with pytest.raises(RuntimeError, match="Interrupted"):
        model.fit(X, Y, epochs=10, verbose=0, callbacks=callbacks + [InterruptAt(4)])
    best_weights = script.weights[2]
    assert os.path.exists(os.path.join(es_dir, "early_stopping_state.json"))

    # Resume in a fresh model and fresh callbacks, as a new process would.
    model = _model()
    _, early_stopping, callbacks = _resumable_callbacks(tmp_path, values, es_dir)
    history = model.fit(X, Y, epochs=10, verbose=0, callbacks=callbacks)
    # Epochs 4 and 5 bring wait to 3 = patience: stop at epoch 5, after two
    # more epochs, not after patience + 1 = 4 as a callback starting afresh would.
    assert len(history.history["loss"]) == 2
    assert early_stopping.stopped_epoch == 5
    assert (early_stopping.best, early_stopping.best_epoch) == (3, 2)
    _assert_weights_equal(model, best_weights)
    # A finished fit leaves no backup behind, as BackupAndRestore does.
    assert os.listdir(es_dir) == []


def test_without_backup_dir_a_resume_starts_counting_afresh(tmp_path):
    values = [5, 4, 3, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1]
    model = _model()
    _, _, callbacks = _resumable_callbacks(tmp_path, values, None)
    with pytest.raises(RuntimeError, match="Interrupted"):
        model.fit(X, Y, epochs=10, verbose=0, callbacks=callbacks + [InterruptAt(4)])
    _, early_stopping, callbacks = _resumable_callbacks(tmp_path, values, None)
    history = model.fit(X, Y, epochs=10, verbose=0, callbacks=callbacks)
    assert len(history.history["loss"]) == 4  # epochs 4..7
    assert early_stopping.best_epoch == 4  # the real best, epoch 2, is lost


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"patience": -1}, "Received: patience=-1"),
        ({"patience": 1.5}, "Received: patience=1.5"),
        ({"min_delta": -0.1}, "Received: min_delta=-0.1"),
        ({"mode": "up"}, "Received: mode='up'"),
        ({"min_delta_mode": "percent"}, "Received: min_delta_mode='percent'"),
        ({"start_from_epoch": -2}, "Received: start_from_epoch=-2"),
    ],
)
def test_invalid_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)


def test_numpy_scalar_arguments_are_accepted_as_in_keras():
    # Hyperparameter grids give NumPy scalars; Keras' EarlyStopping takes them.
    early_stopping = EarlyStopping(
        patience=np.int64(3), start_from_epoch=np.int32(1), min_delta=np.float32(0.5)
    )
    assert early_stopping.patience == 3 and type(early_stopping.patience) is int
    assert early_stopping.start_from_epoch == 1
    assert early_stopping.min_delta == 0.5
    json.dumps(early_stopping.get_state())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"patience": 1.5}, "patience=1.5"),
        ({"start_from_epoch": -1}, "start_from_epoch=-1"),
        ({"min_delta": "0.1"}, "min_delta='0.1'"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)


def test_positional_arguments_follow_keras_order():
    # keras.callbacks.EarlyStopping(monitor, min_delta, patience, verbose, mode,
    # baseline, restore_best_weights, start_from_epoch).
    args = ("val_accuracy", 0.01, 3, 1, "max", 0.5, True, 2)
    ours, reference = EarlyStopping(*args), keras.callbacks.EarlyStopping(*args)
    for name in ("patience", "verbose", "mode", "baseline"):
        assert getattr(ours, name) == getattr(reference, name), name
    assert ours.restore_best_weights is True and ours.start_from_epoch == 2
