"""VGG (Simonyan & Zisserman, 2015): repeated blocks of 3x3 convolutions and a max pooling."""

import keras

from kerasdl.models.common import ModelSpec
from kerasdl.models.registry import register_model

VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
VGG16 = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def vgg_block(spec, x, num_convs, filters, *, name):
    """`num_convs` 3x3 "same" convolutions, then 2x2 max pooling (halves H and W)."""
    for index in range(1, num_convs + 1):
        x = spec.conv_norm_act(x, filters, 3, name=f"{name}_conv{index}")
    return keras.layers.MaxPooling2D(2, strides=2, name=f"{name}_pool")(x)


def vgg(
    input_shape,
    num_classes,
    *,
    normalization=None,
    dropout=0.5,
    weight_decay=0.0,
    rescale=None,
    input_dtype="float32",
    name=None,
    conv_arch=VGG11,
    dense_units=4096,
    activation="relu",
    layer_library="kerasdl",
):
    """VGG: blocks of 3x3 convolutions, each ending in 2x2 max pooling, then dense layers.

    `conv_arch` lists `(num_convs, filters)` per block: VGG-11 is
    `((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))`, VGG-16 has 2-2-3-3-3
    convolutions. After the blocks: flatten, two dense layers of `dense_units`
    with dropout, the classifier. At (224, 224, 3) and 1000 classes VGG-16 has
    138,357,544 parameters, as in the paper.

    Five poolings need at least 32x32 pixels (then the features are 1x1x512);
    smaller inputs are resized up to 32x32. For CIFAR-sized inputs a smaller
    `dense_units` (e.g. 512) is the usual choice.

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: number of classes.
        normalization: see `kerasdl.models.common`. Defaults to `None`.
        dropout: dropout rate after each hidden dense layer. Defaults to `0.5`.
        weight_decay: L2 coefficient on kernels. Defaults to `0.0`.
        rescale: factor of a leading `Rescaling` layer. Defaults to `None`.
        input_dtype: dtype of the `Input`. Defaults to `"float32"`.
        name: model name. Defaults to `"vgg"`.
        conv_arch: `(num_convs, filters)` per block. Defaults to VGG-11's.
        dense_units: units of the two hidden dense layers. Defaults to `4096`.
        activation: hidden activation. Defaults to `"relu"`.
        layer_library: `"kerasdl"` or `"keras"`. Defaults to `"kerasdl"`.

    Returns:
        A Functional `keras.Model` mapping images to class probabilities.

    Reference:
        Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale
        Image Recognition", ICLR 2015; d2l section 8.2.
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
    min_size = 2 ** len(conv_arch)

    # VGG blocks.
    inputs, x = spec.inputs_and_stem(min_size=min_size)
    for index, (num_convs, filters) in enumerate(conv_arch, start=1):
        x = vgg_block(spec, x, num_convs, filters, name=f"block{index}")

    # Classifier.
    x = keras.layers.Flatten(name="flatten")(x)
    x = spec.dense_norm_act(x, dense_units, name="fc1")
    x = spec.dense_norm_act(x, dense_units, name="fc2")
    outputs = spec.classifier(x)
    return keras.Model(inputs, outputs, name=name or "vgg")


register_model("vgg11", vgg, conv_arch=VGG11, name="vgg11")
register_model("vgg16", vgg, conv_arch=VGG16, name="vgg16")
