"""`ResumableCheckpoint`: epoch-boundary checkpoints that survive SIGKILL and NaN."""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import re
import uuid

import keras
import numpy as np

from kerasdl.callbacks.terminate_on_non_finite_loss import first_non_finite

logger = logging.getLogger(__name__)

_CHECKPOINT_RE = re.compile(r"^epoch-(\d+)\.npz$")
_COMPLETED = "COMPLETED"
_CALLBACK_ATTRIBUTES = ("wait", "best", "best_epoch", "stopped_epoch")


@keras.saving.register_keras_serializable(package="kerasdl")
class ResumableCheckpoint(keras.callbacks.Callback):
    """Saves the full training state at every epoch end so a killed run can resume.

    A better-behaved replacement for `keras.callbacks.BackupAndRestore`:

    * Each checkpoint is one `.npz` file holding every model variable (weights,
      normalization statistics, random-seed state), every optimizer variable (step
      count, moments, learning rate), the number of epochs completed and the state of
      the callbacks given in `track_callbacks` (e.g. early stopping's patience counter).
    * A checkpoint is written to a temporary file in the same directory, flushed with
      `fsync` and renamed into place with `os.replace`, so a write interrupted at any
      point (SIGKILL, full disk) never leaves a torn checkpoint under a real name. The
      last `keep` checkpoints are kept; `restore()` falls back to an older one if the
      newest cannot be read.
    * An epoch whose loss (or any weight) is NaN or infinite is never saved, so the
      last good checkpoint survives a divergence (unlike `BackupAndRestore`, see
      keras-team/keras#21771).
    * Checkpoints are taken at epoch boundaries only; a run killed mid-epoch replays
      that whole epoch from its start. With deterministic ops and a seeded input
      pipeline fed as one stream (see `kerasdl.training.resumable_stream`), a
      resumed run ends with exactly the same weights as an uninterrupted one.
    * When `fit` finishes normally the directory is marked completed (unless
      `complete_on_train_end=False`, for a caller that marks completion itself with
      `mark_completed()` once the trained model is safely used, e.g. exported); the
      next `restore()` then starts a fresh run instead of resuming a finished one.

    Call `restore()` after `compile()` and before `fit()`, pass the epoch it
    returns as `fit(initial_epoch=...)`, and list this callback after the callbacks
    it tracks (they reset themselves in `on_train_begin`; this one then puts their
    saved state back).

    Args:
        directory: where checkpoints go (created if missing).
        keep: how many recent checkpoints to keep. Defaults to `2`.
        metadata: JSON-serialisable dict stored with each checkpoint; `restore()`
            refuses checkpoints whose `metadata` differs on the keys present in both.
            Defaults to `None`.
        track_callbacks: callbacks whose state is saved and restored: their
            `get_state()`/`set_state()` if they have them (kerasdl's `EarlyStopping`),
            else their `wait`, `best`, `best_epoch` and `stopped_epoch` attributes;
            plus `best_weights`. Defaults to `None`.
        save: whether this process writes checkpoints (set `False` on non-chief
            workers of a multi-worker run). Defaults to `True`.
        complete_on_train_end: mark the directory completed when `fit` ends.
            Defaults to `True`.

    Example:

    ```python
    checkpoint = ResumableCheckpoint("runs/lenet/checkpoints")
    initial_epoch = checkpoint.restore(model)
    model.fit(train, epochs=10, initial_epoch=initial_epoch, callbacks=[checkpoint])
    ```
    """

    def __init__(
        self,
        directory,
        keep=2,
        metadata=None,
        track_callbacks=None,
        save=True,
        complete_on_train_end=True,
    ):
        super().__init__()
        if isinstance(keep, bool) or not isinstance(keep, numbers.Integral) or keep < 1:
            raise ValueError(f"`keep` must be an int >= 1. Received: keep={keep!r}")
        self.directory = str(directory)
        self.keep = int(keep)
        self.metadata = dict(metadata or {})
        self.track_callbacks = list(track_callbacks or [])
        self.save = bool(save)
        self.complete_on_train_end = bool(complete_on_train_end)
        self.last_saved_epoch = None
        self.restored_epoch = 0

    # ----------------------------------------------------------------- restore
    def restore(self, model=None) -> int:
        """Loads the newest good checkpoint into `model`; returns epochs completed.

        Returns `0` (and leaves the model untouched) when there is no checkpoint or
        the previous run in this directory completed.
        """
        model = model or self.model
        if model is not None:
            self.set_model(model)
        if os.path.exists(os.path.join(self.directory, _COMPLETED)):
            logger.info("%s holds a completed run; starting afresh.", self.directory)
            return 0
        for epoch, path in reversed(self.checkpoints()):
            try:
                state = self._read(path)
            except Exception as error:  # noqa: BLE001 -- unreadable: try an older one.
                logger.warning("Skipping unreadable checkpoint %s: %s", path, error)
                continue
            self._check_metadata(state["metadata"], path)
            self._load_state(state)
            self.restored_epoch = epoch
            return epoch
        return 0

    def restore_from(self, path, model=None) -> dict:
        """Loads the checkpoint file `path` (e.g. one written by `write(name=...)`)
        into `model`; returns its header (`epochs_completed`, `metadata`, `extra`)."""
        model = model or self.model
        if model is not None:
            self.set_model(model)
        state = self._read(path)
        self._check_metadata(state["metadata"], path)
        self._load_state(state)
        return {k: v for k, v in state.items() if k != "arrays"}

    @property
    def restored_callback_states(self) -> list[dict]:
        """The tracked callbacks' states read by the last restore, not yet applied
        (one dict per callback in `track_callbacks`; empty once `fit` began)."""
        pending = getattr(self, "_pending_callback_states", None) or []
        return [saved for saved, _ in pending]

    def restore_callbacks(self) -> None:
        """Puts the restored state into the tracked callbacks now (`fit` does it in
        `on_train_begin`; call this when a restored run skips `fit`)."""
        self._apply_callback_states()

    def mark_completed(self) -> None:
        """Marks the directory completed: the next `restore()` starts afresh."""
        os.makedirs(self.directory, exist_ok=True)
        with open(os.path.join(self.directory, _COMPLETED), "w") as f:
            f.write(f"{self.last_saved_epoch or 0}\n")

    def checkpoints(self) -> list[tuple[int, str]]:
        """Returns [(epochs completed, path)] of the checkpoints on disk, oldest first."""
        if not os.path.isdir(self.directory):
            return []
        found = []
        for name in os.listdir(self.directory):
            match = _CHECKPOINT_RE.match(name)
            if match:
                found.append((int(match.group(1)), os.path.join(self.directory, name)))
        return sorted(found)

    # --------------------------------------------------------------- callbacks
    def on_train_begin(self, logs=None):
        self._apply_callback_states()
        if self.save:
            os.makedirs(self.directory, exist_ok=True)
            marker = os.path.join(self.directory, _COMPLETED)
            if os.path.exists(marker):  # A new run in a finished directory.
                for _, path in self.checkpoints():
                    os.remove(path)
                os.remove(marker)

    def on_epoch_end(self, epoch, logs=None):
        if not self.save:
            return
        logs = logs or {}
        bad = [k for k, v in logs.items() if _is_number(v) and not math.isfinite(v)]
        if bad or first_non_finite(self.model.variables) is not None:
            logger.warning(
                "Not checkpointing epoch %d: non-finite %s.",
                epoch + 1,
                bad or "weights",
            )
            return
        self.write(epoch + 1)

    def on_train_end(self, logs=None):
        if (
            self.save
            and self.complete_on_train_end
            and self.last_saved_epoch is not None
        ):
            self.mark_completed()

    # ------------------------------------------------------------------- write
    def write(self, epochs_completed: int, name=None, extra=None) -> str:
        """Atomically writes a checkpoint after `epochs_completed` epochs.

        Args:
            epochs_completed: epochs trained so far.
            name: the file name. Defaults to `None`: `epoch-<N>.npz`, one of the
                checkpoints `restore()` reads and `keep` prunes; any other name is
                neither (read it with `restore_from`).
            extra: JSON-serialisable dict stored in the header. Defaults to `None`.
        """
        arrays = {}
        for i, variable in enumerate(self.model.variables):
            arrays[f"model/{i:05d}"] = np.asarray(variable.numpy())
        optimizer = getattr(self.model, "optimizer", None)
        for i, variable in enumerate(optimizer.variables if optimizer else []):
            arrays[f"optimizer/{i:05d}"] = np.asarray(variable.numpy())
        callback_states = []
        for c, callback in enumerate(self.track_callbacks):
            if hasattr(callback, "get_state"):
                state = callback.get_state()
            else:
                state = {
                    a: getattr(callback, a)
                    for a in _CALLBACK_ATTRIBUTES
                    if hasattr(callback, a)
                }
            callback_states.append({k: _to_json(v) for k, v in state.items()})
            best_weights = getattr(callback, "best_weights", None)
            for i, weight in enumerate(best_weights or []):
                arrays[f"callback{c}/best_weights/{i:05d}"] = np.asarray(weight)
        header = {
            "epochs_completed": int(epochs_completed),
            "metadata": self.metadata,
            "callbacks": callback_states,
            "extra": extra or {},
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)

        path = os.path.join(self.directory, name or f"epoch-{epochs_completed:05d}.npz")
        os.makedirs(self.directory, exist_ok=True)
        tmp_path = os.path.join(self.directory, f".tmp-{uuid.uuid4().hex}.npz")
        try:
            with open(tmp_path, "wb") as f:
                self._write_arrays(f, arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_path, path)
            _fsync_directory(self.directory)
        finally:
            if os.path.exists(tmp_path):
                os.remove(tmp_path)
        if name is None:
            self.last_saved_epoch = int(epochs_completed)
            for _, old in self.checkpoints()[: -self.keep]:
                os.remove(old)
        return path

    @staticmethod
    def _write_arrays(file, arrays) -> None:
        np.savez(file, **arrays)

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _read(path) -> dict:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        header = json.loads(arrays.pop("header").tobytes().decode())
        header["arrays"] = arrays
        return header

    def _check_metadata(self, saved, path) -> None:
        for key in set(saved) & set(self.metadata):
            if saved[key] != self.metadata[key]:
                raise ValueError(
                    f"Checkpoint {path} belongs to a different run ({key}="
                    f"{saved[key]!r}, this run has {self.metadata[key]!r}). Use another "
                    "--workdir, or delete the old one."
                )

    def _load_state(self, state) -> None:
        arrays = state["arrays"]
        model = self.model
        _assign(model.variables, arrays, "model")
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and any(k.startswith("optimizer/") for k in arrays):
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            _assign(optimizer.variables, arrays, "optimizer")
        # Callbacks reset themselves in `on_train_begin`, so their state is applied
        # in ours (put this callback after them in the list).
        self._pending_callback_states = []
        for c, saved in enumerate(state.get("callbacks", [])):
            prefix = f"callback{c}/best_weights/"
            best = [arrays[k] for k in sorted(arrays) if k.startswith(prefix)]
            self._pending_callback_states.append((saved, best or None))

    def _apply_callback_states(self) -> None:
        pending = getattr(self, "_pending_callback_states", None) or []
        for callback, (saved, best_weights) in zip(self.track_callbacks, pending):
            if hasattr(callback, "set_state"):
                callback.set_state(saved)
            else:
                for attribute, value in saved.items():
                    setattr(callback, attribute, value)
            if best_weights is not None:
                callback.best_weights = best_weights
        self._pending_callback_states = []

    def get_config(self):
        return {
            "directory": self.directory,
            "keep": self.keep,
            "metadata": self.metadata,
            "save": self.save,
            "complete_on_train_end": self.complete_on_train_end,
        }


def _assign(variables, arrays, prefix) -> None:
    values = [arrays[k] for k in sorted(arrays) if k.startswith(prefix + "/")]
    if len(values) != len(variables):
        raise ValueError(
            f"Checkpoint has {len(values)} {prefix} variables, the model has "
            f"{len(variables)}: it was written by a different model."
        )
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != value.shape:
            raise ValueError(
                f"Checkpoint shape {value.shape} does not match variable "
                f"'{variable.path}' of shape {tuple(variable.shape)}."
            )
        variable.assign(value)


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _to_json(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return value  # json.dumps writes Infinity, which json.loads reads back.
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy()).item()
    return value


def _fsync_directory(directory) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
