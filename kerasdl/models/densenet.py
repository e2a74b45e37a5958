"""DenseNet (Huang et al., 2017): dense blocks joined by transition layers."""

import keras

from kerasdl.models.common import ModelSpec, resolve_stem
from kerasdl.models.registry import register_model


def norm_act_conv(spec, x, filters, kernel_size, *, name):
    """Pre-activation unit: normalization -> activation -> conv (no bias)."""
    norm = spec.norm(x.shape[-1], name=f"{name}_norm")
    if norm is not None:
        x = norm(x)
    x = keras.layers.Activation(spec.activation, name=f"{name}_act")(x)
    return spec.conv(filters, kernel_size, name=f"{name}_conv", use_bias=False)(x)


def dense_layer(spec, x, growth_rate, bottleneck_factor, *, name):
    """1x1 bottleneck (bottleneck_factor * growth_rate) then 3x3 conv (growth_rate), concatenated."""
    y = norm_act_conv(spec, x, bottleneck_factor * growth_rate, 1, name=f"{name}_1")
    y = norm_act_conv(spec, y, growth_rate, 3, name=f"{name}_2")
    return keras.layers.Concatenate(name=f"{name}_concat")([x, y])


def transition_layer(spec, x, compression, *, name):
    """1x1 conv shrinking channels by `compression`, then 2x2 average pooling."""
    x = norm_act_conv(spec, x, int(x.shape[-1] * compression), 1, name=name)
    return keras.layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def densenet(
    input_shape,
    num_classes,
    *,
    normalization="batch",
    dropout=0.0,
    weight_decay=0.0,
    rescale=None,
    input_dtype="float32",
    name=None,
    block_sizes=(6, 12, 24, 16),
    growth_rate=32,
    initial_filters=64,
    bottleneck_factor=4,
    compression=0.5,
    stem="auto",
    activation="relu",
    layer_library="kerasdl",
):
    """DenseNet-BC: each layer's output is concatenated to all the features before it.

    Dense block `i` has `block_sizes[i]` layers (norm-act-1x1 conv to
    `bottleneck_factor * growth_rate` channels, norm-act-3x3 conv to
    `growth_rate`), each concatenating its output to its input; transition layers
    between blocks halve the channels (`compression`) and the resolution. At
    (224, 224, 3) and 1000 classes DenseNet-121 has 7,978,856 trainable
    parameters, as torchvision's.

    Stems: `"imagenet"` is a 7x7/2 conv + 3x3/2 max pooling; `"small"` (picked by
    `stem="auto"` below 96 pixels) is one 3x3 conv, so three transitions bring
    32x32 down to 4x4; inputs under 8x8 are resized to 8x8.

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: number of classes.
        normalization: see `kerasdl.models.common`. Defaults to `"batch"`.
        dropout: dropout rate before the classifier. Defaults to `0.0`.
        weight_decay: L2 coefficient on kernels. Defaults to `0.0`.
        rescale: factor of a leading `Rescaling` layer. Defaults to `None`.
        input_dtype: dtype of the `Input`. Defaults to `"float32"`.
        name: model name. Defaults to `"densenet"`.
        block_sizes: layers per dense block. Defaults to `(6, 12, 24, 16)`.
        growth_rate: channels each dense layer adds. Defaults to `32`.
        initial_filters: channels of the stem. Defaults to `64`.
        bottleneck_factor: bottleneck width in units of `growth_rate`.
            Defaults to `4`.
        compression: channel factor of transition layers. Defaults to `0.5`.
        stem: `"auto"`, `"imagenet"` or `"small"`. Defaults to `"auto"`.
        activation: hidden activation. Defaults to `"relu"`.
        layer_library: `"kerasdl"` or `"keras"`. Defaults to `"kerasdl"`.

    Returns:
        A Functional `keras.Model` mapping images to class probabilities.

    Reference:
        Huang et al., "Densely Connected Convolutional Networks", CVPR 2017.
    """
    if not 0.0 < compression <= 1.0:
        raise ValueError(
            f"`compression` must be in (0, 1]. Received: compression={compression}"
        )
    spec = ModelSpec(
        input_shape,
        num_classes,
        normalization=normalization,
        dropout=dropout,
        weight_decay=weight_decay,
        rescale=rescale,
        input_dtype=input_dtype,
        activation=activation,
        layer_library=layer_library,
    )
    stem = resolve_stem(stem, spec.input_shape)

    # Stem.
    inputs, x = spec.inputs_and_stem(min_size=32 if stem == "imagenet" else 8)
    if stem == "imagenet":
        x = spec.conv_norm_act(x, initial_filters, 7, strides=2, name="stem")
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = spec.conv(initial_filters, 3, name="stem_conv", use_bias=False)(x)

    # Dense blocks and transitions.
    for block, num_layers in enumerate(block_sizes, start=1):
        for index in range(1, num_layers + 1):
            x = dense_layer(
                spec,
                x,
                growth_rate,
                bottleneck_factor,
                name=f"block{block}_layer{index}",
            )
        if block < len(block_sizes):
            x = transition_layer(spec, x, compression, name=f"transition{block}")

    # Head: final normalization and activation, then pooling and the classifier.
    norm = spec.norm(x.shape[-1], name="final_norm")
    if norm is not None:
        x = norm(x)
    x = keras.layers.Activation(activation, name="final_act")(x)
    outputs = spec.pooled_classifier(x)
    return keras.Model(inputs, outputs, name=name or "densenet")


register_model("densenet121", densenet, block_sizes=(6, 12, 24, 16), name="densenet121")
