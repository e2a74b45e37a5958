"""The fit step every task shares: `model.fit` that resumes, and never runs twice.

`fit(model, train, validation, run_dir=..., ...)` trains with early stopping on
`val_loss` (best weights restored), a stop on a non-finite loss, CSV and TensorBoard
logs and epoch-end checkpoints (`ResumableCheckpoint`). When `fit` is over it writes
the weights to export as `checkpoints/final.npz` and marks the run *fitted*: a rerun
of a run killed or failed after that point (evaluation, a full disk, an export error)
loads those weights and skips training. A run killed during training resumes from
its last epoch-end checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import time

from kerasdl.tasks.exit_codes import UsageError
from kerasdl.tasks.run_directory import check_writable_directory

logger = logging.getLogger(__name__)

LOG_FILE = "training_log.csv"


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message says what was kept."""


@dataclasses.dataclass
class FitResult:
    """What the fit step leaves.

    Attributes:
        history: per-epoch logs of the whole run (`{"epoch": [1, 2, ...],
            "loss": [...], ...}`), earlier processes' epochs included, read back
            from the CSV log (`kerasdl.plots.read_history`).
        epochs_run: epochs trained in all.
        best_epoch: 1-based epoch whose weights were kept, `None` if nothing was
            monitored.
        early_stopped: whether early stopping ended the run.
        resumed_from_epoch: epochs already done when this process started.
        seconds: time spent in `fit` by this process.
        fitted_earlier: `True` when an earlier process had finished `fit` and this
            one only loaded the final weights.
        log_path: the CSV log.
    """

    history: dict
    epochs_run: int
    best_epoch: int | None
    early_stopped: bool
    resumed_from_epoch: int
    seconds: float
    fitted_earlier: bool
    log_path: str


def fit(
    model,
    train,
    validation,
    *,
    run_dir,
    epochs: int,
    patience: int,
    verbose="auto",
    chief: bool = True,
    extra_callbacks=(),
    after_fit: str = "evaluating and exporting only",
) -> FitResult:
    """Fits `model` (compiled) in `run_dir`, resuming whatever an earlier run left.

    Args:
        model: a compiled Keras model.
        train: the training `tf.data.Dataset` (seeded, reshuffled each epoch).
        validation: the validation `tf.data.Dataset`.
        run_dir: the run's opened `kerasdl.tasks.RunDirectory`.
        epochs: the most epochs to run. More than an earlier run of this workdir
            asked for continues it (the learning-rate schedule is rebuilt by the
            caller over the new total); fewer than it already trained is refused.
        patience: epochs without a `val_loss` improvement before stopping.
        verbose: `model.fit`'s verbosity (`"auto"`, 0, 1, 2 or their strings).
        chief: whether this process writes checkpoints and logs (multi-worker).
            Defaults to `True`.
        extra_callbacks: more callbacks, run before the checkpoint. Defaults to `()`.
        after_fit: what the run does next with a finished fit's weights, for the
            line printed when it loads them. Defaults to `"evaluating and
            exporting only"`.

    Returns:
        A `FitResult`.

    Raises:
        TrainingDivergedError: the loss became NaN or infinite.
        UsageError: `epochs` is below the epochs this workdir already trained,
            the model's `steps_per_execution` does not divide an epoch, or the
            workdir's training log or TensorBoard folder is unusable.

    Example:

    ```python
    with RunDirectory("runs/x", recipe="x") as run_dir:
        run_dir.check_resume(config)
        result = fit(model, train, validation, run_dir=run_dir, epochs=10, patience=3)
    ```
    """
    import keras

    from kerasdl.callbacks.early_stopping import EarlyStopping
    from kerasdl.callbacks.resumable_checkpoint import ResumableCheckpoint
    from kerasdl.callbacks.terminate_on_non_finite_loss import (
        NonFiniteLossError,
        TerminateOnNonFiniteLoss,
    )
    from kerasdl.training import resumable_stream
    from kerasdl.training.tensorboard import tensorboard_callbacks

    early_stopping = EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True, verbose=1
    )
    checkpoint = ResumableCheckpoint(
        run_dir.checkpoints,
        metadata={"recipe": run_dir.recipe},
        track_callbacks=[early_stopping],
        save=chief,
        complete_on_train_end=False,
    )
    log_path = run_dir.file(LOG_FILE)
    record = run_dir.read_record().get("fit", {})

    header = None
    if run_dir.phase == "fitted":
        done = int(record.get("epochs_run", 0))
        if record.get("early_stopped") or epochs <= done:
            _check_epochs(epochs, done, run_dir)
            header = _restore_final(checkpoint, run_dir, model)
        else:
            print(f"Continuing this run from epoch {done} to --epochs {epochs}.")
        if header is not None:
            print(
                f"Training of this run finished earlier ({done} epochs); loaded its "
                "final weights from "
                f"{run_dir.final_checkpoint}: {after_fit}."
            )
            info = header.get("extra", {})
            return FitResult(
                history=_read_log(log_path),
                epochs_run=done,
                best_epoch=info.get("best_epoch"),
                early_stopped=bool(info.get("early_stopped")),
                resumed_from_epoch=done,
                seconds=0.0,
                fitted_earlier=True,
                log_path=log_path,
            )

    initial_epoch = checkpoint.restore(model)
    _check_epochs(epochs, initial_epoch, run_dir)
    if initial_epoch:
        _read_log(log_path)  # Before any training: its epochs are kept.
        print(f"Resuming from {run_dir.path} after epoch {initial_epoch}.")
        _truncate_log(log_path, initial_epoch)
    callbacks = [TerminateOnNonFiniteLoss(), early_stopping, *extra_callbacks]
    if chief:
        callbacks.append(keras.callbacks.CSVLogger(log_path, append=initial_epoch > 0))
        logs = check_writable_directory(run_dir.file("tensorboard"), "--workdir")
        callbacks += tensorboard_callbacks(logs)
    callbacks.append(checkpoint)  # Last: it saves the state the others just updated.

    start = time.perf_counter()
    # An earlier process may have stopped early, or trained every epoch, and been
    # killed before `final.npz`: then there is nothing left to fit.
    stopped = initial_epoch and (
        initial_epoch >= epochs or _stopped_early(checkpoint, early_stopping)
    )
    if stopped:
        checkpoint.restore_callbacks()
        if early_stopping.best_weights is not None:
            model.set_weights(early_stopping.best_weights)
        epochs_run = initial_epoch
    else:
        # One endless stream: epoch k is always the k-th pass over the shuffled data.
        stream, steps_per_epoch = resumable_stream(train, initial_epoch)
        _check_steps_per_execution(model, steps_per_epoch)
        try:
            history = model.fit(
                stream,
                steps_per_epoch=steps_per_epoch,
                validation_data=validation,
                epochs=epochs,
                initial_epoch=initial_epoch,
                callbacks=callbacks,
                shuffle=False,  # The tf.data pipeline shuffles each epoch.
                verbose=fit_verbose(verbose),
            )
        except NonFiniteLossError as error:
            raise TrainingDivergedError(_diverged_message(error, checkpoint)) from None
        epochs_run = initial_epoch + len(history.epoch)
    seconds = time.perf_counter() - start

    best_epoch = None if early_stopping.best is None else early_stopping.best_epoch + 1
    early_stopped = bool(early_stopping.stopped_epoch) or (
        bool(stopped) and initial_epoch < epochs
    )
    details = {
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "early_stopped": early_stopped,
    }
    if chief:
        checkpoint.write(
            epochs_run, name=os.path.basename(run_dir.final_checkpoint), extra=details
        )
        run_dir.mark_fitted(**details)
    return FitResult(
        history=_read_log(log_path),
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        early_stopped=early_stopped,
        resumed_from_epoch=initial_epoch,
        seconds=seconds,
        fitted_earlier=False,
        log_path=log_path,
    )


