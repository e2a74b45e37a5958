"""Normalization with a hand-written backward pass, for CPU hosts.

Autodiff of `normalize(x, moments(x))` leaves XLA's CPU compiler with
reductions of elementwise products (`sum(dy * x_hat)` and the like). It fuses
each product into its reduction and splits the reduction into a tree of
partial sums, and that code is 2-4x slower than one pass over memory: on the
project's CPU a column sum of `a * b` over a 16 MB tensor took 5.7 ms, the same
product written out and summed with a matrix-vector product 3.3 ms. Layer norm
under `jit_compile` ran at 2.2x PyTorch's time, batch norm 1.9x.

This module gives the normalization layers the closed-form gradient instead:

    dx = rstd * (dy * gamma - mean(dy * gamma) - x_hat * mean(dy * gamma * x_hat))
    dgamma = sum(dy * x_hat),  dbeta = sum(dy)

with the means taken over each statistic's group, and with every reduction
of a product done as a matrix product over a product written out once. One
pass writes `dy * x_hat`, matrix products reduce it, and one fused pass
writes `dx`.

The matrix products are exact float32 on CPUs. On GPUs, TensorFlow and JAX
compute float32 matrix products in TF32 by default (10-bit mantissas), and
their reductions are fast already, so the layers use this path only when the
host has no accelerator (`enabled()`), and only on the TensorFlow and JAX
backends. Either way the forward values are the same computation; gradients
agree with autodiff's to float32 rounding (tests/layers/normalization/
test_fused.py).
"""

import contextlib
import functools
import math

import keras
from keras import ops

from kerasdl.layers.normalization import base

_OVERRIDE = [None]


@functools.cache
def _cpu_host(backend):
    del backend  # cache key: the device list is the backend's
    devices = keras.distribution.list_devices()
    return all(str(d).lower().startswith("cpu") for d in devices)


def enabled():
    """Whether the layers use the hand-written backward pass.

    `True` on the TensorFlow and JAX backends when no GPU or TPU is visible
    (see `use_fused`, which overrides it).
    """
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        return False
    if _OVERRIDE[-1] is not None:
        return _OVERRIDE[-1]
    return _cpu_host(backend)


@contextlib.contextmanager
def use_fused(flag):
    """Forces the fused path on (`True`) or off (`False`) while tracing.

    The choice is made when a layer's `call` is traced, so wrap the
    construction of a model's `tf.function` / `jax.jit` (or eager calls).

    Example:

    ```python
    with use_fused(False):
        y = layer(x, training=True)  # plain autodiff of the formula
    ```
    """
    _OVERRIDE.append(bool(flag))
    try:
        yield
    finally:
        _OVERRIDE.pop()


def sample_view(x):
    """Views channels-last `x` (N, ..., C) as (N, S, C), S the positions per sample.

    S stays static wherever the input's inner dimensions are, so that
    `_column_sums` can choose its method when the batch size is unknown.
    """
    inner = x.shape[1:-1]
    positions = -1 if None in inner else math.prod(inner)
    return ops.reshape(x, (ops.shape(x)[0], positions, x.shape[-1]))


