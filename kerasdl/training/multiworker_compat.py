"""A compatibility fix that lets `model.fit` run under `MultiWorkerMirroredStrategy`.

Keras 3 (checked up to 3.15.1, with TensorFlow 2.21) cannot `fit` or `evaluate` a
model under a `tf.distribute.MultiWorkerMirroredStrategy` that spans two or more
workers (keras-team/keras#20585). Two calls in
`keras/src/backend/tensorflow/trainer.py` fail:

1. `TensorFlowTrainer._maybe_symbolic_build`, run by `fit` before the first step,
   takes the first distributed batch and calls
   `strategy.reduce("MEAN", (x, y), axis=None)` on it to get a batch to build the
   model from. `Strategy.reduce` does not accept a nest, and the multi-worker
   all-reduce tries to turn the tuple of `PerReplica` values into one tensor:
   `ValueError: Attempt to convert a value (PerReplica:{...}) with an unsupported
   type (...PerReplica...) to a Tensor.`
2. `reduce_per_replica(outputs, strategy, reduction="auto")`, run at the end of
   every compiled train and test step, reduces each scalar metric with
   `strategy.reduce("MEAN", value, axis=0)` when the strategy is multi-worker:
   `ValueError: Invalid reduction dimension 0 for input with 0 dimensions.`

`apply()` replaces those two entry points with thin wrappers that handle only the
multi-worker case and delegate everything else to the original Keras code:

1. The build takes this worker's first local replica's batch (building needs only
   its shapes and dtypes, which every replica shares).
2. Scalars are averaged over all replicas of all workers with
   `strategy.reduce("MEAN", value, axis=None)`, which is what Keras does for
   single-worker `MirroredStrategy`; values with a batch axis keep Keras' own
   reduction.

It is applied by `kerasdl.training.get_strategy("multiworker")`, only for the Keras
versions it was checked against; remove it once Keras fixes #20585.
"""

from __future__ import annotations

import logging

# Newest Keras (major, minor) this fix was checked against. For a newer Keras it is
# not applied: the multi-worker test in tests/training/test_distributed.py tells
# whether the newer Keras still needs it.
CHECKED_UP_TO = (3, 15)

_applied = False


def keras_needs_fix(version: str | None = None) -> bool:
    """Whether Keras `version` (default: the installed one) needs the fix.

    Args:
        version: a Keras version string such as `"3.15.1"`. Defaults to `None`,
            meaning `keras.version()`.
    """
    import keras

    version = version or keras.version()
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        raise ValueError(
            f"Expected a Keras version like '3.15.1'. Received: version={version!r}"
        ) from None
    return (3, 0) <= major_minor <= CHECKED_UP_TO


def apply() -> bool:
    """Installs the fix once per process; returns whether it is installed.

    Safe to call more than once and under any strategy: the wrappers change
    nothing unless the model's strategy is a `MultiWorkerMirroredStrategy`.
    """
    global _applied
    if _applied:
        return True
    import keras

    if keras.backend.backend() != "tensorflow":
        return False  # Only Keras' TensorFlow trainer runs tf.distribute strategies.
    if not keras_needs_fix():
        logging.getLogger(__name__).warning(
            "kerasdl's MultiWorkerMirroredStrategy fix (keras-team/keras#20585) was "
            "checked against Keras 3.0 to %s.%s; running Keras %s without it.",
            *CHECKED_UP_TO,
            keras.version(),
        )
        return False
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or not _is_multi_worker_mirrored(strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = keras.tree.map_structure(
                lambda value: _first_local_value(value, strategy), next(batches)
            )
            break
        return original_build(self, iterator=None, data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not _in_multi_worker_mode(strategy):
            return original_reduce(values, strategy, reduction)

        def reduce(value):
            if _first_local_value(value, strategy).shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original_reduce(value, strategy, reduction)

        return keras.tree.map_structure(reduce, values)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    _applied = True
    return True


def _is_multi_worker_mirrored(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _in_multi_worker_mode(strategy) -> bool:
    # The same test Keras uses to pick its multi-worker reduction.
    return (
        _is_multi_worker_mirrored(strategy)
        and strategy.extended._in_multi_worker_mode()
    )


def _first_local_value(value, strategy):
    import tensorflow as tf

    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value
