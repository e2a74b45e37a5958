"""Weight penalties `L1`, `L2`, `L1L2` and `OrthogonalRegularizer`, and the
functions that resolve them by name: `get`, `serialize`, `deserialize`."""

import inspect
import math
import numbers

import keras

# The base class is Keras' own, so that `isinstance(r, Regularizer)` holds for
# Keras' regularizers and ours alike.
Regularizer = keras.regularizers.Regularizer

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
        l1: float >= 0, the L1 factor; `None` means `0.0`, as in Keras.
            Defaults to `0.0`.
        l2: float >= 0, the L2 factor; `None` means `0.0`, as in Keras.
            Defaults to `0.0`.

    Example:

    ```python
    layer = keras.layers.Dense(
        64, kernel_regularizer=kerasdl.regularizers.L1L2(l1=1e-5, l2=1e-4)
    )
    ```
    """

    def __init__(self, l1=0.0, l2=0.0):
        # As in Keras, `None` means the default.
        self.l1 = _validate_factor("l1", 0.0 if l1 is None else l1)
        self.l2 = _validate_factor("l2", 0.0 if l2 is None else l2)

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
        l1: float >= 0, the L1 factor; `None` means `0.01`, as in Keras.
            Defaults to `0.01`.

    Example:

    ```python
    layer = keras.layers.Dense(64, kernel_regularizer=kerasdl.regularizers.L1(1e-4))
    ```
    """

    def __init__(self, l1=0.01):
        self.l1 = _validate_factor("l1", 0.01 if l1 is None else l1)

    def __call__(self, x):
        return self.l1 * keras.ops.sum(keras.ops.abs(x))

    def get_config(self):
        return {"l1": self.l1}


@keras.saving.register_keras_serializable(package="kerasdl")
class L2(keras.regularizers.Regularizer):
    """Adds `l2 * Σ w²` to the loss (weight decay, ridge).
    {relation}
    Args:
        l2: float >= 0, the L2 factor; `None` means `0.01`, as in Keras.
            Defaults to `0.01`.

    Example:

    ```python
    # The textbook penalty (λ/2)·‖w‖² with λ = 1e-3 is L2(l2=5e-4).
    layer = keras.layers.Dense(64, kernel_regularizer=kerasdl.regularizers.L2(5e-4))
    ```
    """

    def __init__(self, l2=0.01):
        self.l2 = _validate_factor("l2", 0.01 if l2 is None else l2)

    def __call__(self, x):
        return self.l2 * keras.ops.sum(keras.ops.square(x))

    def get_config(self):
        return {"l2": self.l2}


@keras.saving.register_keras_serializable(package="kerasdl")
class OrthogonalRegularizer(keras.regularizers.Regularizer):
    """Pushes the rows (or columns) of a matrix towards being orthogonal.

    The penalty is `factor` times the mean absolute cosine similarity between
    two different rows (`mode="rows"`) or columns (`mode="columns"`):
    `factor * Σ_{i≠j} |cos(v_i, v_j)| / (n * (n - 1))` over the `n` vectors.
    It is 0 when the vectors are mutually orthogonal and `factor` when they
    are all parallel; their lengths do not matter. On a `Dense` kernel of
    shape `(input_dim, units)`, `"columns"` decorrelates the units' weight
    vectors, `"rows"` the input features' fan-out. A single vector (or a zero
    one, whose cosine counts as 0) adds no penalty. Same penalty and
    arguments as `keras.regularizers.OrthogonalRegularizer`, with finite
    gradients at zero rows.

    Args:
        factor: float >= 0, the weight of the penalty. Defaults to `0.01`.
        mode: `"rows"` or `"columns"`, the vectors to decorrelate. Defaults
            to `"rows"`.

    Example:

    ```python
    layer = keras.layers.Dense(
        16,
        kernel_regularizer=kerasdl.regularizers.OrthogonalRegularizer(
            factor=0.01, mode="columns"
        ),
    )
    ```
    """

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _validate_factor("factor", factor)
        if mode not in ("rows", "columns"):
            # Keras' wording, which its tests compare whole.
            raise ValueError(
                "Invalid value for argument `mode`. Expected one of "
                f'{{"rows", "columns"}}. Received: mode={mode}'
            )
        self.mode = mode

    def __call__(self, x):
        x = keras.ops.convert_to_tensor(x)
        if len(x.shape) != 2:
            raise ValueError(
                "Inputs to OrthogonalRegularizer must have rank 2. "
                f"Received: inputs.shape={tuple(x.shape)}"
            )
        if self.mode == "columns":
            x = keras.ops.transpose(x)
        n = x.shape[0]  # (n, dim): the vectors to decorrelate, one per row
        if n is None or n < 2:
            return keras.ops.zeros((), dtype=x.dtype)
        # Unit rows: x / max(|x|, epsilon), with the maximum taken before the
        # square root so that a zero row has a finite gradient.
        epsilon = keras.config.epsilon()
        squared_norms = keras.ops.sum(keras.ops.square(x), axis=1, keepdims=True)
        unit = x * keras.ops.rsqrt(keras.ops.maximum(squared_norms, epsilon**2))
        cosines = keras.ops.matmul(unit, keras.ops.transpose(unit))  # (n, n)
        off_diagonal = cosines * (1.0 - keras.ops.eye(n, dtype=x.dtype))
        return self.factor * keras.ops.sum(keras.ops.abs(off_diagonal)) / (n * (n - 1))

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


