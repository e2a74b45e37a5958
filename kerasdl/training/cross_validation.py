"""Stratified, seeded k-fold cross-validation of a Keras model builder."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence

import numpy as np

# `fit` arguments that `cross_validate` sets itself for every fold.
_RESERVED_FIT_ARGUMENTS = ("x", "y", "validation_data", "validation_split")


@dataclasses.dataclass
class CrossValidationResult:
    """What `cross_validate` measured: one dict of metrics per fold.

    Attributes:
        fold_metrics: per fold, `{metric name: value}` from `model.evaluate` on the
            fold's validation part, e.g. `[{"loss": 0.3, "accuracy": 0.91}, ...]`.
        fold_indices: per fold, `(train_indices, validation_indices)` into `x`.
        histories: per fold, the `History.history` dict of `model.fit`.
        seed: the seed the folds and the models were drawn with.
    """

    fold_metrics: list[dict[str, float]]
    fold_indices: list[tuple[np.ndarray, np.ndarray]]
    histories: list[dict[str, list[float]]]
    seed: int | None

    @property
    def folds(self) -> int:
        return len(self.fold_metrics)

    @property
    def metric_names(self) -> list[str]:
        return list(self.fold_metrics[0]) if self.fold_metrics else []

    @property
    def mean(self) -> dict[str, float]:
        """The mean of each metric over the folds."""
        return {name: float(np.mean(self._values(name))) for name in self.metric_names}

    @property
    def std(self) -> dict[str, float]:
        """The standard deviation of each metric over the folds (`np.std`, ddof=0,
        as scikit-learn's `cross_val_score` examples report it)."""
        return {name: float(np.std(self._values(name))) for name in self.metric_names}

    def summary(self, precision: int = 2) -> str:
        """One line, e.g. `"loss 0.25 ± 0.03, accuracy 0.93 ± 0.01"`."""
        mean, std = self.mean, self.std
        return ", ".join(
            f"{name} {mean[name]:.{precision}f} ± {std[name]:.{precision}f}"
            for name in self.metric_names
        )

    def _values(self, name):
        return np.array([fold[name] for fold in self.fold_metrics], dtype="float64")


def cross_validate(
    build_model: Callable,
    x,
    y,
    *,
    folds: int = 5,
    seed: int | None = 0,
    fit_kwargs: Mapping | None = None,
    metrics: Sequence[str] | None = None,
) -> CrossValidationResult:
    """Trains and evaluates a fresh model on each fold of a stratified k-fold split.

    The folds come from scikit-learn's
    `StratifiedKFold(folds, shuffle=True, random_state=seed)` on the class labels
    (`y` itself, or its argmax when `y` is one-hot), so every fold's validation part
    has (to within one example) the dataset's class proportions. For each fold:

    1. `keras.utils.set_random_seed(seed)` (unless `seed` is `None`), so every fold's
       model starts from the same seeded state, as scikit-learn clones an estimator
       with a fixed `random_state`;
    2. `model = build_model()`, which must return a new compiled model;
    3. `model.fit(x[train], y[train], validation_data=(x[val], y[val]), **fit_kwargs)`;
    4. `model.evaluate(x[val], y[val], return_dict=True)`.

    The same `seed` gives the same folds and, on a deterministic backend, the same
    metrics.

    Args:
        build_model: a function of no arguments returning a compiled `keras.Model`.
        x: inputs, an array (or a list/tuple/dict of arrays) with examples on the
            first axis.
        y: integer class labels `(n,)` or one-hot labels `(n, classes)`.
        folds: number of folds, at least 2 and at most the size of the smallest
            class. Defaults to `5`.
        seed: seed of the fold assignment and of each fold's model. `None` draws
            both at random. Defaults to `0`.
        fit_kwargs: further `model.fit` arguments, e.g.
            `{"epochs": 10, "batch_size": 32, "verbose": 0}`; `batch_size` is also
            used by `evaluate`. Defaults to `None` (Keras' defaults).
        metrics: names of the `evaluate` results to keep, e.g. `["accuracy"]`.
            Defaults to `None` (all: the loss and every compiled metric).

    Returns:
        A `CrossValidationResult` with per-fold metrics, their `mean`, `std` and a
        `summary()` line.

    Raises:
        ValueError: `folds` < 2 or larger than the smallest class, `x` and `y` of
            different lengths, labels that are not class labels, a reserved
            `fit_kwargs` key, an unknown metric name, or `build_model` returning an
            uncompiled model.

    Example:

    ```python
    def build_model():
        model = kerasdl.models.mlp((64,), 10, depth=2, width=64)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    result = kerasdl.training.cross_validate(
        build_model, x, y, folds=5, fit_kwargs={"epochs": 5, "verbose": 0}
    )
    print(result.summary())  # loss 0.21 ± 0.03, accuracy 0.94 ± 0.01
    ```
    """
    import keras
    from sklearn.model_selection import StratifiedKFold

    fit_kwargs = dict(fit_kwargs or {})
    labels = _class_labels(y)
    num_examples = _num_examples(x)
    if num_examples != len(labels):
        raise ValueError(
            "`x` and `y` must hold the same number of examples. Received: "
            f"{num_examples} inputs and {len(labels)} labels"
        )
    if isinstance(folds, bool) or not isinstance(folds, numbers.Integral) or folds < 2:
        raise ValueError(f"`folds` must be an integer >= 2. Received: folds={folds!r}")
    classes, counts = np.unique(labels, return_counts=True)
    if folds > counts.min():
        smallest = classes[np.argmin(counts)]
        raise ValueError(
            "`folds` must be at most the number of examples of the smallest class "
            f"(class {smallest!r} has {counts.min()}), so that every fold holds "
            f"every class. Received: folds={folds}"
        )
    reserved = sorted(set(fit_kwargs) & set(_RESERVED_FIT_ARGUMENTS))
    if reserved:
        raise ValueError(
            "`fit_kwargs` may not set the arguments `cross_validate` sets for every "
            f"fold {_RESERVED_FIT_ARGUMENTS}. Received: {reserved}"
        )

    splitter = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    result = CrossValidationResult([], [], [], seed)
    for train_index, val_index in splitter.split(np.zeros(len(labels)), labels):
        if seed is not None:
            keras.utils.set_random_seed(int(seed))
        model = build_model()
        if not getattr(model, "compiled", False):
            raise ValueError(
                "`build_model` must return a compiled model (call `model.compile` "
                f"inside it). Received: an uncompiled {type(model).__name__}"
            )
        x_train, y_train = _take(x, train_index), np.asarray(y)[train_index]
        x_val, y_val = _take(x, val_index), np.asarray(y)[val_index]
        history = model.fit(
            x_train, y_train, validation_data=(x_val, y_val), **fit_kwargs
        )
        scores = model.evaluate(
            x_val,
            y_val,
            batch_size=fit_kwargs.get("batch_size"),
            return_dict=True,
            verbose=0,
        )
        result.fold_metrics.append(_select(scores, metrics))
        result.fold_indices.append((train_index, val_index))
        result.histories.append(dict(history.history))
    return result


def _class_labels(y):
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot
        labels = labels.argmax(axis=1)
    elif labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            "`y` must be class labels (n,) or one-hot labels (n, classes). "
            f"Received: y of shape {np.shape(y)}"
        )
    return labels


