"""2-D convolution with a weight-standardized kernel (BiT's StdConv)."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="kerasdl")
class StdConv2D(keras.layers.Conv2D):
    """2-D convolution whose kernel is standardized per output filter.

    Before each convolution, every filter's kernel is given zero mean and unit
    variance over its `(kernel_height, kernel_width, in_channels / groups)`
    values:

    `kernel_hat = (kernel - mean) / sqrt(variance + epsilon)`

    (biased variance), and the layer convolves with `kernel_hat`; the stored
    `kernel` variable is left as is and trained through the standardization.
    Weight Standardization smooths the loss landscape and, with
    `GroupNormalization` instead of batch norm, lets networks train with
    tiny per-device batches: it is the convolution of Big Transfer (BiT)
    ResNets and of timm's `StdConv2d`.

    Everything else is `keras.layers.Conv2D`: all of its arguments work and
    serialize, and the bias and activation are applied after the
    standardized convolution. The statistics are computed in float32; under
    a mixed precision policy the standardized kernel is cast to the compute
    dtype for the convolution.

    Args:
        epsilon: small float added to the variance of each filter. timm's
            `StdConv2d` uses `1e-6` (the default here); the original BiT
            code and some ports (timm's `StdConv2dSame` for BiT weights) use
            `1e-10`: set it to the value the pretrained weights were trained
            with. Defaults to `1e-6`.
        **kwargs: the arguments of `keras.layers.Conv2D` (`filters`,
            `kernel_size`, `strides`, `padding`, `data_format`,
            `dilation_rate`, `groups`, `activation`, `use_bias`, initializers,
            regularizers, constraints) and base layer arguments.

    Call arguments:
        inputs: 4-D tensor, `(batch, height, width, channels)` for
            `data_format="channels_last"` or `(batch, channels, height, width)`
            for `"channels_first"`.

    Reference:
        - [Qiao et al., 2019 (Weight Standardization)](
          https://arxiv.org/abs/1903.10520).
        - [Kolesnikov et al., 2020 (Big Transfer, BiT)](
          https://arxiv.org/abs/1912.11370).

    Example:

    >>> conv = kerasdl.layers.StdConv2D(8, 3, padding="same", use_bias=False)
    >>> norm = kerasdl.layers.GroupNormalization(groups=4)
    >>> x = np.random.rand(2, 16, 16, 3).astype("float32")
    >>> tuple(norm(conv(x)).shape)
    (2, 16, 16, 8)
    """

    def __init__(self, *args, epsilon=1e-6, **kwargs):
        if (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, (int, float))
            or not (epsilon > 0 and np.isfinite(epsilon))
        ):
            raise ValueError(
                f"`epsilon` must be a positive finite float. Received: epsilon={epsilon!r}"
            )
        super().__init__(*args, **kwargs)
        self.epsilon = float(epsilon)

    def standardized_kernel(self, kernel=None):
        """`kernel` (default: this layer's) standardized per filter, in float32."""
        kernel = ops.cast(self.kernel if kernel is None else kernel, "float32")
        # kernel: (kernel_h, kernel_w, in_channels / groups, filters)
        mean, variance = ops.moments(kernel, axes=[0, 1, 2], keepdims=True)
        return (kernel - mean) * ops.rsqrt(variance + self.epsilon)

    def convolution_op(self, inputs, kernel):
        kernel = ops.cast(self.standardized_kernel(kernel), self.compute_dtype)
        return super().convolution_op(inputs, kernel)

    def get_config(self):
        config = super().get_config()
        config["epsilon"] = self.epsilon
        return config
