"""CIFAR ResNets (He et al., 2016, section 4.2): ResNet-20/32/56 and their plain twins."""

import keras

from kerasdl.models.common import ModelSpec
from kerasdl.models.registry import register_model

CIFAR_RESNET_WIDTHS = (16, 32, 64)
SHORTCUTS = ("zero_pad", "projection")


def zero_pad_shortcut(x, filters, *, strides, name):
    """The paper's option A: subsample by `strides`, zero-pad the new channels.

    Parameter-free, from built-in layers only (so `.keras` files reload without
    custom objects): a 1x1 max pooling with stride `strides` keeps every
    `strides`-th pixel, as PyTorch's `x[:, :, ::2, ::2]` (and the same output size
    as the strided 3x3 "same" convolution of the residual branch), then the channels
    are zero-padded equally on both sides, `(filters - C) // 2` each.
    """
    if strides != 1:
        x = keras.layers.MaxPooling2D(1, strides=strides, name=f"{name}_subsample")(x)
    height, width, channels = x.shape[1:]
    extra = filters - channels
    if extra:
        # (B, H, W, C) -> (B, H, W, C, 1): ZeroPadding3D pads the channel axis as depth.
        x = keras.layers.Reshape((height, width, channels, 1), name=f"{name}_split")(x)
        x = keras.layers.ZeroPadding3D(
            ((0, 0), (0, 0), (extra // 2, extra - extra // 2)), name=f"{name}_pad"
        )(x)
        x = keras.layers.Reshape((height, width, filters), name=f"{name}_merge")(x)
    return x


def cifar_basic_block(spec, x, filters, *, strides, residual, shortcut, name):
    """Two 3x3 convolutions; with `residual`, plus the shortcut before the last ReLU."""
    # Residual branch.
    y = spec.conv_norm_act(x, filters, 3, strides=strides, name=f"{name}_1")
    y = spec.conv_norm_act(y, filters, 3, name=f"{name}_2", activation=False)
    # Shortcut: identity, or option A / B when the shape changes.
    if residual:
        if strides == 1 and x.shape[-1] == filters:
            skip = x
        elif shortcut == "zero_pad":
            skip = zero_pad_shortcut(
                x, filters, strides=strides, name=f"{name}_shortcut"
            )
        else:
            skip = spec.conv_norm_act(
                x,
                filters,
                1,
                strides=strides,
                name=f"{name}_shortcut",
                activation=False,
            )
        y = keras.layers.Add(name=f"{name}_add")([skip, y])
    return keras.layers.Activation(spec.activation, name=f"{name}_out")(y)


def cifar_resnet(
    input_shape,
    num_classes,
    *,
    depth=20,
    residual=True,
    shortcut="zero_pad",
    normalization="batch",
    dropout=0.0,
    weight_decay=0.0,
    rescale=None,
    input_dtype="float32",
    name=None,
    widths=CIFAR_RESNET_WIDTHS,
    activation="relu",
    layer_library="kerasdl",
):
    """The CIFAR-10 ResNet of He et al. (section 4.2), or its plain twin.

    `depth = 6n + 2` weighted layers: a 3x3 convolution, three stages of `n` basic
    blocks (two 3x3 convolutions each) with 16, 32 and 64 filters, global average
    pooling and a dense classifier:

    ```
    images (H, W, C)
    stem          3x3 conv, 16                        (H, W, 16)
    stage1_block* n basic blocks, 16                  (H, W, 16)
    stage2_block* n basic blocks, 32, first stride 2  (H/2, W/2, 32)
    stage3_block* n basic blocks, 64, first stride 2  (H/4, W/4, 64)
    avg_pool, logits, probabilities
    ```

    ResNet-20/32/56 are `n` = 3/5/9; ResNet-20 on 32x32x3 CIFAR-10 has 269,722
    trainable parameters (the paper's 0.27M). With `residual=False` the same
    network has no shortcuts (the paper's "plain" baselines): the same layers
    and, with the default parameter-free shortcuts, the same parameter count.
    Any input of at least 1x1 works: 32x32 CIFAR ends at 8x8, 28x28 MNIST at 7x7,
    8x8 digits at 2x2 (no resizing).

    Each block's output is the layer `stage{s}_block{b}_out`; its shortcut sum,
    when residual, is `stage{s}_block{b}_add`.

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: number of classes.
        depth: `6n + 2` for an integer `n >= 1` (8, 14, 20, 32, 44, 56, 110, ...).
            Defaults to `20`.
        residual: `True` for the ResNet, `False` for its plain twin. Defaults to
            `True`.
        shortcut: where the shape changes, `"zero_pad"` (the paper's option A for
            CIFAR: identity on subsampled pixels with zero-padded extra channels,
            no parameters) or `"projection"` (option B: strided 1x1 convolution and
            normalization). Ignored when `residual=False`. Defaults to `"zero_pad"`.
        normalization: see `kerasdl.models.common`. Defaults to `"batch"`.
        dropout: dropout rate before the classifier. Defaults to `0.0`.
        weight_decay: L2 coefficient on conv and dense kernels (the paper uses
            1e-4). Defaults to `0.0`.
        rescale: factor of a leading `Rescaling` layer. Defaults to `None`.
        input_dtype: dtype of the `Input`. Defaults to `"float32"`.
        name: model name. Defaults to `"resnet{depth}"` or `"plain{depth}"`.
        widths: filters of the three stages. Defaults to `(16, 32, 64)`.
        activation: hidden activation. Defaults to `"relu"`.
        layer_library: `"kerasdl"` or `"keras"`. Defaults to `"kerasdl"`.

    Returns:
        A Functional `keras.Model` mapping images to class probabilities.

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
        section 4.2 (CIFAR-10 and analysis).
    """
    if (
        isinstance(depth, bool)
        or not isinstance(depth, int)
        or depth < 8
        or (depth - 2) % 6
    ):
        raise ValueError(
            "`depth` must be 6n + 2 for an integer n >= 1 (8, 14, 20, 32, 44, 56, "
            f"110, ...). Received: depth={depth!r}"
        )
    if shortcut not in SHORTCUTS:
        raise ValueError(
            f"`shortcut` must be one of {SHORTCUTS}. Received: shortcut={shortcut!r}"
        )
    if len(widths) != 3:
        raise ValueError(
            f"`widths` must hold three stage widths. Received: widths={widths}"
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
    blocks_per_stage = (depth - 2) // 6

    # Stem.
    inputs, x = spec.inputs_and_stem()
    x = spec.conv_norm_act(x, widths[0], 3, name="stem")  # (B, H, W, 16)

    # Stages: (B, H, W, 16) -> (B, H/2, W/2, 32) -> (B, H/4, W/4, 64).
    for stage, filters in enumerate(widths, start=1):
        for index in range(1, blocks_per_stage + 1):
            x = cifar_basic_block(
                spec,
                x,
                filters,
                strides=2 if stage > 1 and index == 1 else 1,
                residual=residual,
                shortcut=shortcut,
                name=f"stage{stage}_block{index}",
            )

    # Head.
    outputs = spec.pooled_classifier(x)
    default_name = f"{'resnet' if residual else 'plain'}{depth}"
    return keras.Model(inputs, outputs, name=name or default_name)


for _depth in (20, 32, 56):
    register_model(f"resnet{_depth}", cifar_resnet, depth=_depth, residual=True)
    register_model(f"plain{_depth}", cifar_resnet, depth=_depth, residual=False)
del _depth
