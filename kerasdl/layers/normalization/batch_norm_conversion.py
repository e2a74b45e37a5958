"""Model-level batch norm conversions: freeze for fine-tuning, fold for export.

* `freeze_batch_norm(model)` replaces every batch norm by a
  `FrozenBatchNormalization` with the same weights: the model then computes
  the inference form of batch norm in training too, and `fit` updates no
  statistic.
* `fold_batch_norm(model)` merges each batch norm that directly follows a
  linear `Dense` / convolution into that layer's kernel and bias: one layer
  less per pair, same inference outputs, fewer ops in the exported model
  (TensorFlow's graph optimizer may fuse an inference batch norm into the
  convolution itself; folding does it for every backend and runtime).

They are two functions rather than one with a `fold=` option because they
serve different stages and give models with different contracts: a frozen
model keeps its layer structure and its weights' order and paths (its weights
load back into the original model with `set_weights`, where the batch norms
train again; Keras' `.weights.h5` files name layers by class, so theirs do
not), while a folded model
has new kernels, no batch norm layers left to fine-tune, and is meant to be
exported. `fold_batch_norm(freeze_batch_norm(model))` folds the same pairs
as `fold_batch_norm(model)`, with the same inference outputs; the batch norms
that cannot be folded stay frozen in the first and live in the second.

Both work on Functional and Sequential models (nested ones included) through
`keras.models.clone_model`, and return a new model; the original is left
untouched.
"""

import itertools

import keras
import numpy as np

from kerasdl.layers.normalization.batch_normalization import BatchNormalization
from kerasdl.layers.normalization.frozen_batch_normalization import (
    FrozenBatchNormalization,
)

# Layers whose inference form is the batch norm formula on moving statistics.
_BATCH_NORMS = (keras.layers.BatchNormalization, BatchNormalization)
_ANY_BATCH_NORM = (*_BATCH_NORMS, FrozenBatchNormalization)

# Linear layers a following batch norm can be folded into. Exact classes, not
# subclasses: a subclass may transform its kernel (`StdConv2D` standardizes
# it), and a rescaled kernel would then not rescale the output.
_FOLDABLE = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
)


# ---------------------------------------------------------------------------
# Public functions.
# ---------------------------------------------------------------------------


def freeze_batch_norm(model):
    """Returns a copy of `model` with every batch norm frozen.

    Each `keras.layers.BatchNormalization` and `kerasdl.layers.BatchNormalization`
    becomes a `kerasdl.layers.FrozenBatchNormalization` with the same name,
    dtype policy, axis, epsilon and weights; every other layer is copied with
    its weights. In inference the new model gives the outputs of `model`; in
    training it normalizes with the moving statistics as well, and `fit`
    changes no batch norm weight (the statistics and `gamma` / `beta` are not
    trainable). Nested Functional and Sequential models are converted too.

    Args:
        model: a Functional or Sequential `keras.Model`.

    Returns:
        A new model of the same kind; `model` is not modified.

    Raises:
        ValueError: if `model` is a subclassed model, or if one of its layers
            holds a batch norm inside (a custom layer or subclassed model),
            which cannot be swapped from outside.

    Example:

    ```python
    backbone = keras.applications.ResNet50(weights="imagenet")
    frozen = kerasdl.layers.freeze_batch_norm(backbone)
    frozen.compile("adam", "sparse_categorical_crossentropy")
    frozen.fit(images, labels)  # the batch norm statistics stay as loaded
    ```
    """
    _check_graph_model(model, "freeze_batch_norm")
    copies = []  # (original layer, its clone), to copy weights once built

    def clone_function(layer):
        if _is_graph_model(layer):
            return freeze_batch_norm(layer)  # built, with its weights
        if isinstance(layer, _BATCH_NORMS):
            new = FrozenBatchNormalization(
                axis=layer.axis,
                epsilon=layer.epsilon,
                center=layer.center,
                scale=layer.scale,
                convention=getattr(layer, "convention", "keras"),
                name=layer.name,
                dtype=layer.dtype_policy,
            )
        else:
            _refuse_inner_batch_norm(layer)
            new = _clone_layer(layer)
        copies.append((layer, new))
        return new

    frozen = keras.models.clone_model(model, clone_function=clone_function)
    for layer, new in copies:
        if isinstance(layer, _BATCH_NORMS):
            _copy_batch_norm_weights(layer, new)
        else:
            _copy_weights(layer, new)
    return frozen


