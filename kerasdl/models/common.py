"""Pieces every model family shares: the input stem, normalization, conv blocks, the head.

Conventions (documented once here, used by every builder):

- **Input stem.** `keras.Input(input_shape, dtype=input_dtype, name="images")`, then
  `Rescaling(rescale)` when `rescale` is given (the model takes raw images), then
  `Resizing(min_size, min_size)` (bilinear) when the image is smaller than the family's
  `min_size` on either side. Each family documents its `min_size`; small-input stems
  (a 3x3 convolution instead of the 7x7/11x11 strided ImageNet stem) keep that size
  small, so 8x8 digits and 28x28 MNIST train quickly on a CPU.
- **Normalization** (`normalization=`), on convolutional features `(batch, H, W, C)`:
  * `"batch"`: `BatchNormalization` over (batch, H, W) per channel.
  * `"layer"`: `LayerNormalization(axis=(1, 2, 3))`: each sample normalized over all of
    (H, W, C), as in Ba et al. (2016) and PyTorch's `nn.LayerNorm([C, H, W])`, with an
    element-wise scale and offset of shape (H, W, C).
  * `"instance"`: `InstanceNormalization`: each sample and channel over (H, W).
  * `"group"`: `GroupNormalization(groups=g)` with `g` the largest divisor of C that is
    at most `min(32, C // 2)` (Wu & He's 32 groups for wide layers; at least two channels
    per group so that narrow layers, e.g. LeNet's 6 channels -> 3 groups, do not
    silently become instance normalization).
  * `None`: no normalization; convolutions then carry a bias.
  On dense (fully connected) hidden features `(batch, units)`: "batch" -> batch
  normalization, "layer" and "instance" -> `LayerNormalization()` over the units (with no
  spatial axes, per-sample normalization of a feature vector is layer normalization),
  "group" -> `GroupNormalization` over the units with the same group rule.
  The normalization sits between the convolution (or dense layer) and the activation.
- **Weight decay** (`weight_decay=`): `L2(weight_decay)` on every conv and dense kernel
  (not on biases or normalization parameters).
- **Output**: `Dense(num_classes, name="logits")` then
  `Activation("softmax", dtype="float32", name="probabilities")`, float32 even under
  mixed precision.
- **Layer library** (`layer_library=`): `"kerasdl"` (default) builds the normalization,
  dropout and regularizers from `kerasdl.layers` / `kerasdl.regularizers`; `"keras"`
  builds the same graph from Keras' built-in layers (used by
  `benchmarks/train_throughput.py` to compare the two with no duplicated architecture
  code).
"""

import types

import keras

NORMALIZATIONS = ("batch", "layer", "instance", "group", None)
LAYER_LIBRARIES = ("kerasdl", "keras")


