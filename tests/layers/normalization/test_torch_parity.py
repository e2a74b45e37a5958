"""kerasdl's `convention="torch"` against real PyTorch modules.

Skipped where torch is not installed (the test environment); run with
`.venv-bench/bin/python -m pytest tests/layers/normalization/test_torch_parity.py`.
"""

import keras
import numpy as np
import pytest

from kerasdl.layers import (
    BatchNormalization,
    GroupNormalization,
    InstanceNormalization,
    LayerNormalization,
    RMSNormalization,
)

torch = pytest.importorskip("torch")


def _x(shape, seed):
    return np.random.default_rng(seed).normal(1.0, 2.0, size=shape).astype("float32")


def _np(v):
    return keras.ops.convert_to_numpy(v)


def _randomize(module, seed=0):
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, size=p.shape)))
    return module


@pytest.mark.parametrize(
    "torch_cls, ours, shape",
    [
        (
            torch.nn.BatchNorm2d,
            lambda: BatchNormalization(axis=1, convention="torch"),
            (4, 3, 5, 5),
        ),
        (
            torch.nn.BatchNorm1d,
            lambda: BatchNormalization(axis=1, convention="torch"),
            (6, 3, 7),
        ),
        (
            lambda c: torch.nn.InstanceNorm2d(c, affine=True, track_running_stats=True),
            lambda: InstanceNormalization(
                axis=1, track_running_stats=True, convention="torch"
            ),
            (4, 3, 5, 5),
        ),
    ],
    ids=["BatchNorm2d", "BatchNorm1d", "InstanceNorm2d"],
)
def test_running_statistics_match_torch(torch_cls, ours, shape):
    module = _randomize(torch_cls(shape[1]))
    layer = ours()
    layer.build(shape)
    layer.load_torch_state_dict(module.state_dict())
    module.train()
    for step in range(4):
        x = _x(shape, step)
        expected = module(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(
            _np(layer(x, training=True)), expected, rtol=1e-4, atol=1e-4
        )
    np.testing.assert_allclose(
        _np(layer.moving_mean), module.running_mean.numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        _np(layer.moving_variance), module.running_var.numpy(), rtol=1e-5, atol=1e-6
    )
    module.eval()
    x = _x(shape, 99)
    np.testing.assert_allclose(
        _np(layer(x, training=False)),
        module(torch.from_numpy(x)).detach().numpy(),
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize(
    "module, layer, shape",
    [
        (
            lambda: torch.nn.GroupNorm(4, 8),
            lambda: GroupNormalization(groups=4, axis=1, convention="torch"),
            (2, 8, 5, 5),
        ),
        (
            lambda: torch.nn.LayerNorm(6),
            lambda: LayerNormalization(convention="torch"),
            (3, 4, 6),
        ),
        (
            lambda: torch.nn.InstanceNorm1d(5, affine=True),
            lambda: InstanceNormalization(axis=1, convention="torch"),
            (3, 5, 9),
        ),
        (
            lambda: torch.nn.RMSNorm(6),
            lambda: RMSNormalization(convention="torch"),
            (3, 4, 6),
        ),
        (
            lambda: torch.nn.RMSNorm([4, 6], elementwise_affine=False),
            lambda: RMSNormalization(
                axis=[-2, -1], use_scale=False, convention="torch"
            ),
            (3, 4, 6),
        ),
    ],
    ids=["GroupNorm", "LayerNorm", "InstanceNorm1d", "RMSNorm", "RMSNorm2dNoAffine"],
)
def test_outputs_and_gradients_match_torch(module, layer, shape):
    module, layer = _randomize(module()), layer()
    layer.build(shape)
    layer.load_torch_state_dict(module.state_dict())
    x = _x(shape, 0)
    tx = torch.from_numpy(x).requires_grad_(True)
    (module(tx) ** 2).sum().backward()

    import tensorflow as tf

    kx = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(kx)
        y = layer(kx, training=True)
        loss = tf.reduce_sum(y**2)
    np.testing.assert_allclose(
        y.numpy(), module(tx).detach().numpy(), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        tape.gradient(loss, kx).numpy(), tx.grad.numpy(), rtol=1e-3, atol=1e-3
    )


def test_accepts_torch_tensors_and_rejects_mismatches():
    module = torch.nn.BatchNorm1d(4)
    layer = BatchNormalization(convention="torch")
    layer.build((None, 4))
    layer.load_torch_state_dict(module.state_dict())  # tensors, num_batches_tracked
    with pytest.raises(ValueError, match="has shape"):
        layer.load_torch_state_dict(torch.nn.BatchNorm1d(5).state_dict())


def test_rms_norm_default_epsilon_and_weight_gradient_match_torch():
    # Inputs whose mean square is near float32's machine epsilon, PyTorch's
    # default `eps`: the outputs only agree if the epsilons do.
    module = _randomize(torch.nn.RMSNorm(8))
    layer = RMSNormalization(convention="torch")
    layer.build((None, 8))
    layer.load_torch_state_dict(module.state_dict())
    x = _x((5, 8), 0) * 1e-4
    tx = torch.from_numpy(x)
    (module(tx) ** 2).sum().backward()

    import tensorflow as tf

    with tf.GradientTape() as tape:
        y = layer(tf.constant(x))
        loss = tf.reduce_sum(y**2)
    np.testing.assert_allclose(
        y.numpy(), module(tx).detach().numpy(), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        tape.gradient(loss, layer.scale).numpy(),
        module.weight.grad.numpy(),
        rtol=1e-3,
        atol=1e-3,
    )