def _num_examples(x):
    if isinstance(x, Mapping):
        lengths = {len(v) for v in x.values()}
    elif _is_input_list(x):
        lengths = {len(v) for v in x}
    else:
        lengths = {len(np.asarray(x))}
    if len(lengths) != 1:
        raise ValueError(
            "Every input array in `x` must hold the same number of examples. "
            f"Received lengths: {sorted(lengths)}"
        )
    return lengths.pop()


def _take(data, index):
    if isinstance(data, Mapping):
        return {key: np.asarray(value)[index] for key, value in data.items()}
    if _is_input_list(data):
        return type(data)(value[index] for value in data)
    return np.asarray(data)[index]


def _is_input_list(data):
    """A list or tuple of arrays (a multi-input model's `x`), not one nested list."""
    return isinstance(data, (list, tuple)) and all(
        isinstance(value, np.ndarray) for value in data
    )


def _select(scores, metrics):
    # The loss first, then the compiled metrics (`evaluate` sorts them by name).
    names = sorted(scores, key=lambda name: name != "loss")
    scores = {name: float(scores[name]) for name in names}
    if metrics is None:
        return scores
    unknown = [name for name in metrics if name not in scores]
    if unknown:
        raise ValueError(
            f"Unknown metric name(s) {unknown}: `evaluate` returned {sorted(scores)}. "
            f"Received: metrics={list(metrics)}"
        )
    return {name: scores[name] for name in metrics}
