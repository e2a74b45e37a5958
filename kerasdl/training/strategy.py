"""Choosing a `tf.distribute` strategy from a command-line name."""

from __future__ import annotations

import json
import os

from kerasdl.training import multiworker_compat

STRATEGIES = ("auto", "default", "mirrored", "multiworker")


def get_strategy(name: str = "auto"):
    """Returns the `tf.distribute.Strategy` for `name`.

    * `"default"`: the default (single-device) strategy.
    * `"auto"`: `MirroredStrategy` over all GPUs when there are two or more, else the
      default strategy.
    * `"mirrored"`: `MirroredStrategy` over every GPU, or over every logical CPU device
      when there is no GPU (split the CPU into logical devices with
      `tf.config.set_logical_device_configuration` before TensorFlow initializes to
      test data parallelism on a laptop).
    * `"multiworker"`: `MultiWorkerMirroredStrategy`; the cluster and this process'
      role come from the `TF_CONFIG` environment variable, which must be set.

    Raises:
        ValueError: unknown name, or `"multiworker"` without a valid `TF_CONFIG`.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}.")
    if name == "multiworker":  # Before anything initializes TensorFlow's context.
        return _multi_worker_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def _multi_worker_strategy():
    import tensorflow as tf

    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        raise ValueError(
            "--strategy multiworker needs the TF_CONFIG environment variable "
            '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}).'
        )
    try:
        json.loads(tf_config)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
    # Keras' fit/evaluate fail under a multi-worker strategy (keras-team/keras#20585);
    # see kerasdl/training/multiworker_compat.py.
    multiworker_compat.apply()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """Whether this process should write checkpoints, logs and exports.

    True except on the non-chief workers of a multi-worker strategy (worker 0 is the
    chief when the cluster has no explicit "chief" task).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if (
        resolver is None
        or not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)()
    ):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def describe(strategy) -> dict:
    """A JSON-ready description of `strategy` for the model card."""
    import tensorflow as tf

    name = type(strategy).__name__
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Its class is `CollectiveAllReduceStrategy`; report the public name.
        name = "MultiWorkerMirroredStrategy"
    return {
        "name": name,
        "replicas": int(strategy.num_replicas_in_sync),
    }