def fit_verbose(value) -> str | int:
    """A config's `verbose` value as `model.fit` takes it: `"auto"`, or 0, 1, 2."""
    return value if value == "auto" else int(value)


def _read_log(path) -> dict:
    """`read_history(path)`; `UsageError` naming the file when it cannot be read."""
    from kerasdl.plots import read_history

    try:
        return read_history(path)
    except (TypeError, ValueError, csv.Error) as error:
        raise UsageError(
            f"{path} is not a readable training log ({error}); repair or remove it "
            "to go on (the earlier epochs' history goes with it), or pass --restart"
        ) from None


def _truncate_log(path, epochs: int) -> None:
    """Drops CSV rows of epochs after `epochs` (a kill between a row and its
    checkpoint would otherwise leave that epoch twice)."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) <= epochs + 1:
        return
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows[: epochs + 1])


def _restore_final(checkpoint, run_dir, model) -> dict | None:
    """Loads `final.npz` into `model`; returns its header, or `None` when it is
    unreadable (then the epoch-end checkpoints rebuild the same weights)."""
    try:
        return checkpoint.restore_from(run_dir.final_checkpoint, model)
    except Exception as error:  # noqa: BLE001 -- any corruption: use the epochs.
        logger.warning(
            "Skipping unreadable final weights %s (%s); resuming from the "
            "epoch-end checkpoints instead.",
            run_dir.final_checkpoint,
            error,
        )
        return None


def _check_steps_per_execution(model, steps_per_epoch) -> None:
    """Refuses a `steps_per_execution` that does not divide the epoch's batches:
    on the endless stream a compiled call would run on past the epoch's end, so
    every epoch would train on more batches than it holds."""
    per_call = int(getattr(model, "steps_per_execution", 1) or 1)
    if steps_per_epoch and steps_per_epoch % per_call:
        divisor = max(d for d in range(1, per_call) if steps_per_epoch % d == 0)
        raise UsageError(
            f"--steps-per-execution {per_call} must divide the training batches "
            f"per epoch ({steps_per_epoch}); pass a divisor of {steps_per_epoch}, "
            f"e.g. {divisor}"
        )


def _check_epochs(epochs, done, run_dir) -> None:
    if epochs < done:
        raise UsageError(
            f"--epochs {epochs} is fewer than the {done} epochs the run in "
            f"{run_dir.path} already trained; pass --epochs {done} or more to "
            "finish it, or --restart for a new run"
        )


def _stopped_early(checkpoint, early_stopping) -> bool:
    states = checkpoint.restored_callback_states
    if not states:
        return False
    state = states[0]
    return bool(state.get("stopped_epoch")) or (
        state.get("wait", 0) >= early_stopping.patience > 0
    )


def _diverged_message(error, checkpoint) -> str:
    saved = checkpoint.checkpoints()
    if saved:
        epoch, path = saved[-1]
        kept = (
            f"the last good checkpoint (after epoch {epoch}, {path}) is kept; "
            "nothing was exported. Lower --learning-rate and pass --restart, or "
            "rerun to retry from that checkpoint"
        )
    else:
        kept = (
            "no epoch finished with finite values, so there is no checkpoint to "
            "resume from and nothing was exported. Lower --learning-rate"
        )
    return f"{error} {kept}."
