"""Deep multilayer perceptron: `depth` dense hidden layers, optional identity shortcuts."""

import numbers

import keras

from kerasdl.layers.attention._initializers import clone_initializer
from kerasdl.models.common import ModelSpec
from kerasdl.models.registry import register_model


@register_model("mlp")
def mlp(
    input_shape,
    num_classes,
    *,
    depth=3,
    width=256,
    activation="relu",
    initializer="glorot_uniform",
    normalization=None,
    residual=False,
    dropout=0.0,
    weight_decay=0.0,
    rescale=None,
    input_dtype="float32",
    name="mlp",
    layer_library="kerasdl",
):
    """MLP: flatten, `depth` hidden dense layers, a softmax classifier.

    Hidden layer `k` (1-based) is built from layers with fixed names, so that a
    study can read every layer's pre- and post-activation values:

    ```
    images (input_shape)   -> rescale (if `rescale`) -> flatten    (B, D)
    hidden_k        Dense(width_k), no bias when normalized    # (B, width_k)
    hidden_k_norm   normalization (if `normalization`)
    hidden_k_add    + the layer's input (if `residual` and the
                    previous hidden layer has the same width)
    activation_k    Activation(activation): the hidden layer's output
    hidden_k_dropout  Dropout (if `dropout > 0`)
    logits -> probabilities (float32 softmax)
    ```

    `model.get_layer(f"activation_{k}").output` is always hidden layer `k`'s
    post-activation output (after the shortcut, before dropout), and
    `model.get_layer(f"hidden_{k}")` its dense layer (`.kernel`, `.bias`), whether
    or not the layer is normalized or residual. One model that returns every
    hidden activation:

    ```python
    model = kerasdl.models.mlp((28, 28, 1), 10, depth=5, width=128)
    probe = keras.Model(
        model.input,
        [model.get_layer(f"activation_{k}").output for k in range(1, 6)],
    )
    ```

    With `residual=True`, hidden layer `k >= 2` whose width equals layer `k - 1`'s
    computes `activation(norm(dense(x)) + x)` (the ResNet v1 order: the shortcut is
    added before the activation). The first hidden layer, and any layer whose width
    differs from the one before, has no shortcut: shortcuts are identities only,
    never projections.

    Args:
        input_shape: shape of one example without the batch axis, any rank, e.g.
            `(28, 28, 1)` images or `(64,)` features; flattened before the first
            hidden layer.
        num_classes: number of classes.
        depth: number of hidden layers, >= 1. Defaults to `3`.
        width: units of every hidden layer (an int), or one int per hidden layer
            (a sequence of length `depth`). Defaults to `256`.
        activation: hidden activation, a name or callable. Defaults to `"relu"`.
        initializer: initializer of every dense kernel (hidden layers and
            logits): a name (`"glorot_uniform"`, `"he_normal"`, `"zeros"`,
            `"constant"` = Keras' `Constant(0.0)`, ...), a config dict, or a
            `keras.initializers.Initializer` (e.g. `Constant(0.1)`). Each layer
            gets its own copy, so an unseeded random initializer draws different
            values per layer and a seeded one a seed derived per layer. Biases
            start at zero. Defaults to `"glorot_uniform"` (Keras' `Dense` default).
        normalization: `"batch"`, `"layer"`, `"group"`, `"instance"` (the same as
            `"layer"` on dense features) or `None`, between each hidden dense
            layer and its activation (see `kerasdl.models.common`). Defaults to
            `None`.
        residual: add identity shortcuts between consecutive hidden layers of equal
            width. Defaults to `False`.
        dropout: dropout rate after each hidden activation. Defaults to `0.0`.
        weight_decay: L2 coefficient on every dense kernel. Defaults to `0.0`.
        rescale: factor of a leading `Rescaling` layer. Defaults to `None`.
        input_dtype: dtype of the `Input`. Defaults to `"float32"`.
        name: model name. Defaults to `"mlp"`.
        layer_library: `"kerasdl"` or `"keras"`. Defaults to `"kerasdl"`.

    Returns:
        A Functional `keras.Model` mapping inputs to class probabilities.

    Reference:
        Zhang et al., "Dive into Deep Learning", sections 5.1 and 5.4
        (multilayer perceptrons; initialization and symmetry).
    """
    input_shape = _validate_input_shape(input_shape)
    widths = _resolve_widths(depth, width)
    initializer = keras.initializers.get(initializer)
    # ModelSpec validates the shared options; it checks image shapes, which an MLP
    # does not need, so it gets a stand-in shape and the MLP makes its own input.
    spec = ModelSpec(
        (1, 1, 1),
        num_classes,
        normalization=normalization,
        dropout=dropout,
        weight_decay=weight_decay,
        rescale=rescale,
        input_dtype=input_dtype,
        activation=activation,
        layer_library=layer_library,
    )

    # Input.
    inputs = keras.Input(input_shape, dtype=input_dtype, name="images")
    x = inputs
    if rescale is not None:
        x = keras.layers.Rescaling(rescale, name="rescale")(x)
    x = keras.layers.Flatten(name="flatten")(x)  # (B, prod(input_shape))

    # Hidden layers.
    for k, units in enumerate(widths, start=1):
        shortcut = x
        x = spec.dense(
            units,
            use_bias=normalization is None,
            kernel_initializer=clone_initializer(initializer, f"hidden_{k}"),
            name=f"hidden_{k}",
        )(x)  # (B, units)
        norm = spec.norm(units, rank=2, name=f"hidden_{k}_norm")
        if norm is not None:
            x = norm(x)
        if residual and k > 1 and widths[k - 2] == units:
            x = keras.layers.Add(name=f"hidden_{k}_add")([shortcut, x])
        x = keras.layers.Activation(activation, name=f"activation_{k}")(x)
        dropout_layer = spec.dropout_layer(name=f"hidden_{k}_dropout")
        if dropout_layer is not None:
            x = dropout_layer(x)

    # Classifier.
    x = spec.dense(
        spec.num_classes,
        kernel_initializer=clone_initializer(initializer, "logits"),
        name="logits",
    )(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(
        x
    )
    return keras.Model(inputs, outputs, name=name)


def _validate_input_shape(input_shape):
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = None
    if not shape or min(shape) < 1:
        raise ValueError(
            "`input_shape` must be a non-empty tuple of positive sizes, e.g. "
            f"(28, 28, 1) or (64,). Received: input_shape={input_shape}"
        )
    return shape


def _resolve_widths(depth, width):
    if not _is_positive_int(depth):
        raise ValueError(f"`depth` must be an integer >= 1. Received: depth={depth!r}")
    widths = (width,) * depth if isinstance(width, numbers.Integral) else width
    try:
        widths = tuple(widths)
    except TypeError:
        widths = ()
    if len(widths) != depth or not all(_is_positive_int(w) for w in widths):
        raise ValueError(
            "`width` must be a positive integer or a sequence of `depth` positive "
            f"integers. Received: width={width!r}, depth={depth}"
        )
    return tuple(int(w) for w in widths)


def _is_positive_int(value):
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and value >= 1
    )
