"""`model.fit` with the callbacks every text recipe uses, timed."""

import dataclasses
import os
import time

import keras

from kerasdl.callbacks.early_stopping import EarlyStopping
from kerasdl.callbacks.terminate_on_non_finite_loss import TerminateOnNonFiniteLoss
from kerasdl.training.recipe_main import fit_verbose
from kerasdl.training.tensorboard import tensorboard_callbacks


@dataclasses.dataclass
class FitRun:
    """What `fit_with_early_stopping` leaves: the history, its callback and log."""

    history: keras.callbacks.History
    early_stopping: EarlyStopping
    log_path: str  # The CSV log: one row per epoch.
    seconds: float

    @property
    def epochs_run(self):
        return len(self.history.epoch)


def fit_with_early_stopping(
    model, train, validation, *, epochs, patience, workdir, verbose="auto"
):
    """Fits with early stopping on `val_loss` (best weights restored), a stop on a
    non-finite loss, a CSV log and TensorBoard logs under `workdir`.

    Args:
        model: a compiled Keras model.
        train: the training `tf.data.Dataset`, already shuffled per epoch.
        validation: the validation `tf.data.Dataset`.
        epochs: the most epochs to run.
        patience: epochs without a `val_loss` improvement before stopping.
        workdir: folder for `training_log.csv` and `tensorboard/`.
        verbose: fit's progress, as `fit_verbose` takes it.

    Returns:
        A `FitRun`.

    Example:

    >>> run = fit_with_early_stopping(model, train, validation, epochs=20,
    ...                               patience=3, workdir="runs/x")  # doctest: +SKIP
    >>> run.early_stopping.best_epoch, run.seconds  # doctest: +SKIP
    """
    early_stopping = EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True, verbose=1
    )
    log_path = os.path.join(workdir, "training_log.csv")
    callbacks = [
        TerminateOnNonFiniteLoss(),
        early_stopping,
        keras.callbacks.CSVLogger(log_path),
        *tensorboard_callbacks(os.path.join(workdir, "tensorboard")),
    ]
    start = time.perf_counter()
    history = model.fit(
        train,
        validation_data=validation,
        epochs=epochs,
        callbacks=callbacks,
        shuffle=False,  # The tf.data pipeline shuffles each epoch.
        verbose=fit_verbose(verbose),
    )
    return FitRun(history, early_stopping, log_path, time.perf_counter() - start)