L1L2.__doc__ = L1L2.__doc__.format(relation=_RELATION_TO_WEIGHT_DECAY)
L2.__doc__ = L2.__doc__.format(relation=_RELATION_TO_WEIGHT_DECAY)

_BY_NAME = {
    "l1": L1,
    "l2": L2,
    "l1l2": L1L2,
    "l1_l2": L1L2,
    "orthogonal_regularizer": OrthogonalRegularizer,
    "regularizer": Regularizer,
    "L1": L1,
    "L2": L2,
    "L1L2": L1L2,
    "OrthogonalRegularizer": OrthogonalRegularizer,
    "Regularizer": Regularizer,
}


def serialize(regularizer):
    """Returns the config dict of `regularizer`, as `keras.regularizers.serialize`.

    Args:
        regularizer: a regularizer instance.

    Returns:
        A JSON-ready dict that `deserialize` (or `keras.regularizers.get`)
        turns back into an equal regularizer.
    """
    return keras.saving.serialize_keras_object(regularizer)


def deserialize(config, custom_objects=None):
    """Builds a regularizer from a config, resolving short names to kerasdl's.

    Args:
        config: a dict as written by `serialize`: either a full one, naming
            its module or registered name (any library's regularizer, rebuilt
            as that class), or a short `{"class_name": "L2", "config": {...}}`,
            whose built-in class names (`"L1"`, `"L2"`, `"L1L2"`,
            `"OrthogonalRegularizer"`) resolve to the kerasdl classes; or one
            of the names `get` accepts.
        custom_objects: optional dict of names to classes, for regularizers
            that are neither built in nor registered. Defaults to `None`.

    Returns:
        A regularizer instance.
    """
    if isinstance(config, str):
        return get(config)
    if not isinstance(config, dict):
        raise TypeError(
            "Could not deserialize a regularizer: expected a config dict or a "
            f"name. Received: config={config!r}"
        )
    if config.get("module") or config.get("registered_name"):
        # A full config names its class: honour it, whichever library.
        return keras.saving.deserialize_keras_object(
            config, custom_objects=custom_objects
        )
    class_name = config.get("class_name")
    if class_name in _BY_NAME and class_name not in (custom_objects or {}):
        return _BY_NAME[class_name].from_config(config.get("config") or {})
    return keras.regularizers.deserialize(config, custom_objects=custom_objects)


def get(identifier):
    """Resolves a regularizer from a name, a config dict, a class or an instance.

    Works like `keras.regularizers.get`, but names and class names resolve to
    the kerasdl classes.

    Args:
        identifier: one of `None` (returns `None`); a name, `"l1"`, `"l2"`,
            `"l1l2"` (or `"l1_l2"`), `"orthogonal_regularizer"`, or a class
            name `"L1"`, `"L2"`, `"L1L2"`, `"OrthogonalRegularizer"` (returns
            an instance with default arguments); a config dict, as
            `deserialize` takes; a regularizer class (returns an instance with
            default arguments); a `keras.regularizers.Regularizer` or any
            callable (returned as is).

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
        return deserialize(identifier)
    if inspect.isclass(identifier):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(
        "Could not interpret a regularizer: expected a name, a config dict, "
        f"or a callable. Received: identifier={identifier!r}"
    )
