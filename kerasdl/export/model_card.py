"""The model card: what was trained, on what, how well, with which software."""

from __future__ import annotations

import datetime
import platform


def device_description() -> str:
    """A one-line description of the accelerators (or CPU) TensorFlow sees."""
    import os

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        return f"{len(gpus)} x GPU ({', '.join(sorted(set(names)))})"
    cores = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else (os.cpu_count())
    )
    return f"CPU ({platform.processor() or platform.machine()}, {cores} cores)"


def software_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    import kerasdl

    return {
        "kerasdl": kerasdl.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


def build_model_card(
    *,
    recipe: str,
    config: dict,
    dataset: dict,
    metrics: dict,
    training: dict,
    parameter_count: int,
    signature: dict | None = None,
) -> dict:
    """Assembles the JSON-ready model card written next to every export.

    Args:
        recipe: recipe name, e.g. `"lenet"`.
        config: the resolved configuration (every hyperparameter).
        dataset: name, split sizes, classes, raw input shape and dtype.
        metrics: test (and validation) metrics.
        training: epochs run, seconds, strategy, early stopping, resumption.
        parameter_count: number of model parameters.
        signature: description of the serving signature. Defaults to `None`.
    """
    return {
        "recipe": recipe,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "config": config,
        "dataset": dataset,
        "metrics": metrics,
        "training": training,
        "parameter_count": int(parameter_count),
        "device": device_description(),
        "versions": software_versions(),
        "signature": signature or {},
    }
