import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasdl")
class SinePositionEncoding(keras.layers.Layer):
    """Fixed sinusoidal position encoding of "Attention Is All You Need".

    For position `pos` and feature pair `i` of a width-`d` sequence,

    ```
    PE(pos, 2i)   = sin(pos / max_wavelength^(2i / d))
    PE(pos, 2i+1) = cos(pos / max_wavelength^(2i / d))
    ```

    so even features hold sines and odd features cosines, with wavelengths
    growing geometrically from `2*pi` to `max_wavelength * 2*pi`. The layer
    returns the encoding with the input's shape (it has no weights); add it to
    the token embeddings yourself: `x = embeddings + SinePositionEncoding()(embeddings)`.

    Args:
        max_wavelength: float, the base `10000` of the formula. Defaults to
            `10000`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `(batch, length, d)` (or `(length, d)`); only the shape is used.
        start_index: int or scalar tensor, the position of the first step, for
            decoding one token at a time. Defaults to `0`.

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762), section 3.5.

    Example:

    ```python
    embeddings = keras.layers.Embedding(1000, 64)(token_ids)  # (batch, length, 64)
    x = embeddings + kerasdl.layers.SinePositionEncoding()(embeddings)
    ```
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(max_wavelength, (int, float)) or max_wavelength <= 1:
            raise ValueError(
                "`max_wavelength` must be a number greater than 1. "
                f"Received: max_wavelength={max_wavelength!r}"
            )
        self.max_wavelength = max_wavelength
        self.supports_masking = True
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, width = shape[-2], inputs.shape[-1]
        positions = ops.cast(ops.arange(length) + start_index, "float32")  # (T,)
        features = ops.arange(width)  # (d,)
        pair = ops.cast(features // 2 * 2, "float32")  # 2i for features 2i, 2i+1
        inverse_frequency = ops.power(
            ops.cast(self.max_wavelength, "float32"), -pair / float(width)
        )
        angles = ops.expand_dims(positions, -1) * inverse_frequency  # (T, d)
        is_even = ops.equal(features % 2, 0)
        encoding = ops.where(is_even, ops.sin(angles), ops.cos(angles))
        encoding = ops.cast(encoding, self.compute_dtype)
        return ops.broadcast_to(encoding, shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
