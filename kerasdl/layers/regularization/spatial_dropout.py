"""`SpatialDropout1D/2D/3D`: dropout of whole feature maps (one file, one family)."""

import keras

from kerasdl.layers.regularization._build import build_at_init
from kerasdl.layers.regularization._rate import validate_rate


class _SpatialDropout(keras.layers.Layer):
    """Drops whole channels; subclasses set `rank`, the number of spatial axes."""

    rank = None

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = validate_rate(rate)
        if data_format is None:
            data_format = keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                'Invalid value for argument `data_format`: expected "channels_last" '
                f'or "channels_first". Received: data_format={data_format!r}'
            )
        self.data_format = data_format
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2)
        # Element-wise, so an incoming Keras mask passes through, as in Keras.
        self.supports_masking = True
        build_at_init(self)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if self.rate == 1:
            return keras.ops.zeros_like(inputs)
        # One draw per (sample, channel); the mask is broadcast over space.
        shape = keras.ops.shape(inputs)
        ones = (1,) * self.rank
        if self.data_format == "channels_last":
            noise_shape = (shape[0], *ones, shape[-1])  # (batch, 1, ..., channels)
        else:
            noise_shape = (shape[0], shape[1], *ones)  # (batch, channels, 1, ...)
        return keras.random.dropout(
            inputs, self.rate, noise_shape=noise_shape, seed=self.seed_generator
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"rate": self.rate, "data_format": self.data_format, "seed": self.seed}
        )
        return config


_DOCSTRING = """Spatial {rank}D dropout: drops entire {maps} instead of single units.

    During training each channel of each sample is zeroed with probability
    `rate`, over all its {positions} at once, and the kept channels are scaled
    by `1 / (1 - rate)`. Neighbouring activations of a convolutional feature
    map are strongly correlated, so element-wise `Dropout` barely removes
    information there; dropping whole maps does, and pushes the channels
    towards independence. At inference the layer is the identity.{order}

    Args:
        rate: float in `[0, 1]`, the fraction of channels to drop; `1` drops
            them all (the output is zeros in training).
        data_format: `"channels_last"` (inputs `{last}`) or `"channels_first"`
            (inputs `{first}`). Defaults to `None`, which reads
            `keras.config.image_data_format()`.
        seed: optional int, the seed of the mask generator. Defaults to `None`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a {ndim}D tensor; any other rank raises a `ValueError`. Its
            Keras mask, if any, is passed on unchanged.
        training: bool, whether to drop channels. Defaults to `False`.

    Reference:
        - [Tompson et al., 2015](https://arxiv.org/abs/1411.4280)

    Example:

    ```python
    layer = kerasdl.layers.SpatialDropout{rank}D(0.25, seed=0)
    y = layer(np.ones({example}, "float32"), training=True)
    # every channel of y is either all 0.0 or all 1/(1-0.25)
    ```
    """


@keras.saving.register_keras_serializable(package="kerasdl")
class SpatialDropout1D(_SpatialDropout):
    __doc__ = _DOCSTRING.format(
        rank=1,
        maps="1D feature maps (channels of a sequence)",
        positions="timesteps",
        last="(batch, steps, channels)",
        first="(batch, channels, steps)",
        ndim=3,
        example="(2, 10, 8)",
        order=" As in Keras, the\n    second positional argument is `seed`: `SpatialDropout1D(rate, seed)`.",
    )
    rank = 1

    def __init__(self, rate, seed=None, data_format=None, **kwargs):
        # Keras' `SpatialDropout1D(rate, seed)` takes `seed` second.
        super().__init__(rate, data_format=data_format, seed=seed, **kwargs)


@keras.saving.register_keras_serializable(package="kerasdl")
class SpatialDropout2D(_SpatialDropout):
    __doc__ = _DOCSTRING.format(
        rank=2,
        maps="2D feature maps (channels of an image)",
        positions="pixels",
        last="(batch, height, width, channels)",
        first="(batch, channels, height, width)",
        ndim=4,
        example="(2, 8, 8, 16)",
        order="",
    )
    rank = 2


@keras.saving.register_keras_serializable(package="kerasdl")
class SpatialDropout3D(_SpatialDropout):
    __doc__ = _DOCSTRING.format(
        rank=3,
        maps="3D feature maps (channels of a volume)",
        positions="voxels",
        last="(batch, depth, height, width, channels)",
        first="(batch, channels, depth, height, width)",
        ndim=5,
        example="(2, 4, 8, 8, 16)",
        order="",
    )
    rank = 3
