"""Layer normalization over the feature axes of each sample."""

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

    With a Keras mask and an `axis` that includes masked axes (e.g.
    `axis=[1, 2]` on `(batch, time, features)` inputs), masked time steps do
    not enter the statistics. The mask is passed on.

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
        convention="keras",
        **kwargs,
    ):
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

    def build(self, input_shape):
        self._check_rank(input_shape, 2)
        ndim = len(input_shape)
        axes = base.normalize_axes(self.axis, ndim)
        self._check_defined(input_shape, axes)
        self._axes = axes
        # The mask has no feature axis; it is expanded at the last feature axis.
        self._channel_axis = axes[-1]
        param_shape = tuple(input_shape[a] for a in axes)
        broadcast_shape = [1] * ndim
        for a in axes:
            broadcast_shape[a] = input_shape[a]
        self._build_affine(param_shape, broadcast_shape)
        self.input_spec = keras.layers.InputSpec(
            ndim=ndim, axes={a: input_shape[a] for a in axes}
        )

    def call(self, inputs, mask=None):
        x = ops.cast(inputs, "float32")
        weights = None
        if mask is not None and len(mask.shape) == len(x.shape) - 1:
            # Masked steps only matter when the statistics span them.
            mask_axes = [a for a in self._axes if a != self._channel_axis]
            if mask_axes:
                weights = base.broadcast_mask(mask, x, self._channel_axis)
        if weights is None and self._axes == [len(x.shape) - 1] and fused.enabled():
            return self._output(self._fused_call(x))
        mean, variance, _ = base.moments(x, self._axes, mask=weights)
        outputs = base.normalize(
            x,
            mean,
            variance,
            self._broadcast(self.gamma),
            self._broadcast(self.beta),
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

    def compute_output_shape(self, input_shape):
        return input_shape
