"""Deterministic, stratified train/validation/test splits of in-memory arrays."""

import numpy as np


def stratified_split(labels, fractions=(0.7, 0.15, 0.15), seed=0):
    """Splits example indices into parts with the same class proportions.

    Within each class the indices are permuted with `seed` and cut by
    `fractions` (rounded per class; the first part takes the remainder); each
    part is then shuffled so that classes are interleaved.

    Args:
        labels: 1-D integer array of class labels.
        fractions: fraction of each part, summing to 1. Defaults to
            `(0.7, 0.15, 0.15)`.
        seed: random seed. Defaults to `0`.

    Returns:
        A tuple of index arrays, one per fraction, disjoint and covering all examples.
    """
    labels = np.asarray(labels)
    fractions = np.asarray(fractions, dtype=np.float64)
    if labels.ndim != 1:
        raise ValueError(f"`labels` must be 1-D. Received shape {labels.shape}")
    if np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(
            f"`fractions` must be non-negative and sum to 1. Received: {tuple(fractions)}"
        )
    rng = np.random.default_rng(seed)
    parts = [[] for _ in fractions]
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))
        sizes = np.round(fractions[1:] * len(indices)).astype(int)
        bounds = np.cumsum([len(indices) - sizes.sum(), *sizes])
        for part, chunk in zip(parts, np.split(indices, bounds[:-1])):
            part.append(chunk)
    return tuple(rng.permutation(np.concatenate(part)) for part in parts)
