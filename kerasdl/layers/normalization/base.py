"""The machinery shared by kerasdl's normalization layers.

Every layer in this family does the same three things and differs only in
*which axes* it reduces over:

1. `moments()` computes the mean and the biased variance of the inputs over
   the reduction axes, in float32 whatever the compute dtype, optionally
   weighted by a Keras mask and optionally all-reduced across replicas.
2. `normalize()` applies `(x - mean) * rsqrt(variance + epsilon) * gamma + beta`
   as one fused multiply-add: the per-channel factor `rsqrt(...) * gamma` and
   offset `beta - mean * factor` are computed on the small statistics tensors,
   so the full-size input is touched once.
3. `BaseNormalization` holds what the layers have in common: the
   `convention` ("keras" or "torch") and the defaults it implies, the affine
   weights `gamma` / `beta`, argument validation, `get_config`, and
   `load_torch_state_dict`.

`RMSNormalization` uses only the base class (convention, validation, config,
`load_torch_state_dict`): its one statistic is the mean square, and its one
weight is `scale`, as in Keras.

On hosts without an accelerator, the layers' common channels-last cases
(no mask, no cross-replica statistics) take `fused.py` instead: the same
forward computation with a closed-form gradient that XLA's CPU compiler
runs 1.4-3x faster than autodiff of `normalize(x, moments(x))`.
"""

import numbers
from typing import ClassVar

import keras
import numpy as np
from keras import ops

CONVENTIONS = ("keras", "torch")

# Defaults that differ between the two conventions.
_DEFAULT_EPSILON = {"keras": 1e-3, "torch": 1e-5}
_DEFAULT_MOMENTUM = {"keras": 0.99, "torch": 0.1}


# ---------------------------------------------------------------------------
# Functional forms.
# ---------------------------------------------------------------------------


def broadcast_mask(mask, inputs):
    """Turns a Keras mask into a float32 weight tensor shaped like `inputs`.

    A Keras mask has the shape of its inputs without the last axis (or a
    shape that broadcasts to it), whatever the channel axis: `(batch, time)`
    for `(batch, time, channels)` inputs, and `(batch, channels)` for
    channels-first `(batch, channels, time)` inputs (that is what
    `keras.layers.Masking` computes, and how Keras' `BatchNormalization`
    reads it). It is expanded at the last axis and broadcast. A mask of the
    inputs' own rank is broadcast as it is.

    Args:
        mask: boolean or 0/1 tensor of rank `rank(inputs) - 1`, or of the same
            rank as `inputs`.
        inputs: the tensor the mask belongs to.

    Returns:
        A float32 tensor of `inputs`' shape, 1.0 where a value counts.
    """
    rank = len(inputs.shape)
    if len(mask.shape) == rank - 1:
        mask = ops.expand_dims(mask, axis=-1)
    elif len(mask.shape) != rank:
        raise ValueError(
            "The mask should have the rank of the inputs or one less (the "
            "inputs' shape without its last axis). Received: "
            f"mask.shape={tuple(mask.shape)}, inputs.shape={tuple(inputs.shape)}"
        )
    for m, d in zip(mask.shape, inputs.shape):
        if m is not None and d is not None and m not in (1, d):
            raise ValueError(
                "The mask does not broadcast to the inputs: a Keras mask has "
                "the inputs' shape without the last axis. Received: "
                f"mask.shape={tuple(mask.shape)}, inputs.shape={tuple(inputs.shape)}"
            )
    return ops.broadcast_to(ops.cast(mask, "float32"), ops.shape(inputs))


