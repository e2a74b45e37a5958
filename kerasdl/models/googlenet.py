"""GoogLeNet (Szegedy et al., 2015): Inception blocks of four parallel paths."""

import keras

from kerasdl.models.common import ModelSpec, resolve_stem
from kerasdl.models.registry import register_model

# (1x1, (3x3 reduce, 3x3), (5x5 reduce, 5x5), pool projection) per Inception block.
STAGE3 = ((64, (96, 128), (16, 32), 32), (128, (128, 192), (32, 96), 64))
STAGE4 = (
    (192, (96, 208), (16, 48), 64),
    (160, (112, 224), (24, 64), 64),
    (128, (128, 256), (24, 64), 64),
    (112, (144, 288), (32, 64), 64),
    (256, (160, 320), (32, 128), 128),
)
STAGE5 = ((256, (160, 320), (32, 128), 128), (384, (192, 384), (48, 128), 128))


def inception_block(spec, x, channels, *, name):
    """Four paths concatenated on channels.

    path 1: 1x1 conv; path 2: 1x1 reduce -> 3x3 conv; path 3: 1x1 reduce -> 5x5
    conv; path 4: 3x3 max pooling (stride 1) -> 1x1 projection. Output channels:
    c1 + c2[1] + c3[1] + c4.
    """
    c1, c2, c3, c4 = channels
    path1 = spec.conv_norm_act(x, c1, 1, name=f"{name}_1x1")
    path2 = spec.conv_norm_act(x, c2[0], 1, name=f"{name}_3x3_reduce")
    path2 = spec.conv_norm_act(path2, c2[1], 3, name=f"{name}_3x3")
    path3 = spec.conv_norm_act(x, c3[0], 1, name=f"{name}_5x5_reduce")
    path3 = spec.conv_norm_act(path3, c3[1], 5, name=f"{name}_5x5")
    path4 = keras.layers.MaxPooling2D(
        3, strides=1, padding="same", name=f"{name}_pool"
    )(x)
    path4 = spec.conv_norm_act(path4, c4, 1, name=f"{name}_pool_proj")
    return keras.layers.Concatenate(name=f"{name}_concat")([path1, path2, path3, path4])


@register_model("googlenet")
def googlenet(
    input_shape,
    num_classes,
    *,
    normalization=None,
    dropout=0.0,
    weight_decay=0.0,
    rescale=None,
    input_dtype="float32",
    name="googlenet",
    stem="auto",
    activation="relu",
    layer_library="kerasdl",
):
    """GoogLeNet: a stem, nine Inception blocks in three stages, global average pooling.

    d2l's layout (section 8.4; the paper's auxiliary classifiers and local
    response normalization are left out):

    ```
    stem "imagenet": conv 7x7/2 (64), max pool 3/2, conv 1x1 (64), conv 3x3 (192),
                     max pool 3/2                                   224 -> 28
         "small":    conv 3x3 (64), conv 1x1 (64), conv 3x3 (192)   32 -> 32
    stage 3: inception 3a, 3b (256, 480 channels), max pool 3/2     -> 14 | 16
    stage 4: inception 4a-4e (512 ... 832 channels), max pool 3/2   -> 7 | 8
    stage 5: inception 5a, 5b (832, 1024 channels), global average pooling
    ```

    The "small" stem (picked by `stem="auto"` below 96 pixels) drops the two
    stride-2 reductions of the ImageNet stem, so CIFAR images are not upsampled;
    inputs under 16x16 are resized to 16x16.

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: number of classes.
        normalization: see `kerasdl.models.common`. Defaults to `None`.
        dropout: dropout rate before the classifier (the paper uses 0.4).
            Defaults to `0.0`.
        weight_decay: L2 coefficient on kernels. Defaults to `0.0`.
        rescale: factor of a leading `Rescaling` layer. Defaults to `None`.
        input_dtype: dtype of the `Input`. Defaults to `"float32"`.
        name: model name. Defaults to `"googlenet"`.
        stem: `"auto"`, `"imagenet"` or `"small"`. Defaults to `"auto"`.
        activation: hidden activation. Defaults to `"relu"`.
        layer_library: `"kerasdl"` or `"keras"`. Defaults to `"kerasdl"`.

    Returns:
        A Functional `keras.Model` mapping images to class probabilities.

    Reference:
        Szegedy et al., "Going Deeper with Convolutions", CVPR 2015; d2l 8.4.
    """
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

    def max_pool(name):
        return keras.layers.MaxPooling2D(3, strides=2, padding="same", name=name)

    # Stem.
    inputs, x = spec.inputs_and_stem(min_size=64 if stem == "imagenet" else 16)
    if stem == "imagenet":
        x = spec.conv_norm_act(x, 64, 7, strides=2, name="stem_conv1")
        x = max_pool("stem_pool1")(x)
    else:
        x = spec.conv_norm_act(x, 64, 3, name="stem_conv1")
    x = spec.conv_norm_act(x, 64, 1, name="stem_conv2")
    x = spec.conv_norm_act(x, 192, 3, name="stem_conv3")
    if stem == "imagenet":
        x = max_pool("stem_pool2")(x)

    # Inception stages.
    for stage, blocks in ((3, STAGE3), (4, STAGE4), (5, STAGE5)):
        for index, channels in enumerate(blocks):
            x = inception_block(
                spec, x, channels, name=f"inception{stage}{'abcde'[index]}"
            )
        if stage < 5:
            x = max_pool(f"pool{stage}")(x)

    # Head.
    outputs = spec.pooled_classifier(x)
    return keras.Model(inputs, outputs, name=name)
