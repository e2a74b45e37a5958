"""Instance normalization: statistics per sample and channel."""

from typing import ClassVar

import keras
from keras import ops

from kerasdl.layers.normalization import base, fused


@keras.saving.register_keras_serializable(package="kerasdl")
class InstanceNormalization(base.BaseNormalization):
    """Layer that normalizes each channel of each sample over its spatial axes.

    For every sample and every channel (along `axis`), the values over all the
    other non-batch axes (height and width of an image, time of a sequence)
    are normalized with their own mean and biased variance, then scaled by the
    per-channel `gamma` and shifted by `beta`. This is
    `GroupNormalization(groups=-1)` without the reshape.

    By default the statistics come from the instance in training and inference
    alike. With `track_running_stats=True` the layer behaves like
    `torch.nn.InstanceNorm2d(track_running_stats=True)`: training updates a
    moving mean and variance with the batch average of the per-instance
    statistics, and inference normalizes with those moving statistics.
    `momentum` follows `convention`: the weight of the old average for
    `"keras"` (default `0.99`), of the new batch for `"torch"` (default `0.1`,
    and the tracked variance is unbiased, `n / (n - 1)` times the instance
    variance, as in PyTorch). `epsilon` defaults to `1e-3` / `1e-5`.

    Statistics are computed in float32. With a Keras mask, masked time steps
    do not enter the statistics; the mask is passed on.

    Args:
        axis: int, the channel axis: `-1` for channels-last inputs, `1` for
            channels-first. Defaults to `-1`.
        epsilon: small float added to the variance, or `None` for the
            convention's default (`1e-3` / `1e-5`). Defaults to `None`.
        center: whether to add the learned offset `beta`. Defaults to `True`.
        scale: whether to multiply by the learned scale `gamma`.
            Defaults to `True`.
        beta_initializer: initializer of `beta`. Defaults to `"zeros"`.
        gamma_initializer: initializer of `gamma`. Defaults to `"ones"`.
        beta_regularizer: optional regularizer of `beta`. Defaults to `None`.
        gamma_regularizer: optional regularizer of `gamma`. Defaults to `None`.
        beta_constraint: optional constraint on `beta`. Defaults to `None`.
        gamma_constraint: optional constraint on `gamma`. Defaults to `None`.
        track_running_stats: whether to keep moving statistics for inference.
            Defaults to `False`.
        momentum: float in `[0, 1]` or `None` for the convention's default,
            used with `track_running_stats`. Defaults to `None`.
        moving_mean_initializer: initializer of the moving mean.
            Defaults to `"zeros"`.
        moving_variance_initializer: initializer of the moving variance.
            Defaults to `"ones"`.
        convention: `"keras"` or `"torch"`. Defaults to `"keras"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of rank >= 3 (batch, spatial..., channels).
        training: with `track_running_stats`, whether to use and update the
            batch statistics. Defaults to the Keras learning phase.
        mask: optional boolean mask of rank `rank(inputs) - 1`.

    Reference:
        - [Ulyanov et al., 2016](https://arxiv.org/abs/1607.08022).

    Example:

    >>> x = np.random.rand(2, 16, 16, 3).astype("float32")
    >>> kerasdl.layers.InstanceNormalization()(x).shape
    (2, 16, 16, 3)
    """

    _TORCH_KEYS: ClassVar[dict] = {
        "weight": "gamma",
        "bias": "beta",
        "running_mean": "moving_mean",
        "running_var": "moving_variance",
    }

    def __init__(
        self,
        axis=-1,
        epsilon=None,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        track_running_stats=False,
        momentum=None,
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        convention="keras",
        **kwargs,
    ):
        if isinstance(axis, (list, tuple)):
            # ValueError, as for every bad argument value (Keras' convention).
            raise ValueError(  # noqa: TRY004
                "`axis` of InstanceNormalization must be a single int. "
                f"Received: axis={axis!r}"
            )
        super().__init__(
            axis=axis,
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
            convention=convention,
            **kwargs,
        )
        self.track_running_stats = bool(track_running_stats)
        self.momentum = base.resolve_momentum(momentum, self.convention)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(
            moving_variance_initializer
        )
        self.moving_mean = None
        self.moving_variance = None

    def build(self, input_shape):
        self._check_rank(input_shape, 3)
        ndim = len(input_shape)
        (channel_axis,) = base.normalize_axes(self.axis, ndim)
        self._check_defined(input_shape, [channel_axis])
        self._channel_axis = channel_axis
        self._reduction_axes = [a for a in range(1, ndim) if a != channel_axis]
        channels = input_shape[channel_axis]
        broadcast_shape = [1] * ndim
        broadcast_shape[channel_axis] = channels
        self._build_affine((channels,), broadcast_shape)
        if self.track_running_stats:
            self.moving_mean = self._moving_weight(
                "moving_mean", (channels,), self.moving_mean_initializer
            )
            self.moving_variance = self._moving_weight(
                "moving_variance", (channels,), self.moving_variance_initializer
            )
        self.input_spec = keras.layers.InputSpec(
            ndim=ndim, axes={channel_axis: channels}
        )

    def call(self, inputs, training=None, mask=None):
        x = ops.cast(inputs, "float32")
        gamma = self._broadcast(self.gamma)
        beta = self._broadcast(self.beta)

        if self.track_running_stats and not (training and self.trainable):
            mean = self._broadcast(self.moving_mean)
            variance = self._broadcast(self.moving_variance)
            return self._output(
                base.normalize(x, mean, variance, gamma, beta, self.epsilon)
            )

        weights = None if mask is None else base.broadcast_mask(mask, x)
        fast = (
            weights is None
            and self._channel_axis == len(x.shape) - 1
            and fused.enabled()
        )
        if fast:  # (batch, positions, channels): the closed-form gradient
            shape, channels = ops.shape(x), x.shape[-1]
            x = fused.sample_view(x)
            mean, variance, count = fused.channel_moments(x)
        else:
            mean, variance, count = base.moments(x, self._reduction_axes, mask=weights)

        if self.track_running_stats:
            # Batch average of the per-instance statistics, as PyTorch does.
            if self.convention == "torch":
                tracked_variance = base.unbiased_variance(variance, count)
                decay = 1.0 - self.momentum
            else:
                tracked_variance = variance
                decay = self.momentum
            batch_mean = ops.reshape(ops.mean(mean, axis=0), (-1,))
            batch_variance = ops.reshape(ops.mean(tracked_variance, axis=0), (-1,))
            # In the variables' dtype (float64 under a float64 policy).
            batch_mean = ops.cast(batch_mean, self.moving_mean.dtype)
            batch_variance = ops.cast(batch_variance, self.moving_variance.dtype)
            self.moving_mean.assign(
                self.moving_mean * decay + batch_mean * (1.0 - decay)
            )
            self.moving_variance.assign(
                self.moving_variance * decay + batch_variance * (1.0 - decay)
            )

        if fast:
            outputs = fused.normalize_channels(
                x,
                mean,
                variance,
                *self._affine_vectors(),
                self.epsilon,
                groups=channels,
            )
            return self._output(ops.reshape(outputs, shape))
        return self._output(
            base.normalize(x, mean, variance, gamma, beta, self.epsilon)
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "track_running_stats": self.track_running_stats,
                "momentum": self.momentum,
                "moving_mean_initializer": keras.initializers.serialize(
                    self.moving_mean_initializer
                ),
                "moving_variance_initializer": keras.initializers.serialize(
                    self.moving_variance_initializer
                ),
            }
        )
        return config
