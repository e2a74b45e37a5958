"""AlexNet (Krizhevsky et al., 2012) in d2l's single-tower form."""

import keras

from kerasdl.models.common import ModelSpec, resolve_stem
from kerasdl.models.registry import register_model


@register_model("alexnet")
def alexnet(
    input_shape,
    num_classes,
    *,
    normalization=None,
    dropout=0.5,
    weight_decay=0.0,
    rescale=None,
    input_dtype="float32",
    name="alexnet",
    stem="auto",
    dense_units=4096,
    activation="relu",
    layer_library="kerasdl",
):
    """AlexNet: five convolutions, three max poolings, two dropout-regularized dense layers.

    d2l's version (section 8.1), one tower with 96-256-384-384-256 channels:

    ```
    stem  "imagenet": conv 11x11/4 (96), max pool 3/2    224 -> 54 -> 26
          "small":    conv 3x3/1 (96),   max pool 3/2     32 -> 32 -> 16
    conv 5x5 (256), max pool 3/2                         26 -> 12 | 16 -> 8
    conv 3x3 (384), conv 3x3 (384), conv 3x3 (256), max pool 3/2  -> 5 | -> 4
    flatten, dense 4096 + dropout, dense 4096 + dropout, dense num_classes
    ```

    The "small" stem (picked by `stem="auto"` below 96 pixels; pooling with
    "same" padding) replaces the 11x11 stride-4 convolution, so CIFAR-sized
    images need no upsampling to 224 (d2l resizes Fashion-MNIST to 224, ~50x the
    compute). Smaller inputs are resized up to 32x32 (minimum size).
    `dense_units` shrinks the two 4096-unit layers that hold most parameters.

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: number of classes.
        normalization: see `kerasdl.models.common`. Defaults to `None` (the
            original; AlexNet's local response normalization is not used).
        dropout: dropout rate after each hidden dense layer. Defaults to `0.5`.
        weight_decay: L2 coefficient on kernels. Defaults to `0.0`.
        rescale: factor of a leading `Rescaling` layer. Defaults to `None`.
        input_dtype: dtype of the `Input`. Defaults to `"float32"`.
        name: model name. Defaults to `"alexnet"`.
        stem: `"auto"`, `"imagenet"` or `"small"`. Defaults to `"auto"`.
        dense_units: units of the two hidden dense layers. Defaults to `4096`.
        activation: hidden activation. Defaults to `"relu"`.
        layer_library: `"kerasdl"` or `"keras"`. Defaults to `"kerasdl"`.

    Returns:
        A Functional `keras.Model` mapping images to class probabilities.

    Reference:
        Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep
        Convolutional Neural Networks", NeurIPS 2012; d2l section 8.1.
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

    # Feature extractor.
    inputs, x = spec.inputs_and_stem(min_size=96 if stem == "imagenet" else 32)
    if stem == "imagenet":
        x = spec.conv_norm_act(x, 96, 11, strides=4, padding="valid", name="conv1")
    else:
        x = spec.conv_norm_act(x, 96, 3, name="conv1")
    x = max_pool("pool1")(x)
    x = spec.conv_norm_act(x, 256, 5, name="conv2")
    x = max_pool("pool2")(x)
    x = spec.conv_norm_act(x, 384, 3, name="conv3")
    x = spec.conv_norm_act(x, 384, 3, name="conv4")
    x = spec.conv_norm_act(x, 256, 3, name="conv5")
    x = max_pool("pool5")(x)

    # Classifier.
    x = keras.layers.Flatten(name="flatten")(x)
    x = spec.dense_norm_act(x, dense_units, name="fc1")
    x = spec.dense_norm_act(x, dense_units, name="fc2")
    outputs = spec.classifier(x)
    return keras.Model(inputs, outputs, name=name)
