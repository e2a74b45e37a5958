"""Batch normalization with fixed statistics and affine weights, for fine-tuning."""

from typing import ClassVar

import keras
from keras import ops

from kerasdl.layers.normalization import base


@keras.saving.register_keras_serializable(package="kerasdl")
class FrozenBatchNormalization(base.BaseNormalization):
    """Batch normalization whose statistics and affine weights never change.

    The layer always computes the inference form of batch normalization,

    `(x - moving_mean) * rsqrt(moving_variance + epsilon) * gamma + beta`,

    whatever `training` is, and none of its four weights is trainable or ever
    updated: `fit` leaves them exactly as loaded. This is what fine-tuning a
    pretrained convolutional network with small batches usually wants (the
    batch statistics of a few images are a poor estimate, and updating them
    degrades the backbone); it is timm's and torchvision's
    `FrozenBatchNorm2d`, for any channel axis and any input rank.

    The weights have the names and shapes of `keras.layers.BatchNormalization`
    and `kerasdl.layers.BatchNormalization` (`gamma`, `beta`, `moving_mean`,
    `moving_variance`), so `set_weights(bn.get_weights())` copies a trained
    batch norm's weights across; `kerasdl.layers.freeze_batch_norm(model)`
    does it for a whole model. `load_torch_state_dict` loads a PyTorch
    `BatchNorm*d` or `FrozenBatchNorm2d` state dict.

    The statistics are applied in float32; under a mixed precision policy the
    output is in the compute dtype.

    Args:
        axis: int, the channel axis. `-1` for channels-last inputs,
            `1` for channels-first. Defaults to `-1`.
        epsilon: small float added to the variance, or `None` for the
            convention's default (`1e-3` for `"keras"`, `1e-5` for `"torch"`,
            which is also timm's and torchvision's default). Use the epsilon
            of the batch norm the weights come from. Defaults to `None`.
        center: whether the layer has the offset `beta`. Defaults to `True`.
        scale: whether the layer has the scale `gamma`. Defaults to `True`.
        beta_initializer: initializer of `beta`. Defaults to `"zeros"`.
        gamma_initializer: initializer of `gamma`. Defaults to `"ones"`.
        moving_mean_initializer: initializer of the moving mean.
            Defaults to `"zeros"`.
        moving_variance_initializer: initializer of the moving variance.
            Defaults to `"ones"`.
        convention: `"keras"` or `"torch"`; only chooses the default
            `epsilon`. Defaults to `"keras"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of rank >= 2.
        training: accepted and ignored: the layer computes the same thing in
            training and in inference.
        mask: accepted and passed on unchanged (the layer is elementwise).

    Reference:
        - [Ioffe and Szegedy, 2015](https://arxiv.org/abs/1502.03167).
        - timm's `FrozenBatchNorm2d` (`timm/layers/norm_act.py`) and
          torchvision's `torchvision.ops.FrozenBatchNorm2d`.

    Example:

    >>> bn = keras.layers.BatchNormalization()
    >>> x = np.random.rand(8, 4, 4, 3).astype("float32")
    >>> _ = bn(x, training=True)
    >>> frozen = kerasdl.layers.FrozenBatchNormalization(epsilon=bn.epsilon)
    >>> frozen.build(x.shape)
    >>> frozen.set_weights(bn.get_weights())
    >>> np.allclose(frozen(x, training=True), bn(x, training=False), atol=1e-6)
    True
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
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        convention="keras",
        **kwargs,
    ):
        if isinstance(axis, (list, tuple)):
            raise ValueError(  # noqa: TRY004 (a bad value, as in Keras)
                "`axis` of FrozenBatchNormalization must be a single int. "
                f"Received: axis={axis!r}"
            )
        # No trainable weights: nothing for a regularizer or constraint.
        base.reject_kwargs(
            "FrozenBatchNormalization",
            kwargs,
            [
                "beta_regularizer",
                "gamma_regularizer",
                "beta_constraint",
                "gamma_constraint",
            ],
        )
        super().__init__(
            axis=axis,
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            convention=convention,
            **kwargs,
        )
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(
            moving_variance_initializer
        )
        self.moving_mean = None
        self.moving_variance = None

    def build(self, input_shape):
        self._check_rank(input_shape, 2)
        ndim = len(input_shape)
        (channel_axis,) = base.normalize_axes(self.axis, ndim)
        self._check_defined(input_shape, [channel_axis])
        channels = input_shape[channel_axis]
        broadcast_shape = [1] * ndim
        broadcast_shape[channel_axis] = channels
        self._param_broadcast_shape = broadcast_shape
        # Same names, shapes and creation order as BatchNormalization, all
        # four non-trainable.
        if self.scale:
            self.gamma = self._moving_weight(
                "gamma", (channels,), self.gamma_initializer
            )
        if self.center:
            self.beta = self._moving_weight("beta", (channels,), self.beta_initializer)
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
        del training, mask  # The same computation in training and inference.
        outputs = base.normalize(
            ops.cast(inputs, "float32"),
            self._broadcast(self.moving_mean),
            self._broadcast(self.moving_variance),
            self._broadcast(self.gamma),
            self._broadcast(self.beta),
            self.epsilon,
        )
        return self._output(outputs)

    def get_config(self):
        # Not BaseNormalization's config: the regularizers and constraints it
        # adds have nothing to act on in a layer without trainable weights.
        config = keras.layers.Layer.get_config(self)
        config.update(
            {
                "axis": self.axis,
                "epsilon": self.epsilon,
                "center": self.center,
                "scale": self.scale,
                "beta_initializer": keras.initializers.serialize(self.beta_initializer),
                "gamma_initializer": keras.initializers.serialize(
                    self.gamma_initializer
                ),
                "moving_mean_initializer": keras.initializers.serialize(
                    self.moving_mean_initializer
                ),
                "moving_variance_initializer": keras.initializers.serialize(
                    self.moving_variance_initializer
                ),
                "convention": self.convention,
            }
        )
        return config
