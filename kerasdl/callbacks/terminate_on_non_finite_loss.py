"""`TerminateOnNonFiniteLoss`: stop training with an exception when training diverges."""

from __future__ import annotations

import math
import numbers

import keras


class NonFiniteLossError(FloatingPointError):
    """Raised by `TerminateOnNonFiniteLoss`; carries the epoch and batch it happened at."""

    def __init__(self, message, epoch=None, batch=None):
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch


def first_non_finite(variables):
    """The first floating-point variable holding a NaN or infinity, else `None`."""
    for variable in variables:
        if "float" in str(variable.dtype) and not bool(
            keras.ops.all(keras.ops.isfinite(variable))
        ):
            return variable
    return None


@keras.saving.register_keras_serializable(package="kerasdl")
class TerminateOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` as soon as the loss, or a weight, is NaN or infinite.

    Unlike `keras.callbacks.TerminateOnNaN`, which sets `model.stop_training` and lets
    `fit` end normally (so later callbacks treat the run as finished, e.g.
    `BackupAndRestore` deletes its last good backup), this callback aborts `fit` with
    an exception: no `on_train_end` runs, checkpoints stay as they were, and the caller
    can exit with a distinct status (the `kerasdl` CLI uses exit code 3) without
    exporting the diverged weights.

    The loss is checked every `check_every` training batches (reading it synchronises
    the device, so a larger value costs less) and at every epoch end, including the
    validation loss. At every epoch end it also checks the model's weights: a NaN
    weight does not always reach the loss, because some fused CPU kernels (oneDNN's
    Conv2D/MatMul + BiasAdd + ReLU in TensorFlow) turn NaN pre-activations into 0.

    Args:
        check_every: check the loss every this many batches. Defaults to `1`.
        check_weights: also check every floating-point model variable at each
            epoch end. Defaults to `True`.

    Example:

    ```python
    model.fit(x, y, callbacks=[kerasdl.callbacks.TerminateOnNonFiniteLoss()])
    ```
    """

    def __init__(self, check_every=1, check_weights=True):
        super().__init__()
        if (
            isinstance(check_every, bool)
            or not isinstance(check_every, numbers.Integral)
            or check_every < 1
        ):
            raise ValueError(
                f"`check_every` must be an int >= 1. Received: check_every={check_every!r}"
            )
        self.check_every = int(check_every)
        self.check_weights = bool(check_weights)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.check_every == 0:
            self._check(logs, batch)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, None)
        if self.check_weights:
            self._check_weights()

    def _check_weights(self):
        variable = first_non_finite(self.model.variables)
        if variable is not None:
            raise NonFiniteLossError(
                f"weight {variable.path!r} became non-finite by the end of "
                f"epoch {self._epoch + 1} (the loss was still finite).",
                epoch=self._epoch,
            )

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
        return {"check_every": self.check_every, "check_weights": self.check_weights}
