"""Seeding, deterministic ops and replaying the input pipeline on resume."""

from __future__ import annotations


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras; optionally makes ops deterministic.

    With `deterministic=True` TensorFlow's ops run deterministically
    (`tf.config.experimental.enable_op_determinism`): two runs with the same seed, or
    a run and its resumed copy, give bit-identical weights, at some cost in speed.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def resumable_stream(dataset, initial_epoch: int = 0):
    """Returns `(stream, steps_per_epoch)` for `fit`: the dataset repeated forever,
    with the batches of the first `initial_epoch` epochs skipped.

    Why: a seeded `shuffle(..., reshuffle_each_iteration=True)` draws each epoch's
    order from a seed generator that advances every time an iterator is created, and
    how many iterators `fit` creates per epoch is a Keras implementation detail (two,
    in Keras 3.15). Feeding `fit` one endless stream with `steps_per_epoch` makes
    epoch `k` always the `k`-th pass over the data, so a resumed run that skips the
    passes it already trained on sees exactly the batches the uninterrupted run saw.
    Skipping reads (but does not train on) the skipped batches.

    A dataset of unknown or infinite cardinality is returned as it is, with
    `steps_per_epoch=None`; resuming then replays a different order.
    """
    import tensorflow as tf

    steps = int(dataset.cardinality())
    if (
        steps in (tf.data.UNKNOWN_CARDINALITY, tf.data.INFINITE_CARDINALITY)
        or steps <= 0
    ):
        return dataset, None
    stream = dataset.repeat()
    if initial_epoch:
        stream = stream.skip(int(initial_epoch) * steps)
    return stream, steps