def check_positive_ints(**values):
    """ValueError naming the first argument that is not an int >= 1 (bools included)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"`{name}` must be a positive int. Received: {name}={value!r}"
            )


def check_rates(**values):
    """ValueError naming the first argument that is not a float in [0, 1)."""
    for name, value in values.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0.0 <= value < 1.0
        ):
            raise ValueError(
                f"`{name}` must be a float in [0, 1). Received: {name}={value!r}"
            )


def get_layer_library(layer_library="kerasdl"):
    """Returns the namespace the builders take normalization/dropout/L2 from.

    Args:
        layer_library: `"kerasdl"` or `"keras"`. Defaults to `"kerasdl"`.

    Returns:
        A namespace with `BatchNormalization`, `LayerNormalization`,
        `InstanceNormalization`, `GroupNormalization`, `Dropout` and `L2`, each a
        callable taking Keras-style arguments.
    """
    if layer_library == "kerasdl":
        from kerasdl import layers, regularizers

        return types.SimpleNamespace(
            name="kerasdl",
            BatchNormalization=layers.BatchNormalization,
            LayerNormalization=layers.LayerNormalization,
            InstanceNormalization=layers.InstanceNormalization,
            GroupNormalization=layers.GroupNormalization,
            Dropout=layers.Dropout,
            L2=regularizers.L2,
        )
    if layer_library == "keras":

        def instance_normalization(**kwargs):
            # Keras has no InstanceNormalization: one group per channel is the same.
            return keras.layers.GroupNormalization(groups=-1, **kwargs)

        return types.SimpleNamespace(
            name="keras",
            BatchNormalization=keras.layers.BatchNormalization,
            LayerNormalization=keras.layers.LayerNormalization,
            InstanceNormalization=instance_normalization,
            GroupNormalization=keras.layers.GroupNormalization,
            Dropout=keras.layers.Dropout,
            L2=keras.regularizers.L2,
        )
    raise ValueError(
        f"`layer_library` must be one of {LAYER_LIBRARIES}. "
        f"Received: layer_library={layer_library!r}"
    )


def group_count(channels, max_groups=32):
    """The number of groups "group" normalization uses for `channels` channels.

    The largest divisor of `channels` that is at most `min(max_groups, channels // 2)`
    (at least 1): 64 -> 32, 16 -> 8, 6 -> 3, 3 -> 1.
    """
    limit = max(1, min(max_groups, channels // 2))
    for groups in range(limit, 0, -1):
        if channels % groups == 0:
            return groups
    return 1


# Moving-average momentum of the zoo's batch norms: PyTorch's default (0.1 in its
# convention), as torchvision and timm train, rather than Keras' 0.99. The recipes
# train for a few hundred steps, over which 0.99 leaves the moving statistics
# lagging the weights: LeNet with batch norm on digits (300 steps) scored 89.6%
# test accuracy with 0.99, its validation accuracy swinging between 66% and 91%.
BATCH_NORM_MOMENTUM = 0.9


class ModelSpec:
    """The options every builder shares, validated once, plus layer factories.

    Builders create one `ModelSpec` from their arguments and then ask it for
    layers (`spec.conv(...)`, `spec.norm(...)`), so normalization, weight decay and
    the layer library are handled the same way in every family.

    Args:
        input_shape: image shape without batch axis, `(height, width, channels)`.
        num_classes: number of classes, at least 2.
        normalization: one of `NORMALIZATIONS`.
        dropout: dropout rate in [0, 1).
        weight_decay: L2 coefficient, >= 0.
        rescale: `None` or the factor for `Rescaling`.
        input_dtype: dtype of the `Input`.
        activation: the hidden activation (name or callable).
        kernel_initializer: initializer of conv kernels.
        layer_library: `"kerasdl"` or `"keras"`.
    """

    def __init__(
        self,
        input_shape,
        num_classes,
        *,
        normalization,
        dropout,
        weight_decay,
        rescale,
        input_dtype,
        activation="relu",
        kernel_initializer="he_normal",
        layer_library="kerasdl",
    ):
        input_shape = tuple(int(d) for d in input_shape)
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(
                "`input_shape` must be (height, width, channels) with positive sizes. "
                f"Received: input_shape={input_shape}"
            )
        if int(num_classes) < 2:
            raise ValueError(
                f"`num_classes` must be at least 2. Received: num_classes={num_classes}"
            )
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"`normalization` must be one of {NORMALIZATIONS}. "
                f"Received: normalization={normalization!r}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(
                f"`dropout` must be in [0, 1). Received: dropout={dropout}"
            )
        if float(weight_decay) < 0.0:
            raise ValueError(
                f"`weight_decay` must be >= 0. Received: weight_decay={weight_decay}"
            )
        self.input_shape = input_shape
        self.num_classes = int(num_classes)
        self.normalization = normalization
        self.dropout = float(dropout)
        self.weight_decay = float(weight_decay)
        self.rescale = rescale
        self.input_dtype = input_dtype
        self.activation = activation
        self.kernel_initializer = kernel_initializer
        self.library = get_layer_library(layer_library)

    # Input stem ---------------------------------------------------------------

    def inputs_and_stem(self, min_size=None):
        """Creates the `Input` and applies rescaling and the resizing stem.

        Returns:
            `(inputs, x)`: the `keras.Input` and the float tensor to build on.
        """
        inputs = keras.Input(self.input_shape, dtype=self.input_dtype, name="images")
        x = inputs
        if self.rescale is not None:
            x = keras.layers.Rescaling(self.rescale, name="rescale")(x)
        height, width, _ = self.input_shape
        if min_size is not None and min(height, width) < min_size:
            x = keras.layers.Resizing(
                max(height, min_size),
                max(width, min_size),
                interpolation="bilinear",
                name="resize",
            )(x)
        return inputs, x

    # Layer factories ------------------------------------------------------------

    def kernel_regularizer(self):
        if self.weight_decay > 0.0:
            return self.library.L2(self.weight_decay)
        return None

    def conv(self, filters, kernel_size, *, strides=1, padding="same", name, **kwargs):
        """A `Conv2D` with no bias when a normalization follows it."""
        kwargs.setdefault("use_bias", self.normalization is None)
        return keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            kernel_initializer=kwargs.pop(
                "kernel_initializer", self.kernel_initializer
            ),
            kernel_regularizer=self.kernel_regularizer(),
            name=name,
            **kwargs,
        )

    def dense(self, units, *, name, **kwargs):
        return keras.layers.Dense(
            units, kernel_regularizer=self.kernel_regularizer(), name=name, **kwargs
        )

    def norm(self, channels, *, rank=4, name, **kwargs):
        """The normalization layer for features with `channels` channels, or `None`."""
        lib = self.library
        kind = self.normalization
        if kind is None:
            return None
        if kind == "batch":
            kwargs.setdefault("momentum", BATCH_NORM_MOMENTUM)
            return lib.BatchNormalization(name=name, **kwargs)
        if kind == "group":
            return lib.GroupNormalization(
                groups=group_count(channels), name=name, **kwargs
            )
        if rank == 2:  # dense features: "layer" and "instance" both normalize units
            return lib.LayerNormalization(name=name, **kwargs)
        if kind == "layer":
            return lib.LayerNormalization(axis=(1, 2, 3), name=name, **kwargs)
        return lib.InstanceNormalization(name=name, **kwargs)

    def dropout_layer(self, name, rate=None):
        rate = self.dropout if rate is None else rate
        return self.library.Dropout(rate, name=name) if rate > 0 else None

    # Composite blocks -------------------------------------------------------------

    def conv_norm_act(
        self,
        x,
        filters,
        kernel_size,
        *,
        strides=1,
        padding="same",
        name,
        activation=True,
        **conv_kwargs,
    ):
        """conv -> normalization -> activation, named `{name}_conv/_norm/_act`."""
        x = self.conv(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            name=f"{name}_conv",
            **conv_kwargs,
        )(x)
        norm = self.norm(filters, name=f"{name}_norm")
        if norm is not None:
            x = norm(x)
        if activation:
            x = keras.layers.Activation(self.activation, name=f"{name}_act")(x)
        return x

    def dense_norm_act(self, x, units, *, name):
        """dense -> normalization -> activation -> dropout (hidden FC layer)."""
        x = self.dense(units, use_bias=self.normalization is None, name=name)(x)
        norm = self.norm(units, rank=2, name=f"{name}_norm")
        if norm is not None:
            x = norm(x)
        x = keras.layers.Activation(self.activation, name=f"{name}_act")(x)
        dropout = self.dropout_layer(name=f"{name}_dropout")
        if dropout is not None:
            x = dropout(x)
        return x

    def classifier(self, x, *, name="logits"):
        """`Dense(num_classes)` then a float32 softmax named "probabilities"."""
        x = self.dense(self.num_classes, name=name)(x)
        return keras.layers.Activation(
            "softmax", dtype="float32", name="probabilities"
        )(x)

    def pooled_classifier(self, x):
        """Global average pooling, dropout (if any), then the classifier."""
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        dropout = self.dropout_layer(name="head_dropout")
        if dropout is not None:
            x = dropout(x)
        return self.classifier(x)


def resolve_stem(stem, input_shape, imagenet_min_size=96):
    """Resolves `stem="auto"` to `"imagenet"` (min side >= 96) or `"small"`."""
    if stem == "auto":
        return "imagenet" if min(input_shape[:2]) >= imagenet_min_size else "small"
    if stem not in ("imagenet", "small"):
        raise ValueError(
            f"`stem` must be 'auto', 'imagenet' or 'small'. Received: stem={stem!r}"
        )
    return stem
