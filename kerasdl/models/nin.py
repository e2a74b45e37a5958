"""Network in Network (Lin et al., 2014): conv + two 1x1 convs per block, global average pooling."""

import keras

from kerasdl.models.common import ModelSpec, resolve_stem
from kerasdl.models.registry import register_model


def nin_block(spec, x, filters, kernel_size, *, strides=1, padding="same", name):
    """One conv followed by two 1x1 convs ("per-pixel dense layers"), each with activation."""
    x = spec.conv_norm_act(
        x, filters, kernel_size, strides=strides, padding=padding, name=f"{name}_conv"
    )
    x = spec.conv_norm_act(x, filters, 1, name=f"{name}_mlp1")
    return spec.conv_norm_act(x, filters, 1, name=f"{name}_mlp2")


@register_model("nin")
def nin(
    input_shape,
    num_classes,
    *,
    normalization=None,
    dropout=0.5,
    weight_decay=0.0,
    rescale=None,
    input_dtype="float32",
    name="nin",
    stem="auto",
    activation="relu",
    layer_library="kerasdl",
):
    """NiN: four NiN blocks, the last with `num_classes` channels, then global average pooling.

    d2l's layout (section 8.3):

    ```
    stem  "imagenet": NiN block 11x11/4 (96), max pool 3/2
          "small":    NiN block 3x3/1 (96),   max pool 3/2    32 -> 16
    NiN block 5x5 (256), max pool 3/2                         -> 8
    NiN block 3x3 (384), max pool 3/2, dropout                -> 4
    NiN block 3x3 (num_classes), global average pooling, softmax
    ```

    There are no dense layers: the last block outputs one channel per class and
    the average of each channel is that class's logit. Unlike d2l, the class
    block's last 1x1 convolution has no ReLU (logits may be negative) and no
    normalization. The "small" stem (picked
    by `stem="auto"` below 96 pixels; poolings then use "same" padding) avoids
    upsampling CIFAR/MNIST images to 224; inputs under 32x32 are resized to 32.

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: number of classes.
        normalization: see `kerasdl.models.common`. Defaults to `None`.
        dropout: dropout rate before the last NiN block. Defaults to `0.5`.
        weight_decay: L2 coefficient on kernels. Defaults to `0.0`.
        rescale: factor of a leading `Rescaling` layer. Defaults to `None`.
        input_dtype: dtype of the `Input`. Defaults to `"float32"`.
        name: model name. Defaults to `"nin"`.
        stem: `"auto"`, `"imagenet"` or `"small"`. Defaults to `"auto"`.
        activation: hidden activation. Defaults to `"relu"`.
        layer_library: `"kerasdl"` or `"keras"`. Defaults to `"kerasdl"`.

    Returns:
        A Functional `keras.Model` mapping images to class probabilities.

    Reference:
        Lin, Chen, Yan, "Network In Network", ICLR 2014; d2l section 8.3.
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
    pool_padding = "valid" if stem == "imagenet" else "same"

    def max_pool(name):
        return keras.layers.MaxPooling2D(3, strides=2, padding=pool_padding, name=name)

    # NiN blocks.
    inputs, x = spec.inputs_and_stem(min_size=96 if stem == "imagenet" else 32)
    if stem == "imagenet":
        x = nin_block(spec, x, 96, 11, strides=4, padding="valid", name="block1")
    else:
        x = nin_block(spec, x, 96, 3, name="block1")
    x = max_pool("pool1")(x)
    x = nin_block(spec, x, 256, 5, name="block2")
    x = max_pool("pool2")(x)
    x = nin_block(spec, x, 384, 3, name="block3")
    x = max_pool("pool3")(x)
    dropout_layer = spec.dropout_layer(name="dropout")
    if dropout_layer is not None:
        x = dropout_layer(x)

    # Class block: one channel per class, averaged over the image.
    x = spec.conv(num_classes, 3, name="block4_conv", use_bias=True)(x)
    x = keras.layers.Activation(activation, name="block4_conv_act")(x)
    x = spec.conv(num_classes, 1, name="block4_mlp1", use_bias=True)(x)
    x = keras.layers.Activation(activation, name="block4_mlp1_act")(x)
    x = spec.conv(num_classes, 1, name="block4_mlp2", use_bias=True)(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)  # (B, num_classes)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(
        x
    )
    return keras.Model(inputs, outputs, name=name)
