import json
import logging
import math
import os
import warnings

import keras
import numpy as np

logger = logging.getLogger(__name__)

# Metrics that get better as they grow; any other monitored name is minimized.
_MAXIMIZED = ("acc", "auc", "precision", "recall", "f1", "fbeta", "iou", "r2")
_STATE_FILE = "early_stopping_state.json"
_WEIGHTS_FILE = "early_stopping_best_weights.npz"


class EarlyStopping(keras.callbacks.Callback):
    """Stops training when a monitored quantity has stopped improving.

    At the end of every epoch the callback reads `logs[monitor]`. An epoch
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

    After `fit`: `best` (best monitored value, `None` if none was seen),
    `best_epoch` (0-based epoch of `best`), `stopped_epoch` (0-based epoch at
    which training was stopped, `None` if it was not), `wait`, and
    `best_weights` (a list of NumPy arrays when `restore_best_weights=True`).
    `get_state()` / `set_state()` give the same as a JSON-ready dict.

    Args:
        monitor: name of the quantity in the epoch logs. Defaults to
            `"val_loss"`.
        min_delta: float >= 0, the smallest change that counts as an
            improvement. Defaults to `0`.
        patience: int >= 0, the number of epochs without improvement after
            which training stops; `0` stops at the first one, as `1` does.
            Defaults to `0`.
        mode: `"min"`, `"max"` or `"auto"`. `"auto"` maximizes names that
            contain `acc`, `auc`, `precision`, `recall`, `f1`, `fbeta`, `iou`
            or `r2` (and do not end in `loss`), and minimizes the rest.
            Defaults to `"auto"`.
        baseline: optional float. Patience is only reset by epochs that beat
            both the best value and `baseline`, so training stops after
            `patience` epochs if the baseline is never beaten. Defaults to
            `None`.
        restore_best_weights: whether to set the model's weights back to those
            of the best epoch when training ends. Defaults to `False`.
        start_from_epoch: int >= 0, the number of warm-up epochs during which
            nothing is monitored. Defaults to `0`.
        verbose: 0 (silent) or 1 (print a line when stopping or restoring).
            Defaults to `0`.
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
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
        verbose=0,
        min_delta_mode="absolute",
        backup_dir=None,
    ):
        super().__init__()
        if not isinstance(min_delta, (int, float)) or not min_delta >= 0:
            raise ValueError(
                f"`min_delta` must be a number >= 0. Received: min_delta={min_delta!r}"
            )
        for name, value in (
            ("patience", patience),
            ("start_from_epoch", start_from_epoch),
        ):
            if not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"`{name}` must be an int >= 0. Received: {name}={value!r}"
                )
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
        if mode == "auto":
            name = monitor.lower()
            maximized = any(key in name for key in _MAXIMIZED)
            mode = "max" if maximized and not name.endswith("loss") else "min"
        self.maximize = mode == "max"
        self._reset()

    # ------------------------------------------------------------------ state

    def _reset(self):
        self.best = None
        self.best_epoch = None
        self.stopped_epoch = None
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
        self.best_epoch = state["best_epoch"]
        self.stopped_epoch = state["stopped_epoch"]
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
        self.last_epoch = epoch
        current = (logs or {}).get(self.monitor)
        if current is not None:
            current = float(current)
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