def moments(x, axes, mask=None, synchronized=False):
    """Mean and biased variance of `x` over `axes`, in float32.

    The statistics keep the reduced dimensions (size 1), so they broadcast
    against `x` directly.

    Args:
        x: input tensor, any float dtype; it is cast to float32 first.
        axes: list of axes to reduce over.
        mask: optional float32 weights shaped like `x` (see `broadcast_mask`);
            values with weight 0 do not enter the statistics.
        synchronized: whether to reduce across replicas too. On the TensorFlow
            backend this all-reduces sums over the replicas of the current
            `tf.distribute` strategy (a no-op outside one). On JAX the flag is
            ignored: with Keras' distribution API the batch is one sharded
            global array, so the mean over its batch axis already is the
            global-batch mean (XLA inserts the all-reduce). Defaults to `False`.

    Returns:
        `(mean, variance, count)`: float32 mean and biased variance with
        `keepdims=True`, and the number of (unmasked) values each statistic
        was computed from, as a float32 scalar or a tensor shaped like `mean`.
        Under `synchronized`, `count` is the local (per-replica) count.
    """
    x = ops.cast(x, "float32")
    axes = list(axes)
    sync = bool(synchronized) and keras.backend.backend() == "tensorflow"
    if mask is None:
        shape = ops.shape(x)
        count = 1.0
        for a in axes:
            count = count * ops.cast(shape[a], "float32")
        if sync:
            mean, variance = ops.moments(x, axes, keepdims=True, synchronized=True)
        else:
            mean, variance = ops.moments(x, axes, keepdims=True)
        return mean, variance, count

    count = ops.sum(mask, axis=axes, keepdims=True)
    if sync:
        # The global weighted moments are ratios of global means, which
        # `ops.moments(..., synchronized=True)` all-reduces for us: stack the
        # three quantities on a new trailing axis and reduce them together.
        stacked = ops.stack([x * mask, mask, ops.square(x) * mask], axis=-1)
        means, _ = ops.moments(stacked, axes, keepdims=True, synchronized=True)
        sum_x, weight, sum_x2 = means[..., 0], means[..., 1], means[..., 2]
        weight = ops.maximum(weight, 1e-12)
        mean = sum_x / weight
        variance = ops.relu(sum_x2 / weight - ops.square(mean))
        return mean, variance, count
    safe_count = ops.maximum(count, 1.0)
    mean = ops.sum(x * mask, axis=axes, keepdims=True) / safe_count
    variance = (
        ops.sum(
            ops.square(x - ops.stop_gradient(mean)) * mask, axis=axes, keepdims=True
        )
        / safe_count
    )
    return mean, variance, count


def normalize(x, mean, variance, gamma=None, beta=None, epsilon=1e-3):
    """`(x - mean) / sqrt(variance + epsilon) * gamma + beta` in one pass.

    `gamma` is folded into the normalizing factor and `mean` into the offset,
    both computed on the (small) statistics tensors, so the full-size input
    sees a single multiply-add. All of `mean`, `variance`, `gamma`, `beta`
    must broadcast against `x`.

    Args:
        x: float32 input tensor.
        mean: mean, broadcastable to `x`.
        variance: variance, broadcastable to `x`.
        gamma: optional scale, broadcastable to `x`.
        beta: optional offset, broadcastable to `x`.
        epsilon: small float added to the variance. Defaults to `1e-3`.

    Returns:
        The normalized tensor, in `x`'s dtype.
    """
    mean, variance = _trailing(mean), _trailing(variance)
    gamma = None if gamma is None else _trailing(gamma)
    beta = None if beta is None else _trailing(beta)
    factor = ops.rsqrt(variance + epsilon)
    if gamma is not None:
        factor = factor * gamma
    offset = -mean * factor
    if beta is not None:
        offset = offset + beta
    return x * factor + offset


def _trailing(value):
    """`value` of shape (1, ..., 1, C) as shape (C,): the same broadcast.

    TensorFlow's graph runtime computes the gradient of a broadcast from a
    rank-1 tensor about 10% faster than from (1, 1, C) on a (N, T, C) input
    (channels-last batch norm); XLA compiles both alike.
    """
    shape = value.shape
    if len(shape) > 1 and all(d == 1 for d in shape[:-1]) and shape[-1] is not None:
        return ops.reshape(value, (shape[-1],))
    return value


def unbiased_variance(variance, count):
    """Bessel's correction `variance * n / (n - 1)`, as PyTorch stores it."""
    count = ops.cast(count, "float32")
    return variance * count / ops.maximum(count - 1.0, 1.0)


# ---------------------------------------------------------------------------
# Argument helpers.
# ---------------------------------------------------------------------------


def validate_convention(convention):
    if convention not in CONVENTIONS:
        raise ValueError(
            f"`convention` must be one of {CONVENTIONS}. "
            f"Received: convention={convention!r}"
        )
    return convention


def resolve_epsilon(epsilon, convention):
    if epsilon is None:
        return _DEFAULT_EPSILON[convention]
    if (
        isinstance(epsilon, bool)
        or not isinstance(epsilon, numbers.Real)  # NumPy scalars too, as in Keras
        or not (epsilon > 0 and np.isfinite(epsilon))
    ):
        raise ValueError(
            f"`epsilon` must be a positive finite float. Received: epsilon={epsilon!r}"
        )
    return float(epsilon)


def resolve_momentum(momentum, convention, name="momentum"):
    if momentum is None:
        return _DEFAULT_MOMENTUM[convention]
    if (
        isinstance(momentum, bool)
        or not isinstance(momentum, numbers.Real)
        or not (0.0 <= momentum <= 1.0)
    ):
        raise ValueError(
            f"`{name}` must be a float in [0, 1]. Received: {name}={momentum!r}"
        )
    return float(momentum)


