"""`AveragedWeightsForValidation`: validate, keep and export the optimizer's
moving average of the weights, while training goes on from the raw ones."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="kerasdl")
class AveragedWeightsForValidation(keras.callbacks.Callback):
    """Puts the optimizer's moving average of the weights in the model from each
    validation to the end of its epoch.

    With `use_ema=True` Keras validates the raw weights and writes the average
    into the model only when `fit` ends, after which an `EarlyStopping` with
    `restore_best_weights=True` sets the best epoch's *raw* weights back. With
    this callback, the validation loss, the weights `EarlyStopping` keeps and
    restores, the epoch-end checkpoints and so what is exported are all the
    averaged weights; the raw weights come back at the start of the next epoch,
    so training itself is unchanged. (A run resumed from a checkpoint trains on
    from the averaged weights of that epoch.)

    Unlike `keras.callbacks.SwapEMAWeights(swap_on_epoch=True)`, it does not
    depend on its place in the callback list (the average is in the model from
    `on_test_begin`, before any callback's `on_epoch_end`), a run stopped early
    keeps the average, and it reads the average through the optimizer's public
    `finalize_variable_values` instead of its private slots. Without
    `use_ema=True` it changes nothing. Given to a standalone `evaluate`, it
    evaluates the average and puts the raw weights back when it ends.

    Example:

    ```python
    model.compile(optimizer=keras.optimizers.Adam(use_ema=True), loss=...)
    model.fit(x, y, validation_data=(vx, vy), callbacks=[
        kerasdl.callbacks.EarlyStopping(restore_best_weights=True),
        kerasdl.callbacks.AveragedWeightsForValidation(),
    ])
    ```
    """

    def __init__(self):
        super().__init__()
        self._raw = None
        self._training = False

    def on_train_begin(self, logs=None):
        self._raw = None
        self._training = True

    def on_train_end(self, logs=None):
        self._training = False
        # Keras has just written the average into the weights (`fit` ends with
        # `finalize_variable_values`), sharing the averages' arrays on JAX: a
        # second `fit` would then donate them twice and fail. Copy them apart.
        if self._uses_ema():
            self._unshare()

    def _uses_ema(self):
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # loss scaling
        return getattr(optimizer, "use_ema", False)

    def _unshare(self):
        for variable in self.model.trainable_variables:
            variable.assign(keras.ops.convert_to_numpy(variable))

    def on_test_begin(self, logs=None):
        if self._raw is None and self._uses_ema():
            variables = self.model.trainable_variables
            self._raw = [keras.ops.convert_to_numpy(v) for v in variables]
            # Copies the averages into these variables (public API)...
            self.model.optimizer.finalize_variable_values(variables)
            # ...sharing the averages' arrays on JAX, which the next training
            # step would donate twice: give each variable its own copy.
            self._unshare()

    def on_test_end(self, logs=None):
        if not self._training:  # a standalone evaluate: nothing to keep
            self._restore_raw()

    def on_epoch_begin(self, epoch, logs=None):
        self._restore_raw()

    def _restore_raw(self):
        if self._raw is not None:
            for variable, value in zip(self.model.trainable_variables, self._raw):
                variable.assign(value)
            self._raw = None

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
