"""`TerminateOnNonFiniteLoss`: stop training with an exception when the loss diverges."""

from __future__ import annotations

import math

import keras


class NonFiniteLossError(FloatingPointError):
    """Raised by `TerminateOnNonFiniteLoss`; carries the epoch and batch it happened at."""

    def __init__(self, message, epoch=None, batch=None):
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch


@keras.saving.register_keras_serializable(package="kerasdl")
class TerminateOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` as soon as the training loss is NaN or infinite.

    Unlike `keras.callbacks.TerminateOnNaN`, which sets `model.stop_training` and lets
    `fit` end normally (so later callbacks treat the run as finished, e.g.
    `BackupAndRestore` deletes its last good backup), this callback aborts `fit` with
    an exception: no `on_train_end` runs, checkpoints stay as they were, and the caller
    can exit with a distinct status (the `kerasdl` CLI uses exit code 3) without
    exporting the diverged weights.

    The loss is checked every `check_every` training batches (reading it synchronises
    the device, so a larger value costs less) and at every epoch end, including the
    validation loss.

    Args:
        check_every: check the loss every this many batches. Defaults to `1`.

    Example:

    ```python
    model.fit(x, y, callbacks=[kerasdl.callbacks.TerminateOnNonFiniteLoss()])
    ```
    """

    def __init__(self, check_every=1):
        super().__init__()
        if int(check_every) < 1:
            raise ValueError(
                f"`check_every` must be at least 1. Received: check_every={check_every}"
            )
        self.check_every = int(check_every)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.check_every == 0:
            self._check(logs, batch)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, None)

    def _check(self, logs, batch):
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                where = f"epoch {self._epoch + 1}" + (
                    f", batch {batch + 1}" if batch is not None else ""
                )
                raise NonFiniteLossError(
                    f"{key} became {float(value)} at {where}.",
                    epoch=self._epoch,
                    batch=batch,
                )

    def get_config(self):
        return {"check_every": self.check_every}