def fold_batch_norm(model):
    """Returns a copy of `model` with batch norms folded into the layer before.

    A batch norm (`keras.layers.BatchNormalization`,
    `kerasdl.layers.BatchNormalization` or
    `kerasdl.layers.FrozenBatchNormalization`) is folded when

    - its input is the output of a `Dense`, `Conv1D`, `Conv2D`, `Conv3D`,
      `DepthwiseConv1D` or `DepthwiseConv2D` layer (those exact classes) with
      no activation and no LoRA,
    - that output feeds nothing else (no other layer, not a model output),
    - both layers are called once in the model, and
    - the batch norm normalizes the layer's output-channel axis.

    The batch norm's inference form, `(z - mean) * gamma / sqrt(var + eps) +
    beta`, is then merged into the layer: the kernel is scaled per output
    channel by `gamma / sqrt(var + eps)` and the bias (added if the layer had
    none) becomes `(bias - mean) * gamma / sqrt(var + eps) + beta`. The batch
    norm disappears from the model. Other batch norms and every other layer
    are copied unchanged with their weights.

    The result matches `model` in *inference* (`training=False`), up to
    float rounding; in training a live batch norm would normalize with the
    batch statistics instead, so fold for export or serving, not before
    fine-tuning (see `freeze_batch_norm` for that). Nested Functional and
    Sequential models are folded too.

    Args:
        model: a built Functional or Sequential `keras.Model`.

    Returns:
        A new model of the same kind; `model` is not modified.

    Raises:
        ValueError: if `model` is a subclassed model, an unbuilt Sequential
            model, or a Functional subclass whose `get_config()` does not
            describe its layer graph.

    Example:

    ```python
    folded = kerasdl.layers.fold_batch_norm(model)
    len(folded.layers) < len(model.layers)  # True when something was folded
    folded.export("exported/1")
    ```
    """
    _check_graph_model(model, "fold_batch_norm")
    if isinstance(model, keras.Sequential):
        return _fold_sequential(model)
    return _fold_functional(model)


# ---------------------------------------------------------------------------
# Folding.
# ---------------------------------------------------------------------------


def _fold_sequential(model):
    if not model.built or not getattr(model, "inputs", None):
        raise ValueError(
            "fold_batch_norm needs a built Sequential model (start it with "
            "`keras.Input(shape)` or call it on data once). Received: the "
            f"unbuilt Sequential model {model.name!r}"
        )
    layers = model.layers
    folds = {}  # id(conv) -> batch norm folded into it
    for conv, bn in itertools.pairwise(layers):
        if layers.count(conv) == 1 and _can_fold(conv, bn):
            folds[id(conv)] = bn
    folded_bns = {id(bn) for bn in folds.values()}

    new_layers, copies = [], []
    for layer in layers:
        if id(layer) in folded_bns:
            continue
        if _is_graph_model(layer):
            new_layers.append(fold_batch_norm(layer))
            continue
        new = _clone_layer(layer, use_bias=True if id(layer) in folds else None)
        new_layers.append(new)
        copies.append((layer, new))
    (inputs,) = model.inputs
    folded = keras.Sequential(
        [keras.Input(batch_shape=inputs.shape, dtype=inputs.dtype), *new_layers],
        name=model.name,
        trainable=model.trainable,
    )
    _finish_copies(copies, folds)
    return folded


def _fold_functional(model):
    # The layer graph, read from the model's config: for every layer, the
    # tensors (layer name, node index, tensor index) its calls consume.
    config = model.get_config()
    if not isinstance(config, dict) or not all(
        "inbound_nodes" in layer_config for layer_config in config.get("layers", [{}])
    ):
        raise ValueError(
            "fold_batch_norm reads the layer graph of a Functional model from "
            "`model.get_config()`, and the `get_config` of "
            f"{type(model).__name__} {model.name!r} does not describe it. "
            "Rebuild it as a plain `keras.Model(inputs, outputs)` first."
        )
    uses, calls = {}, {}
    for layer_config in config["layers"]:
        calls[layer_config["name"]] = layer_config["inbound_nodes"]
        for history in _tensor_histories(layer_config["inbound_nodes"]):
            uses[history] = uses.get(history, 0) + 1
    for history in _output_histories(config["output_layers"]):
        uses[history] = uses.get(history, 0) + 1

    folds = {}  # id(conv) -> batch norm folded into it
    for layer in model.layers:
        if not isinstance(layer, _ANY_BATCH_NORM) or len(calls[layer.name]) != 1:
            continue
        inputs = list(_tensor_histories(calls[layer.name][0]["args"][:1]))
        if len(inputs) != 1:
            continue
        conv_name, node_index, tensor_index = inputs[0]
        conv = model.get_layer(conv_name)
        if (
            len(calls.get(conv_name, ())) == 1
            and (node_index, tensor_index) == (0, 0)
            and uses[inputs[0]] == 1
            and _can_fold(conv, layer)
        ):
            folds[id(conv)] = layer
    folded_bns = {id(bn) for bn in folds.values()}

    copies = []

    def clone_function(layer):
        if id(layer) in folded_bns:
            return layer  # never called (see call_function): nothing to copy
        if _is_graph_model(layer):
            return fold_batch_norm(layer)
        new = _clone_layer(layer, use_bias=True if id(layer) in folds else None)
        copies.append((layer, new))
        return new

    def call_function(layer, *args, **kwargs):
        if id(layer) in folded_bns:
            return args[0]  # the folded layer's output already is the BN's
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(
        model, clone_function=clone_function, call_function=call_function
    )
    _finish_copies(copies, folds)
    return folded


