"""Batch normalization with batch renorm, ghost batches and a PyTorch mode."""

from typing import ClassVar

import keras
from keras import ops

from kerasdl.layers.normalization import base, fused


def _clone_initializer(initializer):
    """A fresh copy of a Keras initializer (new seed); a plain callable as is."""
    if isinstance(initializer, keras.initializers.Initializer):
        return initializer.__class__.from_config(initializer.get_config())
    return initializer


@keras.saving.register_keras_serializable(package="kerasdl")
class BatchNormalization(base.BaseNormalization):
    """Layer that normalizes its inputs with the statistics of the batch.

    In training (`training=True` and the layer trainable) each channel is
    normalized with the mean and the biased variance of the current batch,
    computed over every axis but `axis`, and the moving statistics are updated
    as `moving = momentum * moving + (1 - momentum) * batch` (`"keras"`
    convention). In inference the moving statistics are used instead:

    `gamma * (x - mean) / sqrt(variance + epsilon) + beta`

    With `convention="keras"` (and the default arguments) the layer computes
    exactly what `keras.layers.BatchNormalization` computes. With
    `convention="torch"` it follows `torch.nn.BatchNorm*d`: `momentum` is the
    weight of the *new* batch (default `0.1`), `epsilon` defaults to `1e-5`,
    and the running variance is stored unbiased (`n / (n - 1)` times the batch
    variance) while the batch itself is normalized with the biased variance.
    `load_torch_state_dict` loads a PyTorch layer's weights and statistics.

    Statistics are always computed in float32; under a mixed precision policy
    the output is in the compute dtype.

    **Batch renormalization** (`renorm=True`) corrects the batch statistics
    towards moving ones during training with `r = clip(std_batch / std_moving)`
    and `d = clip((mean_batch - mean_moving) / std_moving)`, treated as
    constants by the gradient (Ioffe, 2017).

    **Ghost batch normalization** (`virtual_batch_size=v`) splits each training
    batch into `batch_size / v` virtual batches of `v` samples normalized
    separately (Hoffer et al., 2017); the moving statistics are updated once
    per step with the mean over the virtual batches of their statistics, as
    TensorFlow 1's `BatchNormalization` did. `v` must divide the batch size.

    **Synchronized batch norm** (`synchronized=True`): on the TensorFlow
    backend, under a `tf.distribute` strategy, the moments are all-reduced
    across replicas so every replica normalizes with the global-batch
    statistics (outside a strategy it changes nothing). On JAX with Keras'
    distribution API the inputs are one globally sharded array, so the
    statistics are global-batch statistics with or without the flag (the flag
    is accepted and has no effect). The other backends raise a `ValueError`.

    Masks: with a Keras mask (e.g. from `Embedding(mask_zero=True)` or
    `Masking`), masked time steps do not enter the batch statistics; the mask
    is passed on to the next layer.

    Args:
        axis: int, the channel axis. `-1` for channels-last inputs,
            `1` for channels-first. Defaults to `-1`.
        momentum: float in `[0, 1]`, or `None` for the convention's default:
            the weight of the old moving average (`"keras"`, default `0.99`) or
            of the new batch (`"torch"`, default `0.1`). Defaults to `None`.
        epsilon: small float added to the variance, or `None` for the
            convention's default (`1e-3` / `1e-5`). Defaults to `None`.
        center: whether to add the learned offset `beta`. Defaults to `True`.
        scale: whether to multiply by the learned scale `gamma`.
            Defaults to `True`.
        beta_initializer: initializer of `beta`. Defaults to `"zeros"`.
        gamma_initializer: initializer of `gamma`. Defaults to `"ones"`.
        moving_mean_initializer: initializer of the moving mean.
            Defaults to `"zeros"`.
        moving_variance_initializer: initializer of the moving variance.
            Defaults to `"ones"`.
        beta_regularizer: optional regularizer of `beta`. Defaults to `None`.
        gamma_regularizer: optional regularizer of `gamma`. Defaults to `None`.
        beta_constraint: optional constraint on `beta`. Defaults to `None`.
        gamma_constraint: optional constraint on `gamma`. Defaults to `None`.
        renorm: whether to use batch renormalization (`"keras"` convention
            only). Defaults to `False`.
        renorm_clipping: optional dict with keys `"rmax"`, `"rmin"`, `"dmax"`
            bounding `r` to `[rmin, rmax]` and `d` to `[-dmax, dmax]`; a missing
            key means no bound. Defaults to `None`.
        renorm_momentum: momentum of the moving mean and standard deviation
            that `r` and `d` are computed against. Defaults to `0.99`.
        virtual_batch_size: optional int, the size of the ghost batches used
            in training. Defaults to `None` (the whole batch).
        synchronized: whether to compute the statistics over all replicas
            (see above). Defaults to `False`.
        convention: `"keras"` or `"torch"`, see above. Defaults to `"keras"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of rank >= 2.
        training: whether to normalize with batch statistics and update the
            moving ones. Defaults to the Keras learning phase.
        mask: optional boolean mask of rank `rank(inputs) - 1`.

    Reference:
        - [Ioffe and Szegedy, 2015](https://arxiv.org/abs/1502.03167).
        - [Ioffe, 2017 (Batch Renormalization)](https://arxiv.org/abs/1702.03275).
        - [Hoffer et al., 2017 (Ghost Batch Norm)](https://arxiv.org/abs/1705.08741).

    Example:

    >>> x = np.random.rand(8, 16, 16, 32).astype("float32")
    >>> bn = kerasdl.layers.BatchNormalization(virtual_batch_size=4)
    >>> bn(x, training=True).shape
    (8, 16, 16, 32)
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
        momentum=None,
        epsilon=None,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        virtual_batch_size=None,
        synchronized=False,
        convention="keras",
        **kwargs,
    ):
        if isinstance(axis, (list, tuple)):
            # ValueError, as for every bad argument value (Keras' convention).
            raise ValueError(  # noqa: TRY004
                f"`axis` of BatchNormalization must be a single int. Received: axis={axis!r}"
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
        self.momentum = base.resolve_momentum(momentum, self.convention)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(
            moving_variance_initializer
        )

        # Batch renormalization.
        self.renorm = bool(renorm)
        if self.renorm and self.convention == "torch":
            raise ValueError(
                "Batch renormalization has no PyTorch counterpart; use "
                "convention='keras' with renorm=True. Received: renorm=True, "
                "convention='torch'"
            )
        if renorm_clipping is not None:
            if not isinstance(renorm_clipping, dict):
                raise ValueError(
                    "`renorm_clipping` must be a dict with keys among 'rmax', "
                    f"'rmin', 'dmax'. Received: renorm_clipping={renorm_clipping!r}"
                )
            invalid = sorted(set(renorm_clipping) - {"rmax", "rmin", "dmax"})
            if invalid:
                raise ValueError(
                    f"`renorm_clipping` takes the keys 'rmax', 'rmin', 'dmax'. "
                    f"Received invalid keys: {invalid} in "
                    f"renorm_clipping={renorm_clipping!r}"
                )
            rmin, rmax = renorm_clipping.get("rmin"), renorm_clipping.get("rmax")
            dmax = renorm_clipping.get("dmax")
            if rmin is not None and rmax is not None and rmax < rmin:
                raise ValueError(
                    "In `renorm_clipping`, rmax should be greater than or equal "
                    f"to rmin. Received: renorm_clipping={renorm_clipping!r}"
                )
            if dmax is not None and dmax < 0:
                raise ValueError(
                    "In `renorm_clipping`, dmax should be non-negative. "
                    f"Received: renorm_clipping={renorm_clipping!r}"
                )
            renorm_clipping = dict(renorm_clipping)
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = base.resolve_momentum(
            renorm_momentum, "keras", name="renorm_momentum"
        )

        # Ghost batches and cross-replica statistics.
        if virtual_batch_size is not None and (
            isinstance(virtual_batch_size, bool)
            or not isinstance(virtual_batch_size, int)
            or virtual_batch_size < 1
        ):
            raise ValueError(
                "`virtual_batch_size` must be a positive int or None. Received: "
                f"virtual_batch_size={virtual_batch_size!r}"
            )
        self.virtual_batch_size = virtual_batch_size
        self.synchronized = bool(synchronized)
        if self.synchronized and keras.backend.backend() not in ("tensorflow", "jax"):
            raise ValueError(
                "`synchronized=True` needs the TensorFlow or JAX backend. "
                f"Received: synchronized=True with backend={keras.backend.backend()!r}"
            )
        if self.synchronized and virtual_batch_size is not None:
            raise ValueError(
                "Ghost batches are per replica by definition; `synchronized=True` "
                "cannot be combined with `virtual_batch_size`. Received: "
                f"synchronized=True, virtual_batch_size={virtual_batch_size}"
            )
        self.moving_mean = None
        self.moving_variance = None

    def build(self, input_shape):
        self._check_rank(input_shape, 2)
        ndim = len(input_shape)
        (channel_axis,) = base.normalize_axes(self.axis, ndim)
        self._check_defined(input_shape, [channel_axis])
        self._channel_axis = channel_axis
        self._reduction_axes = [a for a in range(ndim) if a != channel_axis]
        channels = input_shape[channel_axis]
        broadcast_shape = [1] * ndim
        broadcast_shape[channel_axis] = channels
        self._build_affine((channels,), broadcast_shape)
        self.moving_mean = self._moving_weight(
            "moving_mean", (channels,), self.moving_mean_initializer
        )
        self.moving_variance = self._moving_weight(
            "moving_variance", (channels,), self.moving_variance_initializer
        )
        if self.renorm:
            # As in Keras: the inference statistics are tracked as a moving
            # standard deviation (moving_variance is derived from it), and r, d
            # are computed against a separate pair of renorm moving statistics.
            def stddev_initializer(shape, dtype=None):
                init = _clone_initializer(self.moving_variance_initializer)
                return ops.sqrt(init(shape, dtype=dtype))

            mean_initializer = _clone_initializer(self.moving_mean_initializer)
            self.moving_stddev = self._moving_weight(
                "moving_stddev", (channels,), stddev_initializer
            )
            self.renorm_mean = self._moving_weight(
                "renorm_mean", (channels,), mean_initializer
            )
            self.renorm_stddev = self._moving_weight(
                "renorm_stddev", (channels,), stddev_initializer
            )
        self.input_spec = keras.layers.InputSpec(
            ndim=ndim, axes={channel_axis: channels}
        )

    def _ghost_reshape(self, x):
        """(batch, ...) -> (batch / v, v, ...), checking divisibility."""
        v = self.virtual_batch_size
        batch = x.shape[0]
        if batch is not None and batch % v:
            raise ValueError(
                f"`virtual_batch_size` must divide the batch size. Received: "
                f"virtual_batch_size={v} for a batch of {batch}"
            )
        return ops.reshape(x, (-1, v) + tuple(ops.shape(x)[1:]))

    def call(self, inputs, training=None, mask=None):
        x = ops.cast(inputs, "float32")
        gamma = self._broadcast(self.gamma)
        beta = self._broadcast(self.beta)

        # Inference: the moving statistics.
        if not (training and self.trainable):
            mean = self._broadcast(self.moving_mean)
            variance = self._broadcast(self.moving_variance)
            return self._output(
                base.normalize(x, mean, variance, gamma, beta, self.epsilon)
            )

        weights = None if mask is None else base.broadcast_mask(mask, x)

        # Training: batch (or virtual-batch) statistics.
        if (
            weights is None
            and not (self.synchronized or self.renorm)
            and self._channel_axis == len(x.shape) - 1
            and fused.enabled()
        ):
            return self._output(self._fused_call(x))
        ghost = self.virtual_batch_size is not None
        if ghost:
            shape = ops.shape(x)
            x = self._ghost_reshape(x)
            if weights is not None:
                weights = ops.reshape(weights, ops.shape(x))
            axes = [1] + [a + 1 for a in self._reduction_axes[1:]]
            gamma = None if gamma is None else ops.expand_dims(gamma, 0)
            beta = None if beta is None else ops.expand_dims(beta, 0)
        else:
            axes = self._reduction_axes
        mean, variance, count = base.moments(
            x, axes, mask=weights, synchronized=self.synchronized
        )

        if self.renorm:
            gamma, beta = self._renorm_transform(mean, variance, gamma, beta)

        # Moving statistics from the (mean of the virtual-)batch statistics.
        batch_mean = ops.reshape(ops.mean(mean, axis=0) if ghost else mean, (-1,))
        if self.convention == "torch":
            variance_to_track = base.unbiased_variance(variance, count)
        else:
            variance_to_track = variance
        batch_variance = ops.reshape(
            ops.mean(variance_to_track, axis=0) if ghost else variance_to_track, (-1,)
        )
        if self.renorm:
            self._update_renorm_statistics(batch_mean, batch_variance)
        else:
            self._update_moving_statistics(batch_mean, batch_variance)

        outputs = base.normalize(x, mean, variance, gamma, beta, self.epsilon)
        if ghost:
            outputs = ops.reshape(outputs, shape)
        return self._output(outputs)

    def _fused_call(self, x):
        """Channels-last training step with the closed-form gradient (`fused`)."""
        shape = ops.shape(x)
        channels = x.shape[-1]
        shared = self.virtual_batch_size is None
        if not shared:  # (batch, ...) -> (virtual batches, v, ...)
            x = self._ghost_reshape(x)
        # (blocks, positions, C): samples sharing one set of statistics, or
        # virtual batches with a set each (see `fused._column_sums`).
        x = fused.sample_view(x)
        mean, variance, count = fused.channel_moments(x, shared=shared)
        tracked = variance
        if self.convention == "torch":
            tracked = base.unbiased_variance(variance, count)
        self._update_moving_statistics(
            ops.mean(mean, axis=0), ops.mean(tracked, axis=0)
        )
        outputs = fused.normalize_channels(
            x,
            mean,
            variance,
            *self._affine_vectors(),
            self.epsilon,
            groups=channels,
        )
        return ops.reshape(outputs, shape)

    def _update_moving_statistics(self, mean, variance):
        # The float32 statistics, in the variables' dtype (float64 under a
        # float64 policy, where mixing the two fails on TensorFlow).
        mean = ops.cast(mean, self.moving_mean.dtype)
        variance = ops.cast(variance, self.moving_variance.dtype)
        if self.convention == "torch":
            decay = 1.0 - self.momentum
        else:
            decay = self.momentum
        self.moving_mean.assign(self.moving_mean * decay + mean * (1.0 - decay))
        self.moving_variance.assign(
            self.moving_variance * decay + variance * (1.0 - decay)
        )

    def _renorm_transform(self, mean, variance, gamma, beta):
        """Folds the renorm corrections r, d into gamma and beta."""
        stddev = ops.sqrt(variance + self.epsilon)
        renorm_mean = self._broadcast(self.renorm_mean)
        renorm_stddev = ops.maximum(
            self._broadcast(self.renorm_stddev), ops.sqrt(self.epsilon)
        )
        if self.virtual_batch_size is not None:
            renorm_mean = ops.expand_dims(renorm_mean, 0)
            renorm_stddev = ops.expand_dims(renorm_stddev, 0)
        r = stddev / renorm_stddev
        d = (mean - renorm_mean) / renorm_stddev
        clipping = self.renorm_clipping or {}
        if clipping.get("rmin") is not None:
            r = ops.maximum(r, clipping["rmin"])
        if clipping.get("rmax") is not None:
            r = ops.minimum(r, clipping["rmax"])
        if clipping.get("dmax") is not None:
            d = ops.clip(d, -clipping["dmax"], clipping["dmax"])
        r = ops.stop_gradient(r)
        d = ops.stop_gradient(d)
        # ((x - mean) / std * r + d) * gamma + beta
        #   = (x - mean) / std * (r * gamma) + (d * gamma + beta)
        if gamma is None:
            gamma, offset = r, d
        else:
            gamma, offset = r * gamma, d * gamma
        beta = offset if beta is None else offset + beta
        return gamma, beta

    def _update_renorm_statistics(self, mean, variance):
        mean = ops.cast(mean, self.moving_mean.dtype)
        variance = ops.cast(variance, self.moving_variance.dtype)
        stddev = ops.sqrt(variance + self.epsilon)
        m = self.renorm_momentum
        self.renorm_mean.assign(self.renorm_mean * m + mean * (1.0 - m))
        self.renorm_stddev.assign(self.renorm_stddev * m + stddev * (1.0 - m))
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        new_stddev = self.moving_stddev * m + stddev * (1.0 - m)
        self.moving_stddev.assign(new_stddev)
        self.moving_variance.assign(ops.relu(new_stddev * new_stddev - self.epsilon))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "moving_mean_initializer": keras.initializers.serialize(
                    self.moving_mean_initializer
                ),
                "moving_variance_initializer": keras.initializers.serialize(
                    self.moving_variance_initializer
                ),
                "renorm": self.renorm,
                "renorm_clipping": self.renorm_clipping,
                "renorm_momentum": self.renorm_momentum,
                "virtual_batch_size": self.virtual_batch_size,
                "synchronized": self.synchronized,
            }
        )
        return config
