"""LeNet-5 (LeCun et al., 1998) as in Dive into Deep Learning."""

import keras

from kerasdl.models.common import ModelSpec
from kerasdl.models.registry import register_model

LENET_MIN_SIZE = 28


@register_model("lenet")
def lenet(
    input_shape,
    num_classes,
    *,
    normalization=None,
    dropout=0.0,
    weight_decay=0.0,
    rescale=None,
    input_dtype="float32",
    name="lenet",
    activation="sigmoid",
    pooling="average",
    layer_library="kerasdl",
):
    """LeNet: two 5x5 conv + pooling units, then three dense layers.

    The layout of the original paper and of d2l's chapter 6.6:

    ```
    images (28, 28, C)
    conv1  5x5, 6 channels, "same" padding -> (28, 28, 6)   # d2l's padding=2
    pool1  2x2 average, stride 2            -> (14, 14, 6)
    conv2  5x5, 16 channels, "valid"        -> (10, 10, 16)
    pool2  2x2 average, stride 2            -> (5, 5, 16)
    flatten                                 -> (400,)
    dense 120 -> dense 84 -> dense num_classes -> softmax
    ```

    61,706 parameters for (28, 28, 1) inputs and 10 classes. Inputs smaller than
    28x28 (sklearn's 8x8 digits) are resized up to 28x28 by the stem; larger inputs
    (32x32 CIFAR) are used as they are.

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: number of classes.
        normalization: `"batch"`, `"layer"`, `"instance"`, `"group"` or `None`,
            applied after every conv and hidden dense layer (see
            `kerasdl.models.common`). Defaults to `None` (the original LeNet).
        dropout: dropout rate after each hidden dense layer. Defaults to `0.0`.
        weight_decay: L2 coefficient on conv and dense kernels. Defaults to `0.0`.
        rescale: factor of a leading `Rescaling` layer, `None` for none.
            Defaults to `None`.
        input_dtype: dtype of the `Input`. Defaults to `"float32"`.
        name: model name. Defaults to `"lenet"`.
        activation: hidden activation. Defaults to `"sigmoid"` (the original;
            `"relu"` trains faster).
        pooling: `"average"` (the original) or `"max"`. Defaults to `"average"`.
        layer_library: `"kerasdl"` or `"keras"`. Defaults to `"kerasdl"`.

    Returns:
        A Functional `keras.Model` mapping images to class probabilities.

    Reference:
        LeCun et al., "Gradient-based learning applied to document recognition",
        1998; Zhang et al., "Dive into Deep Learning", section 6.6.
    """
    if pooling not in ("average", "max"):
        raise ValueError(
            f"`pooling` must be 'average' or 'max'. Received: pooling={pooling!r}"
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
        kernel_initializer="glorot_uniform",
        layer_library=layer_library,
    )
    Pooling = (
        keras.layers.AveragePooling2D
        if pooling == "average"
        else keras.layers.MaxPooling2D
    )

    # Convolutional block.
    inputs, x = spec.inputs_and_stem(min_size=LENET_MIN_SIZE)  # (B, 28, 28, C)
    x = spec.conv_norm_act(x, 6, 5, padding="same", name="conv1")  # (B, 28, 28, 6)
    x = Pooling(2, strides=2, name="pool1")(x)  # (B, 14, 14, 6)
    x = spec.conv_norm_act(x, 16, 5, padding="valid", name="conv2")  # (B, 10, 10, 16)
    x = Pooling(2, strides=2, name="pool2")(x)  # (B, 5, 5, 16)

    # Fully connected block.
    x = keras.layers.Flatten(name="flatten")(x)  # (B, 400)
    x = spec.dense_norm_act(x, 120, name="fc1")
    x = spec.dense_norm_act(x, 84, name="fc2")
    outputs = spec.classifier(x)
    return keras.Model(inputs, outputs, name=name)