def _pool_channels(value, groups):
    """Sums (N, C) over each group's channels and repeats back to (N, C)."""
    channels = value.shape[-1]
    if groups == channels:
        return value
    grouped = ops.reshape(value, (-1, groups, channels // groups))
    summed = ops.sum(grouped, axis=-1, keepdims=True)
    return ops.reshape(ops.broadcast_to(summed, ops.shape(grouped)), (-1, channels))


def row_moments(x):
    """Mean and biased variance over the last axis of a float32 (N, S, C) tensor.

    Returns `(mean, variance, count)`, the first two shaped (N, S, 1). The
    variance is a matrix-vector product over `(x - mean) ** 2`: XLA's CPU
    compiler fuses the square into the product's loop, where a reduction
    of the square took 2.4x as long (65536 x 64).
    """
    channels = x.shape[-1]
    mean = ops.mean(x, axis=-1, keepdims=True)
    weights = ops.full((channels, 1), 1.0 / channels, dtype=x.dtype)
    variance = ops.matmul(ops.square(x - mean), weights)
    return mean, variance, float(channels)


def channel_moments(x, shared=False):
    """Per-channel mean and biased variance of a float32 (N, S, C) tensor.

    Args:
        x: float32 tensor (N, S, C).
        shared: `False` for statistics over S per leading index (instance
            and group norm, ghost batches); `True` for one set over N and S
            together (batch norm: N samples of S positions each).

    Returns `(mean, variance, count)`: (N or 1, C), the same, and the number
    of values each statistic covers as a float32 scalar.
    """
    shape = ops.shape(x)
    count = ops.cast(shape[1] * shape[0] if shared else shape[1], "float32")
    mean = _column_sums(x, shared) / count
    variance = ops.square(x - mean[:, None, :])
    variance = _column_sums(variance, shared, product=True) / count
    return mean, variance, count


# Values per sample (positions x channels) from which column sums run as
# per-sample matrix products.
MIN_BLOCK_SIZE = 16384


def _column_sums(q, shared=False, product=False):
    """Sums (N, S, C) over S (and over N if `shared`): (N or 1, C).

    With at least `MIN_BLOCK_SIZE` values per sample (static S * C): a
    batched matrix product with a ones vector per sample. XLA's CPU compiler
    runs that as fast as a reduction of a stored tensor, and much faster
    than a reduction into which it fuses an elementwise product, or than
    one matrix product over all N * S rows (0.5 vs 0.6 and 1.9 ms for a
    stored 65536 x 64 tensor as (64, 1024, 64)).

    With fewer, TensorFlow's graph mode pays for each small product (batch
    norm took 3.1x the time on (512, 64), 1.2-1.3x on (64, 64, 64)), so: a
    reduction, except for an elementwise `product` such as `dy * x_hat`,
    summed by one matrix product over the rows of each set of statistics.
    """
    n, s = ops.shape(q)[0], q.shape[1]
    if s is None or s * q.shape[-1] < MIN_BLOCK_SIZE:
        if not product:
            if shared:
                return ops.expand_dims(ops.sum(q, axis=(0, 1)), 0)
            return ops.sum(q, axis=1)
        if shared:  # one block of all N * S rows
            q = ops.reshape(q, (1, -1, q.shape[-1]))
            n, s = 1, ops.shape(q)[1]
    ones = ops.ones((n, 1, s), dtype=q.dtype)
    sums = ops.squeeze(ops.matmul(ones, q), axis=1)
    return ops.sum(sums, axis=0, keepdims=True) if shared else sums


def _closed_form(forward, backward, x, mean, variance, gamma, beta):
    """`forward(x, mean, variance, gamma, beta)` with `backward` as its gradient.

    `backward(dy, x, mean, variance, gamma, wants)` returns `(dx, dgamma,
    dbeta)`, computing the last two only where `wants` (a pair of bools)
    asks. The statistics get no gradient: `dx` already includes the path
    through them.
    """
    mean = ops.stop_gradient(mean)
    variance = ops.stop_gradient(variance)
    wants = (gamma is not None, beta is not None)
    params = [p for p in (gamma, beta) if p is not None]

    @ops.custom_gradient
    def fn(x, mean, variance, *params):
        gamma = params[0] if wants[0] else None
        beta = params[-1] if wants[1] else None

        def grad(*args, upstream=None):
            dy = args[0] if upstream is None else upstream
            dx, dgamma, dbeta = backward(dy, x, mean, variance, gamma, wants)
            grads = [dx, ops.zeros_like(mean), ops.zeros_like(variance)]
            grads += [g for g, want in zip((dgamma, dbeta), wants) if want]
            return tuple(grads)

        return forward(x, mean, variance, gamma, beta), grad

    return fn(x, mean, variance, *params)


def normalize_channels(x, mean, variance, gamma, beta, epsilon, groups):
    """Channels-last normalization with statistics per (sample, group).

    Covers batch norm (`x` viewed as (samples, positions, C) with one set of
    statistics shaped (1, C), or as (virtual batches, positions, C) with a
    set per virtual batch; `groups=C`), instance norm (`(N, positions, C)`,
    `groups=C`) and group norm (`groups=G`).

    Args:
        x: float32 tensor (N, S, C).
        mean: float32 (N, C), each channel's group mean (repeated per
            channel), or (1, C) for statistics shared by all N.
        variance: float32, shaped as `mean`: the (biased) variances.
        gamma: float32 (C,) or `None`.
        beta: float32 (C,) or `None`.
        epsilon: float added to the variance.
        groups: number of channel groups; `C` for per-channel statistics.

    Returns:
        The normalized float32 tensor (N, S, C). Its gradient with respect to
        `x` includes the path through the statistics; `mean` and `variance`
        receive none.
    """

    def forward(x, mean, variance, gamma, beta):
        stats = mean[:, None, :], variance[:, None, :]
        return base.normalize(x, *stats, gamma, beta, epsilon)

    def backward(dy, x, mean, variance, gamma, wants):
        rstd = ops.rsqrt(variance + epsilon)
        xhat = (x - mean[:, None, :]) * rstd[:, None, :]
        shared = mean.shape[0] == 1  # batch norm: one set for all of N
        sum_dy = _column_sums(dy, shared)  # (N or 1, C)
        sum_dy_xhat = _column_sums(dy * xhat, shared, product=True)
        g = 1.0 if gamma is None else gamma
        count = ops.shape(x)[1] * (ops.shape(x)[0] if shared else 1)
        count = ops.cast(count * (x.shape[-1] // groups), "float32")
        mean_g = _pool_channels(sum_dy * g, groups) / count
        mean_gx = _pool_channels(sum_dy_xhat * g, groups) / count
        dx = (rstd * g)[:, None, :] * dy - (rstd * mean_g)[:, None, :]
        dx = dx - xhat * (rstd * mean_gx)[:, None, :]
        dgamma = ops.sum(sum_dy_xhat, axis=0) if wants[0] else None
        dbeta = ops.sum(sum_dy, axis=0) if wants[1] else None
        return dx, dgamma, dbeta

    return _closed_form(forward, backward, x, mean, variance, gamma, beta)


def normalize_rows(x, mean, variance, gamma, beta, epsilon):
    """Layer normalization over the last axis of a (N, S, C) tensor.

    Args:
        x: float32 tensor (N, S, C): N samples of S rows each. The sample
            axis only blocks the column sums for `dgamma` and `dbeta`
            (see `_column_sums`).
        mean: float32 (N, S, 1), each row's mean.
        variance: float32 (N, S, 1), each row's biased variance.
        gamma: float32 (C,) or `None`.
        beta: float32 (C,) or `None`.
        epsilon: float added to the variance.

    Returns:
        The normalized float32 tensor (N, S, C); gradients as for
        `normalize_channels`.
    """

    def forward(x, mean, variance, gamma, beta):
        y = (x - mean) * ops.rsqrt(variance + epsilon)
        if gamma is not None:
            y = y * gamma
        if beta is not None:
            y = y + beta
        return y

    def backward(dy, x, mean, variance, gamma, wants):
        channels = x.shape[-1]
        rstd = ops.rsqrt(variance + epsilon)
        xhat = (x - mean) * rstd
        q = dy * xhat
        # Row sums weighted by gamma / C as matrix-vector products.
        g = ops.ones((channels,)) if gamma is None else gamma
        g_over_c = ops.reshape(g / channels, (channels, 1))
        mean_g = ops.matmul(dy, g_over_c)
        mean_gx = ops.matmul(q, g_over_c)
        dx = dy * (rstd * g) - rstd * mean_g - xhat * (rstd * mean_gx)
        dgamma = _column_sums(q, shared=True, product=True)[0] if wants[0] else None
        dbeta = _column_sums(dy, shared=True)[0] if wants[1] else None
        return dx, dgamma, dbeta

    return _closed_form(forward, backward, x, mean, variance, gamma, beta)


def rms_normalize_rows(x, scale, epsilon):
    """RMS normalization over the last axis of a (N, S, C) tensor.

    `x * rsqrt(mean(x ** 2) + epsilon) * scale`: layer normalization without
    the mean, with the gradient in the same closed form,

        dx = rrms * (dy * scale - x_hat * mean(dy * scale * x_hat))

    (`x_hat = x * rrms`), its row means as matrix-vector products, and
    `dscale` as the column sums of `dy * x_hat`.

    Args:
        x: float32 tensor (N, S, C).
        scale: float32 (C,) or `None`.
        epsilon: float added to the mean square.

    Returns:
        The normalized float32 tensor (N, S, C).
    """
    channels = x.shape[-1]
    weights = ops.full((channels, 1), 1.0 / channels, dtype=x.dtype)
    mean_square = ops.matmul(ops.square(x), weights)  # (N, S, 1)
    no_mean = ops.zeros_like(mean_square)

    def forward(x, mean, mean_square, scale, beta):
        del mean, beta
        y = x * ops.rsqrt(mean_square + epsilon)
        return y if scale is None else y * scale

    def backward(dy, x, mean, mean_square, scale, wants):
        del mean
        rrms = ops.rsqrt(mean_square + epsilon)
        xhat = x * rrms
        q = dy * xhat
        g = ops.ones((channels,)) if scale is None else scale
        mean_gx = ops.matmul(q, ops.reshape(g / channels, (channels, 1)))
        dx = dy * (rrms * g) - xhat * (rrms * mean_gx)
        dscale = _column_sums(q, shared=True, product=True)[0] if wants[0] else None
        return dx, dscale, None

    return _closed_form(forward, backward, x, no_mean, mean_square, scale, None)
