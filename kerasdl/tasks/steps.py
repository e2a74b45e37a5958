"""Steps every task shares: open the run, check space, build the optimizer, check data.

A task module (`image_classification.py`, ...) composes these with its own data,
model, evaluation and export steps; see `kerasdl/tasks/__init__.py`.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from kerasdl.tasks.exit_codes import UsageError
from kerasdl.tasks.run_directory import (
    RunDirectory,
    check_free_space,
    check_writable_directory,
)

logger = logging.getLogger(__name__)


class DataError(UsageError):
    """The data holds values a model cannot train or be evaluated on (NaN, inf)."""


def check_config(config) -> None:
    """Every field's own rule (`validation.validate`), then the rules between fields.

    Each task's `run` calls this first, so nothing starts on a bad value.
    """
    from kerasdl.tasks.validation import validate

    validate(config)
    if getattr(config, "model", None) == "transformer" and (
        config.hidden_dim % config.num_heads
    ):
        raise UsageError(
            f"--num-heads {config.num_heads} must divide --hidden-dim "
            f"{config.hidden_dim} (each head gets hidden_dim / num_heads features)"
        )


def training_summary(config, fit_result, strategy=None) -> dict:
    """The model card's `training` section from a `FitResult`."""
    summary = {
        "epochs_run": fit_result.epochs_run,
        "epochs_requested": config.epochs,
        "resumed_from_epoch": fit_result.resumed_from_epoch,
        "early_stopped": fit_result.early_stopped,
        "best_epoch": fit_result.best_epoch,
        "training_seconds": round(fit_result.seconds, 2),
        "fitted_by_an_earlier_process": fit_result.fitted_earlier,
        "workdir": os.path.abspath(os.path.dirname(fit_result.log_path)),
    }
    if strategy is not None:
        from kerasdl.training import describe_strategy

        summary["strategy"] = describe_strategy(strategy)
    return summary


def final_metrics(history: dict) -> dict:
    """`{"final_<metric>": last value}` of a run's per-epoch history."""
    return {
        f"final_{k}": float(v[-1]) for k, v in history.items() if v and k != "epoch"
    }


def open_run(
    config, workdir, *, recipe: str, restart: bool = False, chief: bool = True
) -> RunDirectory:
    """Checks the output directory, opens and locks the workdir, checks the resume.

    Everything here happens before any data is read or model built, so a typo in a
    path or a busy workdir costs nothing. `chief=False` (a multi-worker run's other
    workers) only reads the workdir.
    """
    if chief:
        check_writable_directory(config.output, "--output")
    run_dir = RunDirectory(workdir, recipe=recipe, restart=restart, writer=chief).open()
    try:
        run_dir.check_resume(config, recipe)
    except BaseException:
        run_dir.close()
        raise
    return run_dir


def checkpoint_bytes(model) -> int:
    """Bytes one checkpoint of `model` takes: weights, optimizer slots, best weights."""
    weights = sum(int(np.prod(v.shape)) * _itemsize(v) for v in model.variables)
    optimizer = getattr(model, "optimizer", None)
    # Adam keeps two slots per trainable weight; count them before they are built.
    slots = 2 * sum(
        int(np.prod(v.shape)) * _itemsize(v) for v in model.trainable_variables
    )
    if optimizer is not None and getattr(optimizer, "built", False):
        slots = sum(int(np.prod(v.shape)) * _itemsize(v) for v in optimizer.variables)
    return weights * 2 + slots  # Weights, best weights (early stopping), slots.


def check_space(run_dir: RunDirectory, output_dir: str, model) -> None:
    """Refuses to start when the disks cannot hold the checkpoints and the export.

    The workdir keeps up to four checkpoints at once (two epochs, one being
    written, the final weights); the export is about two copies of the weights.
    """
    one = checkpoint_bytes(model)
    weights = sum(int(np.prod(v.shape)) * _itemsize(v) for v in model.variables)
    check_free_space(run_dir.path, 4 * one + (1 << 20), "checkpoints (--workdir)")
    check_free_space(output_dir, 2 * weights + (8 << 20), "the export (--output)")


def optimizer(
    name: str = "adam",
    learning_rate: float = 1e-3,
    *,
    schedule: str = "constant",
    total_steps: int = 1,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
):
    """Adam, AdamW or SGD with a constant or cosine-decayed (warmed-up) rate.

    Args:
        name: `"adam"`, `"adamw"` or `"sgd"` (with `momentum`).
        learning_rate: the peak learning rate.
        schedule: `"constant"` or `"cosine"` (decays to 0 at `total_steps`).
        total_steps: training steps in all (epochs x steps per epoch).
        warmup_steps: linear warm-up from 0 before the cosine. Defaults to `0`.
        weight_decay: AdamW's decoupled weight decay. Defaults to `0.0`.
        momentum: SGD's momentum. Defaults to `0.9`.
    """
    import keras

    rate = learning_rate
    if schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup_steps else learning_rate,
            decay_steps=max(1, total_steps - warmup_steps),
            warmup_target=learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    if name == "sgd":
        return keras.optimizers.SGD(rate, momentum=momentum)
    if name == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=weight_decay)
    return keras.optimizers.Adam(rate)


def check_finite(dataset, split: str) -> None:
    """Raises `DataError` when a float input of `dataset` holds NaN or infinity.

    Integer and string inputs cannot; they are not read.
    """
    import tensorflow as tf

    spec = dataset.element_spec[0]
    if not (hasattr(spec, "dtype") and spec.dtype.is_floating):
        return
    bad = first = 0
    seen = 0
    for inputs, *_ in dataset:
        values = tf.reshape(tf.cast(inputs, tf.float32), [tf.shape(inputs)[0], -1])
        finite = tf.reduce_all(tf.math.is_finite(values), axis=1).numpy()
        if not finite.all():
            if bad == 0:
                first = seen + int(np.argmin(finite))
            bad += int((~finite).sum())
        seen += len(finite)
    if bad:
        raise DataError(
            f"the {split} split holds {bad} example(s) with NaN or infinite values "
            f"(the first is example {first}); clean the data: a model cannot be "
            "trained or evaluated on them"
        )


def remove_stale_exports(base_dir: str) -> None:
    """Checks that `base_dir`, when it exists, is a writable directory (before any
    work: the export writes there), then removes temporary export directories of
    killed runs in it."""
    from kerasdl.export.signatures import remove_stale_exports as remove

    if os.path.lexists(base_dir):
        check_writable_directory(base_dir, "--output")
    removed = remove(base_dir)
    if removed:
        logger.info("Removed %d unfinished export(s) of killed runs.", len(removed))


def _itemsize(variable) -> int:
    return np.dtype(getattr(variable.dtype, "name", variable.dtype)).itemsize
