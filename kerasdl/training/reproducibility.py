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


def fast_forward(dataset, epochs: int) -> None:
    """Advances a seeded, reshuffling `tf.data` pipeline by `epochs` epochs.

    `Dataset.shuffle(seed=..., reshuffle_each_iteration=True)` draws a new order each
    time an iterator is created, from a seed generator that lives with the dataset.
    `fit` creates one iterator per epoch, so a resumed run must create (and drop)
    one iterator per completed epoch to see the same order in epoch `epochs + 1` as
    the uninterrupted run did. Creating an iterator reads no data.
    """
    for _ in range(int(epochs)):
        iterator = iter(dataset)
        del iterator
