"""Weight penalties `L1`, `L2` and `L1L2`, and `get` to resolve them by name."""

import math
import numbers

import keras

_RELATION_TO_WEIGHT_DECAY = """
    Relation to the textbook form and to weight decay: many texts write the
    L2 penalty as `(λ / 2) * Σ w²`, whose gradient is `λ * w`. Here the penalty
    is `l2 * Σ w²`, with gradient `2 * l2 * w`, so `l2 = λ / 2`. Keras adds the
    penalty once per step to the batch-mean loss, so `λ` is relative to that
    mean, not to a sum over the data set.

    With plain SGD (no momentum) and learning rate `lr`, one step is
    `w ← w - lr * (∇loss + 2 * l2 * w) = (1 - 2 * lr * l2) * w - lr * ∇loss`:
    the weights shrink by the factor `1 - 2 * lr * l2` before the gradient
    step. Keras optimizers' decoupled `weight_decay` argument (AdamW, and
    every optimizer that takes it) applies `w ← w - lr * weight_decay * w`
    apart from the gradient, so for plain SGD `weight_decay = 2 * l2` gives
    the same updates; expressed as a per-step decay not multiplied by the
    learning rate, it is `2 * lr * l2`. With momentum or an adaptive
    optimizer (Adam, RMSprop) the two differ: the L2 gradient goes through
    the momentum and the per-weight scaling, so weights with large gradient
    history are decayed less, while decoupled decay shrinks every weight by
    the same factor `1 - lr * weight_decay` (Loshchilov & Hutter, 2019,
    https://arxiv.org/abs/1711.05101).
"""


def _validate_factor(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(
            f"Invalid value for argument `{name}`: expected a finite float >= 0. "
            f"Received: {name}={value!r}"
        )
    return float(value)


@keras.saving.register_keras_serializable(package="kerasdl")
class L1L2(keras.regularizers.Regularizer):
    """Adds `l1 * Σ|w| + l2 * Σ w²` to the loss.

    The L1 term pushes weights to exactly zero (sparse weights, feature
    selection); the L2 term shrinks all weights smoothly towards zero without
    making them sparse. Pass an instance as `kernel_regularizer=` (or
    `bias_regularizer=`, `activity_regularizer=`) of any Keras layer; the
    penalties are collected in `model.losses` and added to the training loss.
    {relation}
    Args:
        l1: float >= 0, the L1 factor. Defaults to `0.0`.
        l2: float >= 0, the L2 factor. Defaults to `0.0`.

    Example:

    ```python
    layer = keras.layers.Dense(
        64, kernel_regularizer=kerasdl.regularizers.L1L2(l1=1e-5, l2=1e-4)
    )
    ```
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _validate_factor("l1", l1)
        self.l2 = _validate_factor("l2", l2)

    def __call__(self, x):
        x = keras.ops.convert_to_tensor(x)
        penalty = keras.ops.zeros((), dtype=x.dtype)
        if self.l1:
            penalty = penalty + self.l1 * keras.ops.sum(keras.ops.abs(x))
        if self.l2:
            penalty = penalty + self.l2 * keras.ops.sum(keras.ops.square(x))
        return penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


@keras.saving.register_keras_serializable(package="kerasdl")
class L1(keras.regularizers.Regularizer):
    """Adds `l1 * Σ|w|` to the loss.

    Its gradient `l1 * sign(w)` has the same size for every nonzero weight,
    so small weights are driven to exactly zero: the solution is sparse.

    Args:
        l1: float >= 0, the L1 factor. Defaults to `0.01`.

    Example:

    ```python
    layer = keras.layers.Dense(64, kernel_regularizer=kerasdl.regularizers.L1(1e-4))
    ```
    """

    def __init__(self, l1=0.01):
        self.l1 = _validate_factor("l1", l1)

    def __call__(self, x):
        return self.l1 * keras.ops.sum(keras.ops.abs(x))

    def get_config(self):
        return {"l1": self.l1}


@keras.saving.register_keras_serializable(package="kerasdl")
class L2(keras.regularizers.Regularizer):
    """Adds `l2 * Σ w²` to the loss (weight decay, ridge).
    {relation}
    Args:
        l2: float >= 0, the L2 factor. Defaults to `0.01`.

    Example:

    ```python
    # The textbook penalty (λ/2)·‖w‖² with λ = 1e-3 is L2(l2=5e-4).
    layer = keras.layers.Dense(64, kernel_regularizer=kerasdl.regularizers.L2(5e-4))
    ```
    """

    def __init__(self, l2=0.01):
        self.l2 = _validate_factor("l2", l2)

    def __call__(self, x):
        return self.l2 * keras.ops.sum(keras.ops.square(x))

    def get_config(self):
        return {"l2": self.l2}


L1L2.__doc__ = L1L2.__doc__.format(relation=_RELATION_TO_WEIGHT_DECAY)
L2.__doc__ = L2.__doc__.format(relation=_RELATION_TO_WEIGHT_DECAY)

_BY_NAME = {
    "l1": L1,
    "l2": L2,
    "l1l2": L1L2,
    "l1_l2": L1L2,
    "L1": L1,
    "L2": L2,
    "L1L2": L1L2,
}


def get(identifier):
    """Resolves a regularizer from a name, a config dict, or an instance.

    Works like `keras.regularizers.get`, but names and class names resolve to
    the kerasdl classes.

    Args:
        identifier: one of `None` (returns `None`); a name, `"l1"`, `"l2"`,
            `"l1_l2"` or a class name `"L1"`, `"L2"`, `"L1L2"` (returns an
            instance with default factors); a dict `{"class_name": ...,
            "config": {...}}` as written by `keras.saving.serialize_keras_object`
            (any registered regularizer, Keras' own included); a
            `keras.regularizers.Regularizer` or any callable (returned as is).

    Returns:
        A regularizer, or `None`.

    Example:

    ```python
    kerasdl.regularizers.get("l2")  # an L2 with l2=0.01
    kerasdl.regularizers.get({"class_name": "L2", "config": {"l2": 1e-4}})
    ```
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(
                "Unknown regularizer name: expected one of "
                f"{sorted(set(_BY_NAME))}. Received: identifier={identifier!r}"
            )
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict):
        if identifier.get("module") or identifier.get("registered_name"):
            # A full config names its class: honour it, whichever library.
            return keras.saving.deserialize_keras_object(identifier)
        if identifier.get("class_name") in _BY_NAME:
            cls = _BY_NAME[identifier["class_name"]]
            return cls.from_config(identifier.get("config", {}))
        return keras.regularizers.get(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(
        "Could not interpret a regularizer: expected a name, a config dict, "
        f"or a callable. Received: identifier={identifier!r}"
    )