def _tensor_histories(structure):
    """Yields `(layer, node, tensor)` for each serialized tensor in `structure`."""
    if isinstance(structure, dict):
        if structure.get("class_name") == "__keras_tensor__":
            yield tuple(structure["config"]["keras_history"])
            return
        for value in structure.values():
            yield from _tensor_histories(value)
    elif isinstance(structure, (list, tuple)):
        for value in structure:
            yield from _tensor_histories(value)


def _output_histories(structure):
    """Yields the `[layer, node, tensor]` triples of a config's `output_layers`."""
    if (
        isinstance(structure, (list, tuple))
        and len(structure) == 3
        and isinstance(structure[0], str)
    ):
        yield tuple(structure)
    elif isinstance(structure, (list, tuple)):
        for value in structure:
            yield from _output_histories(value)
    elif isinstance(structure, dict):
        for value in structure.values():
            yield from _output_histories(value)


def _can_fold(conv, bn):
    if type(conv) not in _FOLDABLE or not isinstance(bn, _ANY_BATCH_NORM):
        return False
    if getattr(conv, "lora_enabled", False) or not conv.built:
        return False
    if conv.get_config().get("activation") != "linear":
        return False
    rank = len(conv.output.shape)
    if isinstance(conv, keras.layers.Dense) or conv.data_format == "channels_last":
        channel_axis = rank - 1
    else:
        channel_axis = 1
    return isinstance(bn.axis, int) and bn.axis % rank == channel_axis


def _folded_weights(conv, bn):
    """The kernel and bias of `conv` followed by `bn` in inference, in float64."""
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel), "float64")
    channels = int(np.prod(kernel.shape[-2:])) if _is_depthwise(conv) else None
    channels = channels or kernel.shape[-1]
    bias = np.zeros(channels)
    if conv.use_bias:
        bias = np.asarray(keras.ops.convert_to_numpy(conv.bias), "float64")

    def value(weight, default):
        if weight is None:
            return np.full(channels, default)
        return np.asarray(keras.ops.convert_to_numpy(weight), "float64")

    factor = value(bn.gamma, 1.0) / np.sqrt(value(bn.moving_variance, 1.0) + bn.epsilon)
    offset = value(bn.beta, 0.0) - value(bn.moving_mean, 0.0) * factor
    if _is_depthwise(conv):
        # (..., in_channels, depth_multiplier): output channel c * m + j.
        kernel = kernel * factor.reshape(kernel.shape[-2:])
    else:
        kernel = kernel * factor
    return kernel, bias * factor + offset


def _is_depthwise(conv):
    return isinstance(
        conv, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
    )


def _finish_copies(copies, folds):
    for layer, new in copies:
        if id(layer) in folds:
            new.set_weights(list(_folded_weights(layer, folds[id(layer)])))
        else:
            _copy_weights(layer, new)


# ---------------------------------------------------------------------------
# Cloning helpers.
# ---------------------------------------------------------------------------


def _is_graph_model(layer):
    """Whether `layer` is a Sequential or Functional model (public API only)."""
    if isinstance(layer, keras.Sequential):
        return True
    # Functional models have symbolic `inputs`; subclassed models have none.
    return isinstance(layer, keras.Model) and isinstance(
        getattr(layer, "inputs", None), list
    )


def _check_graph_model(model, function_name):
    if not _is_graph_model(model):
        raise ValueError(
            f"{function_name} converts Functional and Sequential models only: "
            "the layers of a subclassed model are called from its own `call()` "
            "and cannot be swapped from outside. Received: model "
            f"{getattr(model, 'name', model)!r} of type {type(model).__name__}"
        )


def _clone_layer(layer, use_bias=None):
    config = layer.get_config()
    if use_bias is not None:
        config["use_bias"] = use_bias
    return layer.__class__.from_config(config)


def _copy_weights(layer, new):
    weights = layer.get_weights()
    if weights:
        new.set_weights(weights)


def _copy_batch_norm_weights(bn, frozen):
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        source, target = getattr(bn, name, None), getattr(frozen, name, None)
        if source is not None and target is not None:
            target.assign(source)


def _refuse_inner_batch_norm(layer):
    """Raises if `layer` (not a graph model) holds a batch norm sublayer."""
    inner = _find_inner_batch_norm(layer, seen={id(layer)})
    if inner is not None:
        raise ValueError(
            f"freeze_batch_norm cannot reach the batch norm {inner.name!r} inside "
            f"layer {layer.name!r} ({type(layer).__name__}): it is called from "
            f"that layer's own `call()`. Build {type(layer).__name__} with "
            "kerasdl.layers.FrozenBatchNormalization instead, or rewrite the "
            "model as a Functional one."
        )


def _find_inner_batch_norm(layer, seen):
    """A batch norm among the sublayers stored in `layer`'s attributes."""
    stack = list(vars(layer).values())
    while stack:
        value = stack.pop()
        if isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, keras.layers.Layer) and id(value) not in seen:
            seen.add(id(value))
            if isinstance(value, _BATCH_NORMS):
                return value
            stack.extend(vars(value).values())
    return None
