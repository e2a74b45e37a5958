"""NumPy references for the normalization layers, written from the formulas.

Everything is float64. `convention="torch"` follows PyTorch's documented
semantics: `running = (1 - momentum) * running + momentum * batch`, with the
running variance updated from the unbiased batch variance (n / (n - 1)) while
the batch is normalized with the biased one.
"""

import numpy as np


def moments(x, axes, mask=None):
    x = np.asarray(x, "float64")
    axes = tuple(axes)
    if mask is None:
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        count = np.prod([x.shape[a] for a in axes])
        return mean, var, count
    w = np.broadcast_to(np.asarray(mask, "float64"), x.shape)
    count = w.sum(axis=axes, keepdims=True)
    with np.errstate(invalid="ignore"):  # NaN statistics of fully masked sets
        mean = (x * w).sum(axis=axes, keepdims=True) / count
        var = (((x - mean) ** 2) * w).sum(axis=axes, keepdims=True) / count
    return mean, var, count


def keras_mask_weights(mask, x):
    """A Keras mask (shape `x.shape[:-1]`, or broadcastable to it) as weights
    shaped like `x`: Keras masks have no last axis, whatever the channel axis."""
    mask = np.asarray(mask, "float64")
    if mask.ndim == x.ndim - 1:
        mask = mask[..., None]
    return np.broadcast_to(mask, x.shape)


def affine(normalized, gamma, beta, shape):
    if gamma is not None:
        normalized = normalized * np.reshape(gamma, shape)
    if beta is not None:
        normalized = normalized + np.reshape(beta, shape)
    return normalized


def channel_shape(ndim, axis, channels):
    shape = [1] * ndim
    shape[axis] = channels
    return shape


def batch_norm_train(
    x,
    gamma,
    beta,
    moving_mean,
    moving_var,
    *,
    axis=-1,
    momentum=0.99,
    epsilon=1e-3,
    convention="keras",
    mask=None,
    virtual_batch_size=None,
):
    """One training step: (outputs, new_moving_mean, new_moving_var)."""
    x = np.asarray(x, "float64")
    axis = axis % x.ndim
    c = x.shape[axis]
    shape = channel_shape(x.ndim, axis, c)
    axes = [a for a in range(x.ndim) if a != axis]
    if mask is not None:
        mask = keras_mask_weights(mask, x)
    if virtual_batch_size:
        v = virtual_batch_size
        xs = np.split(x, x.shape[0] // v)
        ms = (
            [None] * len(xs)
            if mask is None
            else np.split(np.broadcast_to(mask, x.shape), x.shape[0] // v)
        )
        outs, means, vars_ = [], [], []
        for xv, mv in zip(xs, ms):
            mean, var, n = moments(xv, axes, mv)
            outs.append(
                affine((xv - mean) / np.sqrt(var + epsilon), gamma, beta, shape)
            )
            means.append(mean.reshape(-1))
            vars_.append(
                (var * n / (n - 1) if convention == "torch" else var).reshape(-1)
            )
        out = np.concatenate(outs)
        batch_mean, batch_var = np.mean(means, 0), np.mean(vars_, 0)
    else:
        mean, var, n = moments(x, axes, mask)
        out = affine((x - mean) / np.sqrt(var + epsilon), gamma, beta, shape)
        batch_mean = mean.reshape(-1)
        batch_var = (var * n / (n - 1) if convention == "torch" else var).reshape(-1)
    if convention == "torch":
        new_mean = (1 - momentum) * moving_mean + momentum * batch_mean
        new_var = (1 - momentum) * moving_var + momentum * batch_var
    else:
        new_mean = momentum * moving_mean + (1 - momentum) * batch_mean
        new_var = momentum * moving_var + (1 - momentum) * batch_var
    return out, new_mean, new_var


def batch_norm_inference(
    x, gamma, beta, moving_mean, moving_var, *, axis=-1, epsilon=1e-3
):
    x = np.asarray(x, "float64")
    axis = axis % x.ndim
    shape = channel_shape(x.ndim, axis, x.shape[axis])
    normalized = (x - np.reshape(moving_mean, shape)) / np.sqrt(
        np.reshape(moving_var, shape) + epsilon
    )
    return affine(normalized, gamma, beta, shape)


def layer_norm(x, gamma, beta, *, axes=(-1,), epsilon=1e-3, mask=None):
    x = np.asarray(x, "float64")
    axes = sorted(a % x.ndim for a in axes)
    mean, var, _ = moments(x, axes, mask)
    shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
    return affine((x - mean) / np.sqrt(var + epsilon), gamma, beta, shape)


def group_norm(x, gamma, beta, *, groups, axis=-1, epsilon=1e-3, mask=None):
    x = np.asarray(x, "float64")
    axis = axis % x.ndim
    c = x.shape[axis]
    groups = c if groups == -1 else groups
    xg = np.moveaxis(x, axis, -1)  # channels last
    lead = xg.shape[:-1]
    xg = xg.reshape(lead + (groups, c // groups))
    if mask is not None:
        mask = np.moveaxis(keras_mask_weights(mask, x), axis, -1).reshape(xg.shape)
    axes = list(range(1, len(lead))) + [xg.ndim - 1]
    mean, var, _ = moments(xg, axes, mask)
    out = ((xg - mean) / np.sqrt(var + epsilon)).reshape(lead + (c,))
    out = np.moveaxis(out, -1, axis)
    return affine(out, gamma, beta, channel_shape(x.ndim, axis, c))


def instance_norm_train(
    x,
    gamma,
    beta,
    moving_mean=None,
    moving_var=None,
    *,
    axis=-1,
    momentum=0.99,
    epsilon=1e-3,
    convention="keras",
    mask=None,
):
    """(outputs, new_moving_mean, new_moving_var); moving stats None if untracked."""
    x = np.asarray(x, "float64")
    axis = axis % x.ndim
    c = x.shape[axis]
    shape = channel_shape(x.ndim, axis, c)
    axes = [a for a in range(1, x.ndim) if a != axis]
    if mask is not None:
        mask = keras_mask_weights(mask, x)
    mean, var, n = moments(x, axes, mask)
    out = affine((x - mean) / np.sqrt(var + epsilon), gamma, beta, shape)
    if moving_mean is None:
        return out, None, None
    tracked = var * n / (n - 1) if convention == "torch" else var
    batch_mean = mean.mean(axis=0).reshape(-1)
    batch_var = tracked.mean(axis=0).reshape(-1)
    if convention == "torch":
        new_mean = (1 - momentum) * moving_mean + momentum * batch_mean
        new_var = (1 - momentum) * moving_var + momentum * batch_var
    else:
        new_mean = momentum * moving_mean + (1 - momentum) * batch_mean
        new_var = momentum * moving_var + (1 - momentum) * batch_var
    return out, new_mean, new_var
