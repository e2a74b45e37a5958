"""Root mean square normalization over the feature axes of each sample."""

from typing import ClassVar

import keras
from keras import ops

from kerasdl.layers.normalization import base, fused

# Machine epsilon of each floating dtype: PyTorch's default `eps`
# (`torch.finfo(dtype).eps`) for `convention="torch"`.
_MACHINE_EPSILON = {
    "float16": 2.0**-10,
    "bfloat16": 2.0**-7,
    "float32": 2.0**-23,
    "float64": 2.0**-52,
}


@keras.saving.register_keras_serializable(package="kerasdl")
class RMSNormalization(base.BaseNormalization):
    """Layer that scales each sample by the root mean square of its features.

    For every sample (and every position along the axes not in `axis`), the
    values along `axis` are divided by their root mean square, then
    multiplied by the learned `scale` (shaped like the normalized axes):

    `x * rsqrt(mean(square(x), axis) + epsilon) * scale`

    Unlike layer normalization there is no centering and no offset. The
    statistics do not depend on the batch, so training and inference compute
    the same thing; they are computed in float32, and under a mixed precision
    policy the output is in the compute dtype.

    With `convention="keras"` (and the default arguments) the layer computes
    what `keras.layers.RMSNormalization` computes, with the same weight
    (`scale`, initialized to ones). With `convention="torch"` it follows
    `torch.nn.RMSNorm`: `epsilon=None` means the machine epsilon of the
    layer's compute dtype (`torch.finfo(dtype).eps`: `1.19e-7` for float32),
    PyTorch's `normalized_shape` is given as the trailing axes (`axis=-1` for
    one dimension, `axis=[-2, -1]` for two), and its `elementwise_affine` is
    `use_scale`. `load_torch_state_dict` loads a `torch.nn.RMSNorm`'s
    `weight`.

    With a Keras mask (shaped like the inputs without their last axis) and an
    `axis` that spans masked axes, masked time steps do not enter the mean
    square. The mask is passed on. As `LayerNormalization`, the layer may be
    called on inputs of another rank than it was built for, as long as the
    axes in `axis` resolve to dimensions of the built sizes.

    Args:
        axis: int or list of ints, the axes to normalize over (never the batch
            axis). Defaults to `-1`.
        epsilon: small float added to the mean square, or `None` for the
            convention's default: `1e-6` (`"keras"`) or the compute dtype's
            machine epsilon (`"torch"`). Defaults to `None`.
        use_scale: whether to multiply by the learned `scale`
            (`elementwise_affine` in PyTorch). Defaults to `True`.
        scale_initializer: initializer of `scale`. Defaults to `"ones"`.
        scale_regularizer: optional regularizer of `scale`. Defaults to `None`.
        scale_constraint: optional constraint on `scale`. Defaults to `None`.
        convention: `"keras"` or `"torch"`. Defaults to `"keras"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of rank >= 2.
        mask: optional boolean mask of rank `rank(inputs) - 1`.

    Reference:
        - [Zhang and Sennrich, 2019](https://arxiv.org/abs/1910.07467).

    Example:

    >>> x = np.random.rand(2, 10, 64).astype("float32")
    >>> kerasdl.layers.RMSNormalization()(x).shape
    (2, 10, 64)
    """

    _TORCH_KEYS: ClassVar[dict] = {"weight": "scale"}

    def __init__(
        self,
        axis=-1,
        epsilon=None,
        use_scale=True,
        scale_initializer="ones",
        scale_regularizer=None,
        scale_constraint=None,
        convention="keras",
        **kwargs,
    ):
        # The base's `center` / `scale` flags and `gamma` / `beta` stay unused:
        # this layer's one weight is `scale`, as in Keras.
        base.reject_kwargs(
            "RMSNormalization",
            kwargs,
            [
                "center",
                "scale",
                "beta_initializer",
                "gamma_initializer",
                "beta_regularizer",
                "gamma_regularizer",
                "beta_constraint",
                "gamma_constraint",
            ],
        )
        super().__init__(
            axis=axis,
            epsilon=epsilon,
            center=False,
            scale=False,
            convention=convention,
            **kwargs,
        )
        if epsilon is None:
            self.epsilon = 1e-6 if self.convention == "keras" else None
        self.use_scale = bool(use_scale)
        self.scale_initializer = keras.initializers.get(scale_initializer)
        self.scale_regularizer = keras.regularizers.get(scale_regularizer)
        self.scale_constraint = keras.constraints.get(scale_constraint)
        self.scale = None

    def build(self, input_shape):
        self._check_rank(input_shape, 2)
        ndim = len(input_shape)
        axes = base.normalize_axes(self.axis, ndim)
        self._check_defined(input_shape, axes)
        if self.use_scale:
            self.scale = self.add_weight(
                shape=tuple(input_shape[a] for a in axes),
                name="scale",
                initializer=self.scale_initializer,
                regularizer=self.scale_regularizer,
                constraint=self.scale_constraint,
                trainable=True,
                autocast=False,
            )
        self.input_spec = self._axes_input_spec(input_shape)

    def _epsilon(self):
        if self.epsilon is not None:
            return self.epsilon
        return _MACHINE_EPSILON.get(self.compute_dtype, _MACHINE_EPSILON["float32"])

    def call(self, inputs, mask=None):
        x = ops.cast(inputs, "float32")
        ndim = len(x.shape)
        axes = base.normalize_axes(self.axis, ndim)
        weights = None
        if mask is not None and (
            len(mask.shape) == ndim or any(a != ndim - 1 for a in axes)
        ):
            # The mask (no last axis) only matters where the statistics span
            # the axes it covers.
            weights = base.broadcast_mask(mask, x)
        scale = None
        if self.scale is not None:
            scale = ops.cast(self.scale, "float32")
        if weights is None and axes == [ndim - 1] and fused.enabled():
            # (N, S, C) rows with the closed-form gradient (see `fused`).
            shape = ops.shape(x)
            outputs = fused.rms_normalize_rows(
                fused.sample_view(x), scale, self._epsilon()
            )
            return self._output(ops.reshape(outputs, shape))

        if weights is None:
            mean_square = ops.mean(ops.square(x), axis=axes, keepdims=True)
        else:
            count = ops.maximum(ops.sum(weights, axis=axes, keepdims=True), 1.0)
            mean_square = (
                ops.sum(ops.square(x) * weights, axis=axes, keepdims=True) / count
            )
        factor = ops.rsqrt(mean_square + self._epsilon())
        outputs = x * factor
        if scale is not None:
            param_shape = tuple(x.shape[a] for a in axes)
            broadcast = self._axes_broadcast_shape(axes, ndim, param_shape)
            outputs = outputs * ops.reshape(scale, broadcast)
        return self._output(outputs)

    def _affine_config(self):
        return {
            "use_scale": self.use_scale,
            "scale_initializer": keras.initializers.serialize(self.scale_initializer),
            "scale_regularizer": keras.regularizers.serialize(self.scale_regularizer),
            "scale_constraint": keras.constraints.serialize(self.scale_constraint),
        }
