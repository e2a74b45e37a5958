"""ResNet (He et al., 2016): residual stages of basic or bottleneck blocks."""

import keras

from kerasdl.models.common import ModelSpec, resolve_stem
from kerasdl.models.registry import register_model

RESNET_WIDTHS = (64, 128, 256, 512)


def basic_block(spec, x, filters, *, strides, name):
    """Two 3x3 convolutions plus the shortcut (ResNet-18/34). Output: `filters` channels."""
    shortcut = x
    # Residual branch.
    y = spec.conv_norm_act(x, filters, 3, strides=strides, name=f"{name}_1")
    y = spec.conv_norm_act(y, filters, 3, name=f"{name}_2", activation=False)
    # Shortcut: 1x1 projection when the shape changes.
    if strides != 1 or x.shape[-1] != filters:
        shortcut = spec.conv_norm_act(
            x, filters, 1, strides=strides, name=f"{name}_shortcut", activation=False
        )
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation(spec.activation, name=f"{name}_out")(y)


def bottleneck_block(spec, x, filters, *, strides, name, expansion=4):
    """1x1 reduce, 3x3 (strided, "ResNet v1.5"), 1x1 expand. Output: 4*filters channels."""
    shortcut = x
    # Residual branch.
    y = spec.conv_norm_act(x, filters, 1, name=f"{name}_1")
    y = spec.conv_norm_act(y, filters, 3, strides=strides, name=f"{name}_2")
    y = spec.conv_norm_act(
        y, expansion * filters, 1, name=f"{name}_3", activation=False
    )
    # Shortcut: 1x1 projection when the shape changes.
    if strides != 1 or x.shape[-1] != expansion * filters:
        shortcut = spec.conv_norm_act(
            x,
            expansion * filters,
            1,
            strides=strides,
            name=f"{name}_shortcut",
            activation=False,
        )
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation(spec.activation, name=f"{name}_out")(y)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def resnet(
    input_shape,
    num_classes,
    *,
    normalization="batch",
    dropout=0.0,
    weight_decay=0.0,
    rescale=None,
    input_dtype="float32",
    name=None,
    block="basic",
    stage_sizes=(2, 2, 2, 2),
    widths=RESNET_WIDTHS,
    stem="auto",
    activation="relu",
    layer_library="kerasdl",
):
    """ResNet: a stem, four residual stages, global average pooling, a classifier.

    Stage `i` has `stage_sizes[i]` blocks of width `widths[i]`; stages 2-4 halve the
    resolution in their first block (stride 2 on the 3x3 convolution, "ResNet v1.5",
    with a 1x1 projection shortcut).

    Two stems:

    - `"imagenet"`: 7x7 stride-2 conv (64) + 3x3 stride-2 max pooling, as in the
      paper (224x224 -> 56x56). The parameter counts then match torchvision's:
      resnet18 11,689,512 and resnet50 25,557,032 trainable parameters at
      (224, 224, 3) with 1000 classes.
    - `"small"` (CIFAR-style, as in the paper's CIFAR-10 section and most CIFAR
      code): one 3x3 stride-1 conv (64) and no max pooling, so a 32x32 image
      reaches the last stage at 4x4, a 28x28 MNIST image at 4x4 and an 8x8
      digit at 1x1. No upsampling is needed (minimum size 8), which keeps
      ResNet-18 on sklearn digits at a few seconds per epoch on a CPU, where
      resizing to 224 would cost ~800x the compute.

    `stem="auto"` picks `"imagenet"` when the smaller image side is >= 96, else
    `"small"`.

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: number of classes.
        normalization: see `kerasdl.models.common`. Defaults to `"batch"`.
        dropout: dropout rate before the classifier. Defaults to `0.0`.
        weight_decay: L2 coefficient on conv and dense kernels. Defaults to `0.0`.
        rescale: factor of a leading `Rescaling` layer. Defaults to `None`.
        input_dtype: dtype of the `Input`. Defaults to `"float32"`.
        name: model name. Defaults to `"resnet"`.
        block: `"basic"` or `"bottleneck"`. Defaults to `"basic"`.
        stage_sizes: blocks per stage. Defaults to `(2, 2, 2, 2)` (ResNet-18).
        widths: base width per stage. Defaults to `(64, 128, 256, 512)`.
        stem: `"auto"`, `"imagenet"` or `"small"`. Defaults to `"auto"`.
        activation: hidden activation. Defaults to `"relu"`.
        layer_library: `"kerasdl"` or `"keras"`. Defaults to `"kerasdl"`.

    Returns:
        A Functional `keras.Model` mapping images to class probabilities.

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    """
    if block not in BLOCKS:
        raise ValueError(
            f"`block` must be one of {sorted(BLOCKS)}. Received: block={block!r}"
        )
    if len(stage_sizes) != len(widths):
        raise ValueError(
            "`stage_sizes` and `widths` must have the same length. Received: "
            f"stage_sizes={stage_sizes}, widths={widths}"
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
    block_fn = BLOCKS[block]

    # Stem.
    inputs, x = spec.inputs_and_stem(min_size=32 if stem == "imagenet" else 8)
    if stem == "imagenet":
        x = spec.conv_norm_act(
            x, widths[0], 7, strides=2, name="stem"
        )  # (B, H/2, W/2, 64)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = spec.conv_norm_act(x, widths[0], 3, name="stem")  # (B, H, W, 64)

    # Residual stages.
    for stage, (num_blocks, filters) in enumerate(zip(stage_sizes, widths), start=1):
        for index in range(1, num_blocks + 1):
            strides = 2 if stage > 1 and index == 1 else 1
            x = block_fn(
                spec, x, filters, strides=strides, name=f"stage{stage}_block{index}"
            )

    # Head.
    outputs = spec.pooled_classifier(x)
    return keras.Model(inputs, outputs, name=name or "resnet")


register_model(
    "resnet18", resnet, block="basic", stage_sizes=(2, 2, 2, 2), name="resnet18"
)
register_model(
    "resnet34", resnet, block="basic", stage_sizes=(3, 4, 6, 3), name="resnet34"
)
register_model(
    "resnet50", resnet, block="bottleneck", stage_sizes=(3, 4, 6, 3), name="resnet50"
)