def normalize_axes(axis, ndim, name="axis", allow_batch=False):
    """Turns an int or list of ints into sorted non-negative axes, validated."""
    axes = [axis] if isinstance(axis, int) else list(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(
                f"`{name}` is out of bounds for an input of rank {ndim}. "
                f"Received: {name}={axis!r}"
            )
        a = a % ndim
        if a == 0 and not allow_batch:
            raise ValueError(
                f"`{name}` must not include the batch axis 0. Received: {name}={axis!r}"
            )
        out.append(a)
    if len(set(out)) != len(out):
        raise ValueError(f"`{name}` has duplicate axes. Received: {name}={axis!r}")
    return sorted(out)


def reject_kwargs(layer_name, kwargs, names):
    """Raises for base-class arguments that `layer_name` does not take.

    `BaseNormalization` takes every affine argument, so a subclass without
    some of them would otherwise accept and silently drop them.
    """
    unknown = {k: kwargs[k] for k in names if k in kwargs}
    if unknown:
        raise ValueError(
            f"Unrecognized keyword arguments passed to {layer_name}: {unknown}"
        )


def _to_numpy(value):
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


# ---------------------------------------------------------------------------
# Base layer.
# ---------------------------------------------------------------------------


class BaseNormalization(keras.layers.Layer):
    """Common base of kerasdl's normalization layers (not exported).

    Subclasses set `self._param_shape` (the shape of `gamma` / `beta`) and
    `self._param_broadcast_shape` in `build()` before calling
    `self._build_affine()`, and implement `call()`.

    Args:
        axis: int or list of ints, the channel (feature) axis or axes.
        epsilon: small float added to the variance, or `None` for the
            convention's default (`1e-3` for "keras", `1e-5` for "torch").
        center: whether to add the learned offset `beta`.
        scale: whether to multiply by the learned scale `gamma`.
        beta_initializer, gamma_initializer: initializers of the weights.
        beta_regularizer, gamma_regularizer: optional regularizers.
        beta_constraint, gamma_constraint: optional constraints.
        convention: `"keras"` or `"torch"`.
    """

    # Weights a PyTorch state dict maps onto: torch key -> attribute name.
    _TORCH_KEYS: ClassVar[dict] = {"weight": "gamma", "bias": "beta"}

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
        super().__init__(**kwargs)
        # Inputs reach `call` in their own dtype, not cast to the compute
        # dtype first: under `mixed_float16`, float32 inputs above 65504 would
        # become inf before the float32 statistics (as Keras' Layer- and
        # GroupNormalization do). Every layer casts to float32 itself and
        # returns the compute dtype.
        self.autocast = False
        self.convention = validate_convention(convention)

        def is_int(a):  # NumPy integers too, as Keras' BatchNormalization takes
            return isinstance(a, numbers.Integral) and not isinstance(a, bool)

        if not (
            is_int(axis)
            or (isinstance(axis, (list, tuple)) and all(is_int(a) for a in axis))
        ):
            # TypeError for a value of the wrong type, as Keras raises.
            raise TypeError(
                "Expected an int or a list/tuple of ints for the argument "
                f"'axis'. Received: axis={axis!r}"
            )
        if not is_int(axis) and not axis:
            raise ValueError(
                f"`axis` must be an int or a non-empty list of ints. Received: axis={axis!r}"
            )
        self.axis = int(axis) if is_int(axis) else [int(a) for a in axis]
        self.epsilon = resolve_epsilon(epsilon, self.convention)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_constraint = keras.constraints.get(beta_constraint)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self.supports_masking = True
        self.gamma = None
        self.beta = None

    # -- build helpers -----------------------------------------------------

    def _check_rank(self, input_shape, min_rank):
        if len(input_shape) < min_rank:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank >= {min_rank}. "
                f"Received: input_shape={tuple(input_shape)}"
            )

    def _check_defined(self, input_shape, axes):
        for a in axes:
            if input_shape[a] is None:
                raise ValueError(
                    f"Axis {a} of the input tensor should have a defined "
                    "dimension but the layer received an input with shape "
                    f"{tuple(input_shape)}: {type(self).__name__} needs it to "
                    f"build its weights. Received: axis={self.axis!r}"
                )

    def _axes_input_spec(self, input_shape):
        """An `InputSpec` pinning only the sizes of the axes in `self.axis`.

        The axes are keyed as given (negative ones count from the end), so
        inputs of another rank than `input_shape` fit wherever those axes name
        dimensions of the built sizes, as Keras' `LayerNormalization` and
        `RMSNormalization` allow; the batch axis stays out of every rank
        accepted.
        """
        ndim = len(input_shape)
        given = [self.axis] if isinstance(self.axis, int) else list(self.axis)
        min_ndim = max([2] + [a + 1 if a >= 0 else 1 - a for a in given])
        return keras.layers.InputSpec(
            min_ndim=min_ndim, axes={a: input_shape[a % ndim] for a in given}
        )

    @staticmethod
    def _axes_broadcast_shape(axes, ndim, param_shape):
        """Shape of weights over `axes` broadcast against inputs of rank `ndim`."""
        shape = [1] * ndim
        for a, size in zip(axes, param_shape):
            shape[a] = size
        return shape

    def _build_affine(self, param_shape, broadcast_shape, scale=None, center=None):
        """Creates `gamma` (if `scale`) and `beta` (if `center`).

        `scale` and `center` default to the layer's own flags.
        """
        scale = self.scale if scale is None else scale
        center = self.center if center is None else center
        self._param_broadcast_shape = list(broadcast_shape)
        if scale:
            self.gamma = self.add_weight(
                shape=param_shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                trainable=True,
                autocast=False,
            )
        if center:
            self.beta = self.add_weight(
                shape=param_shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                trainable=True,
                autocast=False,
            )

    def _moving_weight(self, name, shape, initializer):
        return self.add_weight(
            shape=shape,
            name=name,
            initializer=initializer,
            trainable=False,
            autocast=False,
        )

    def _broadcast(self, weight, shape=None):
        """A float32 weight reshaped to broadcast against the inputs."""
        if weight is None:
            return None
        shape = self._param_broadcast_shape if shape is None else shape
        return ops.reshape(ops.cast(weight, "float32"), shape)

    def _affine_vectors(self):
        """`(gamma, beta)` as float32 vectors, `None` where absent (for `fused`)."""
        return tuple(
            None if w is None else ops.cast(w, "float32")
            for w in (self.gamma, self.beta)
        )

    def _output(self, outputs):
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        # The shape is unchanged, but an `axis` that does not fit it is an
        # error here too, as in Keras' normalization layers.
        normalize_axes(self.axis, len(input_shape))
        return input_shape

    # -- PyTorch interop ---------------------------------------------------

    def load_torch_state_dict(self, state_dict, strict=True):
        """Loads a PyTorch norm layer's `state_dict()` into this layer.

        Keys: `weight` → `gamma`, `bias` → `beta`, and for layers with running
        statistics `running_mean` → `moving_mean`, `running_var` →
        `moving_variance`; `num_batches_tracked` is accepted and ignored
        (only used by PyTorch's `momentum=None` cumulative average). Values
        may be NumPy arrays or torch tensors. The layer must be built.

        Inference then matches PyTorch's `eval()` output whichever the
        convention, as long as `epsilon` matches (PyTorch's default is `1e-5`,
        the `"torch"` convention's default); use `convention="torch"` to also
        continue training with PyTorch's update rule.

        Args:
            state_dict: mapping of str to array / tensor.
            strict: if `True`, a key this layer expects but `state_dict` lacks,
                or an unknown key, raises. Defaults to `True`.
        """
        if not self.built:
            raise ValueError(
                f"Build {type(self).__name__} (call it once, or call "
                "`build(input_shape)`) before `load_torch_state_dict`."
            )
        expected = {
            key: getattr(self, attr)
            for key, attr in self._TORCH_KEYS.items()
            if getattr(self, attr, None) is not None
        }
        known = set(self._TORCH_KEYS) | {"num_batches_tracked"}
        if strict:
            missing = sorted(set(expected) - set(state_dict))
            if missing:
                raise ValueError(
                    f"`state_dict` is missing keys {missing} that "
                    f"{type(self).__name__} (with weights for "
                    f"{sorted(expected)}) expects. Received keys: "
                    f"{sorted(state_dict)}"
                )
            unexpected = sorted(set(state_dict) - known)
            unused = sorted(
                k for k in set(state_dict) & set(self._TORCH_KEYS) if k not in expected
            )
            if unexpected or unused:
                raise ValueError(
                    f"`state_dict` has keys {unexpected + unused} that "
                    f"{type(self).__name__} has no weight for. Expected keys: "
                    f"{sorted(expected)} (plus optional 'num_batches_tracked')."
                )
        values = {}
        for key, variable in expected.items():
            if key not in state_dict:
                continue
            value = _to_numpy(state_dict[key]).astype("float32")
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"`state_dict[{key!r}]` has shape {tuple(value.shape)}, but "
                    f"{type(self).__name__}.{variable.name} has shape "
                    f"{tuple(variable.shape)}."
                )
            values[key] = value
        for key, value in values.items():
            expected[key].assign(value)

    # -- config ------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "epsilon": self.epsilon,
                **self._affine_config(),
                "convention": self.convention,
            }
        )
        return config

    def _affine_config(self):
        """The config entries of the affine weights' arguments."""
        return {
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": keras.initializers.serialize(self.beta_initializer),
            "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
            "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": keras.constraints.serialize(self.beta_constraint),
            "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
        }
