import json
import logging
import math
import numbers
import os
import warnings

import keras
import numpy as np

logger = logging.getLogger(__name__)

# For values that no compiled metric object describes (a loss, or a value another
# callback writes to the logs), `mode="auto"` reads the direction off the name:
# names ending in "loss", or holding one of these, are minimized...
_MINIMIZED = (
    "error",
    "mse",
    "mae",
    "mape",
    "msle",
    "hinge",
    "crossentropy",
    "divergence",
    "poisson",
    "logcosh",
    "perplexity",
)
# ...names holding one of these are maximized; any other name is refused.
_MAXIMIZED = ("acc", "auc", "precision", "recall", "f1", "fbeta", "iou", "io_u", "r2")
_STATE_FILE = "early_stopping_state.json"
_WEIGHTS_FILE = "early_stopping_best_weights.npz"


class EarlyStopping(keras.callbacks.Callback):
    """Stops training when a monitored quantity has stopped improving.

    At the end of every epoch the callback reads `logs[monitor]` (a number, or
    an array of one element, such as `keras.metrics.F1Score()`'s on a binary
    problem). An epoch
    improves on the best value so far when it beats it by more than
    `min_delta`; `wait` counts the epochs since the last improvement, and
    training stops once `wait` reaches `patience`. Beyond
    `keras.callbacks.EarlyStopping`, it:

    - restores the best weights whenever `restore_best_weights=True`, also when
      `fit` runs out of epochs before patience does;
    - stops at once when the monitored value is NaN or infinite (training has
      diverged), even during warm-up, restoring the best weights if asked;
    - can measure `min_delta` relative to the best value
      (`min_delta_mode="relative"`: `0.01` means "1% better");
    - warns when `monitor` is missing from the logs (a typo, or no
      validation data);
    - with `backup_dir`, persists its state at every epoch end so that a run
      interrupted and resumed with `keras.callbacks.BackupAndRestore` carries
      on counting patience from where it stopped. `BackupAndRestore` restores
      the model weights and the epoch counter only; this callback restores the
      rest (`best`, `best_epoch`, `wait`, `best_weights`). Its files are
      deleted when `fit` ends normally, as `BackupAndRestore` does with its own.

    After `fit`, as in Keras: `best` (best monitored value, `None` if none was
    seen), `best_epoch` (0-based epoch of `best`, 0 until one is seen),
    `stopped_epoch` (0-based epoch at which this callback stopped training, 0
    if it did not), `wait`, `best_weights` (a list of NumPy arrays when
    `restore_best_weights=True`), and `monitor_op` (`keras.ops.greater` when
    the monitored value is maximized, `keras.ops.less` when minimized; with
    `mode="auto"`, resolved at the end of the first epoch). Every `fit` starts
    afresh (unless resumed from `backup_dir`). `get_state()` / `set_state()`
    give the progress as a JSON-ready dict.

    Args:
        monitor: name of the quantity in the epoch logs. Defaults to
            `"val_loss"`.
        min_delta: float >= 0, the smallest change that counts as an
            improvement. Defaults to `0`.
        patience: int >= 0, the number of epochs without improvement after
            which training stops; `0` stops at the first one, as `1` does.
            Defaults to `0`.
        verbose: 0 (silent) or 1 (print a line when stopping or restoring).
            Defaults to `0`.
        mode: `"min"`, `"max"` or `"auto"`. `"auto"` works as in Keras: it
            takes the direction the compiled metric of that name declares
            (so `accuracy`, `auc`, `f1_score`, `mean_io_u`,
            `cosine_similarity`, `pearson_correlation`, `r2_score` are
            maximized; `mse`, `hinge`, `crossentropy` minimized) and
            minimizes the loss (`loss`, `val_loss`, `<output>_loss`). A value
            that no compiled metric describes (one another callback writes,
            say) is judged by its name: minimized if it contains `error`,
            `mse`, `mae`, `hinge`, `crossentropy` and the like, maximized if
            it contains `acc`, `auc`, `precision`, `recall`, `f1`, `iou` or
            `r2`; for any other name `fit` raises a `ValueError` at the end of
            the first epoch, asking for `"min"` or `"max"`. Defaults to
            `"auto"`.
        baseline: optional float. Patience is only reset by epochs that beat
            both the best value and `baseline`, so training stops after
            `patience` epochs if the baseline is never beaten. Defaults to
            `None`.
        restore_best_weights: whether to set the model's weights back to those
            of the best epoch when training ends. Defaults to `False`.
        start_from_epoch: int >= 0, the number of warm-up epochs during which
            nothing is monitored. Defaults to `0`.
        min_delta_mode: `"absolute"` (an improvement beats the best by more
            than `min_delta`) or `"relative"` (by more than
            `min_delta * |best|`). Defaults to `"absolute"`.
        backup_dir: optional directory in which to persist the state at every
            epoch end, read back at the start of the next `fit` when present.
            Give it a directory of its own, not the one of `BackupAndRestore`.
            Defaults to `None` (nothing persisted).

    Example:

    ```python
    callbacks = [
        keras.callbacks.BackupAndRestore("runs/backup"),
        kerasdl.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=5,
            restore_best_weights=True,
            backup_dir="runs/early_stopping",
        ),
    ]
    model.fit(x, y, validation_data=(x_val, y_val), epochs=100,
              callbacks=callbacks)
    ```
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
        min_delta_mode="absolute",
        backup_dir=None,
    ):
        super().__init__()
        # NumPy scalars (from a hyperparameter grid, say) count, as in Keras.
        if not isinstance(min_delta, numbers.Real) or not min_delta >= 0:
            raise ValueError(
                f"`min_delta` must be a number >= 0. Received: min_delta={min_delta!r}"
            )
        for name, value in (
            ("patience", patience),
            ("start_from_epoch", start_from_epoch),
        ):
            if not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(
                    f"`{name}` must be an int >= 0. Received: {name}={value!r}"
                )
        patience, start_from_epoch = int(patience), int(start_from_epoch)
        if mode not in ("auto", "min", "max"):
            raise ValueError(
                f'`mode` must be "auto", "min" or "max". Received: mode={mode!r}'
            )
        if min_delta_mode not in ("absolute", "relative"):
            raise ValueError(
                '`min_delta_mode` must be "absolute" or "relative". '
                f"Received: min_delta_mode={min_delta_mode!r}"
            )
        self.monitor = monitor
        self.min_delta = float(min_delta)
        self.patience = patience
        self.mode = mode
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.verbose = verbose
        self.min_delta_mode = min_delta_mode
        self.backup_dir = backup_dir
        self.monitor_op = {"min": keras.ops.less, "max": keras.ops.greater}.get(mode)
        self._reset()

    @property
    def maximize(self):
        """Whether the monitored value is maximized; `None` until resolved."""
        if self.monitor_op is None:
            return None
        return self.monitor_op is keras.ops.greater

    # ------------------------------------------------------------------ state

    def _reset(self):
        self.best = None
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.wait = 0
        self.best_weights = None
        self.last_epoch = None

    def get_state(self):
        """Returns the callback's progress as a JSON-ready dict.

        `best_weights` is not included: it is kept apart, as arrays.
        """
        return {
            "monitor": self.monitor,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "wait": self.wait,
            "last_epoch": self.last_epoch,
        }

    def set_state(self, state):
        """Sets the progress from a dict returned by `get_state()`."""
        if state.get("monitor") != self.monitor:
            raise ValueError(
                f"The saved state monitors {state.get('monitor')!r}, this "
                f"callback monitors {self.monitor!r}."
            )
        self.best = state["best"]
        # States saved before these became Keras' 0-based ints held None.
        self.best_epoch = state["best_epoch"] or 0
        self.stopped_epoch = state["stopped_epoch"] or 0
        self.wait = state["wait"]
        self.last_epoch = state["last_epoch"]

    def _backup_paths(self):
        return (
            os.path.join(self.backup_dir, _STATE_FILE),
            os.path.join(self.backup_dir, _WEIGHTS_FILE),
        )

    def _save_backup(self):
        state_path, weights_path = self._backup_paths()
        os.makedirs(self.backup_dir, exist_ok=True)
        # Write the weights first and each file atomically, so that a crash
        # leaves either the old pair or the new state with its weights.
        if self.best_weights is not None:
            tmp = weights_path + ".tmp.npz"
            np.savez(tmp, *self.best_weights)
            os.replace(tmp, weights_path)
        tmp = state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.get_state(), f)
        os.replace(tmp, state_path)

    def _load_backup(self):
        state_path, weights_path = self._backup_paths()
        if not os.path.exists(state_path):
            return False
        with open(state_path) as f:
            self.set_state(json.load(f))
        if self.restore_best_weights and os.path.exists(weights_path):
            with np.load(weights_path) as arrays:
                self.best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays))]
        return True

    def _delete_backup(self):
        for path in self._backup_paths():
            if os.path.exists(path):
                os.remove(path)

    # -------------------------------------------------------------- callbacks

    def on_train_begin(self, logs=None):
        # A new `fit` starts afresh, unless there is a backup to resume from.
        self._reset()
        if self.mode == "auto":
            self.monitor_op = None  # resolved against this fit's model
        if self.backup_dir and self._load_backup():
            logger.info(
                "EarlyStopping resumed from %s at epoch %s (best %s=%s, wait %d).",
                self.backup_dir,
                self.last_epoch,
                self.monitor,
                self.best,
                self.wait,
            )

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            # The compiled metrics exist once an epoch has run.
            self.monitor_op = _resolve_monitor_op(self.monitor, self.model, logs)
        self.last_epoch = epoch
        current = (logs or {}).get(self.monitor)
        if current is not None:
            current = _scalar(self.monitor, current)
        if current is None:
            warnings.warn(
                f"EarlyStopping is monitoring {self.monitor!r}, which is not in "
                f"the logs. Available: {sorted(logs or {})}",
                stacklevel=2,
            )
        elif not math.isfinite(current):
            # Diverged: no later epoch can be trusted, warm-up or not.
            self._stop(epoch, f"{self.monitor} is {current}")
        elif epoch >= self.start_from_epoch:
            self._update(epoch, current)
        if self.backup_dir:
            self._save_backup()

    def _update(self, epoch, current):
        if self._improves(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
                return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self._stop(epoch, f"no improvement for {self.wait} epochs")

    def _improves(self, current, reference):
        if reference is None:
            return True
        delta = self.min_delta
        if self.min_delta_mode == "relative":
            delta *= abs(reference)
        if self.maximize:
            return current - reference > delta
        return reference - current > delta

    def _stop(self, epoch, reason):
        self.stopped_epoch = epoch
        self.model.stop_training = True
        if self.verbose:
            print(f"Epoch {epoch + 1}: early stopping ({reason}).")

    def on_train_end(self, logs=None):
        if self.restore_best_weights:
            if self.best_weights is not None:
                if self.verbose:
                    print(
                        "Restoring model weights from the end of the best epoch: "
                        f"{self.best_epoch + 1}."
                    )
                self.model.set_weights(self.best_weights)
            elif self.last_epoch is not None:
                warnings.warn(
                    "EarlyStopping could not restore the best weights: no epoch "
                    f"had a finite {self.monitor!r}.",
                    stacklevel=2,
                )
        if self.backup_dir:
            self._delete_backup()


def _scalar(monitor, value):
    """`value` as a float; an array of one element (F1Score's) included."""
    array = np.asarray(value)
    if array.size != 1:
        raise ValueError(
            f"EarlyStopping monitors {monitor!r}, whose value must be a single "
            f"number; received an array of shape {array.shape}. For a metric "
            "computed per class, such as `F1Score()` with its default "
            "`average=None`, pass `average='macro'` (or 'micro', 'weighted') "
            f"to the metric. Received: {monitor}={value!r}"
        )
    return float(array.reshape(()))


def _declared_direction(model, name):
    """The direction ("up"/"down") the compiled metric `name` declares, or None.

    Keras' metrics declare it in their `_direction` attribute, which Keras'
    own `MonitorCallback` reads; there is no public equivalent, so it is read
    here defensively (any other value counts as undeclared). Containers of
    metrics (the compiled metrics of `model.metrics`) are searched through
    their `metrics` attribute.
    """
    pending = list(getattr(model, "metrics", None) or [])
    seen = set()
    while pending:
        metric = pending.pop(0)
        if id(metric) in seen:
            continue
        seen.add(id(metric))
        if getattr(metric, "name", None) == name:
            direction = getattr(metric, "_direction", None)
            if direction in ("up", "down"):
                return direction
        children = getattr(metric, "metrics", None)
        if isinstance(children, (list, tuple)):
            pending.extend(children)
    return None


def _direction_from_name(name):
    name = name.lower()
    if name.endswith("loss") or any(key in name for key in _MINIMIZED):
        return "down"
    if any(key in name for key in _MAXIMIZED):
        return "up"
    return None


def _resolve_monitor_op(monitor, model, logs):
    """`mode="auto"`: `keras.ops.greater` or `keras.ops.less` for `monitor`."""
    name = monitor.removeprefix("val_")
    direction = _declared_direction(model, name) or _direction_from_name(name)
    if direction is None:
        raise ValueError(
            f"EarlyStopping(mode='auto') cannot tell whether monitor={monitor!r} "
            "should be maximized or minimized: no compiled metric of that name "
            "declares a direction, and the name does not say. Pass mode='max' "
            "to keep the highest value or mode='min' to keep the lowest (or fix "
            f"the name). Values in the logs: {sorted(logs or {})}"
        )
    return keras.ops.greater if direction == "up" else keras.ops.less
