"""fit_with_early_stopping: early stopping, logs and timing from one call."""

import os

import keras
import numpy as np
import tensorflow as tf

from kerasdl.training import fit_with_early_stopping


def test_fit_logs_each_epoch_and_stops_on_patience(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)).astype("float32"), rng.normal(size=(32, 1))
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")  # never improves

    run = fit_with_early_stopping(
        model, data, data, epochs=10, patience=2, workdir=str(tmp_path), verbose=0
    )

    assert run.epochs_run == 3  # Best at epoch 1, then 2 epochs without improvement.
    assert run.early_stopping.best_epoch == 0
    with open(run.log_path) as log:
        assert len(log.read().splitlines()) == 1 + 3  # Header and one row per epoch.
    assert os.path.isdir(tmp_path / "tensorboard")
    assert run.seconds > 0
