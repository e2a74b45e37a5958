"""Layer normalization over the feature axes of each sample."""

import warnings

import keras
from keras import ops

from kerasdl.layers.normalization import base, fused


@keras.saving.register_keras_serializable(package="kerasdl")
class LayerNormalization(base.BaseNormalization):
    """Layer that normalizes each sample over its feature axes.

    For every sample (and every position along the axes not in `axis`), the
    values along `axis` are normalized with their own mean and biased variance,
    then scaled by `gamma` and shifted by `beta` (both shaped like the
    normalized axes):

    `gamma * (x - mean(x, axis)) / sqrt(var(x, axis) + epsilon) + beta`

    The statistics do not depend on the batch, so training and inference
    compute the same thing. With `convention="keras"` the layer matches
    `keras.layers.LayerNormalization`; with `convention="torch"` only the
    default `epsilon` changes, to PyTorch's `1e-5` (`torch.nn.LayerNorm` over
    the trailing dims named by `axis`). Statistics are computed in float32.

    With a Keras mask (shaped like the inputs without their last axis) and an
    `axis` that spans masked axes (e.g. `axis=[1, 2]` on `(batch, time,
    features)` inputs), masked time steps do not enter the statistics. The
    mask is passed on.

    The layer may be called on inputs of another rank than it was built for,
    as long as the axes in `axis` resolve to dimensions of the sizes it was
    built with (e.g. `axis=-1` built on `(batch, features)` also normalizes
    `(batch, time, features)`).

    `rms_scaling=True` is Keras' deprecated option, kept for compatibility:
    the outputs are `x * rsqrt(var(x, axis) + epsilon) * gamma` (the inputs
    are scaled by their *variance*, not centered, and there is no `beta`).
    For root mean square normalization use `kerasdl.layers.RMSNormalization`.

    Args:
        axis: int or list of ints, the axes to normalize over (never the batch
            axis). Defaults to `-1`.
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
        rms_scaling: deprecated, see above: whether to scale the
            uncentered inputs by `rsqrt(variance + epsilon)` and `gamma` only.
            Creates `gamma` even with `scale=False`, and no `beta`.
            Defaults to `False`.
        convention: `"keras"` or `"torch"`. Defaults to `"keras"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of rank >= 2.
        mask: optional boolean mask of rank `rank(inputs) - 1`.

    Reference:
        - [Ba et al., 2016](https://arxiv.org/abs/1607.06450).

    Example:

    >>> x = np.random.rand(2, 10, 64).astype("float32")
    >>> kerasdl.layers.LayerNormalization()(x).shape
    (2, 10, 64)
    """

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
        rms_scaling=False,
        convention="keras",
        **kwargs,
    ):
        if rms_scaling:
            warnings.warn(
                "`rms_scaling=True` is deprecated (as in Keras): it scales the "
                "inputs by their variance, not their root mean square. Use "
                "`kerasdl.layers.RMSNormalization` for RMS normalization.",
                stacklevel=2,
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
        self.rms_scaling = bool(rms_scaling)

    def build(self, input_shape):
        self._check_rank(input_shape, 2)
        ndim = len(input_shape)
        axes = base.normalize_axes(self.axis, ndim)
        self._check_defined(input_shape, axes)
        param_shape = tuple(input_shape[a] for a in axes)
        self._build_affine(
            param_shape,
            self._axes_broadcast_shape(axes, ndim, param_shape),
            scale=self.scale or self.rms_scaling,
            center=self.center and not self.rms_scaling,
        )
        self.input_spec = self._axes_input_spec(input_shape)

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
        if (
            weights is None
            and axes == [ndim - 1]
            and not self.rms_scaling
            and fused.enabled()
        ):
            return self._output(self._fused_call(x))
        mean, variance, _ = base.moments(x, axes, mask=weights)
        param_shape = tuple(x.shape[a] for a in axes)
        broadcast_shape = self._axes_broadcast_shape(axes, ndim, param_shape)
        gamma = self._broadcast(self.gamma, broadcast_shape)
        if self.rms_scaling:  # Keras' deprecated variant: no centering, no beta
            factor = ops.rsqrt(variance + self.epsilon)
            if gamma is not None:
                factor = factor * gamma
            return self._output(x * factor)
        outputs = base.normalize(
            x,
            mean,
            variance,
            gamma,
            self._broadcast(self.beta, broadcast_shape),
            self.epsilon,
        )
        return self._output(outputs)

    def _fused_call(self, x):
        """Last-axis layer norm with the closed-form gradient (see `fused`)."""
        shape = ops.shape(x)
        rows = fused.sample_view(x)
        mean, variance, _ = fused.row_moments(rows)
        outputs = fused.normalize_rows(
            rows,
            mean,
            variance,
            *self._affine_vectors(),
            self.epsilon,
        )
        return ops.reshape(outputs, shape)

    def get_config(self):
        config = super().get_config()
        config["rms_scaling"] = self.rms_scaling
        return config
