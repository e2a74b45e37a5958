"""The closed-form backward pass (kerasdl.layers.normalization.fused).

On CPU hosts the normalization layers compute their gradients in closed form
instead of by autodiff; these tests pin that both paths give the same outputs,
gradients, second-order gradients and moving statistics, eager and compiled.
"""

import inspect

import keras
import numpy as np
import pytest
from keras import ops

import kerasdl.layers as kl
from kerasdl.layers.normalization import fused

BACKEND = keras.backend.backend()
# Positions per sample of 8 channels for the column sums' matrix products.
BLOCK = fused.MIN_BLOCK_SIZE // 8

CASES = {
    "layer_norm_4d": (lambda: kl.LayerNormalization(), (3, 4, 5, 8)),
    "layer_norm_no_center": (lambda: kl.LayerNormalization(center=False), (4, 7, 16)),
    "layer_norm_plain": (
        lambda: kl.LayerNormalization(center=False, scale=False),
        (4, 6),
    ),
    "rms_norm": (lambda: kl.RMSNormalization(), (3, 4, 5, 8)),
    "rms_norm_no_scale": (lambda: kl.RMSNormalization(use_scale=False), (4, 6)),
    "batch_norm": (lambda: kl.BatchNormalization(momentum=0.5), (4, 5, 6, 8)),
    "batch_norm_torch": (
        lambda: kl.BatchNormalization(convention="torch", scale=False),
        (6, 7, 8),
    ),
    "batch_norm_2d": (lambda: kl.BatchNormalization(center=False), (6, 8)),
    "ghost_batch_norm": (
        lambda: kl.BatchNormalization(virtual_batch_size=2, momentum=0.5),
        (8, 3, 4, 8),
    ),
    "group_norm": (lambda: kl.GroupNormalization(groups=4), (3, 5, 6, 8)),
    "group_norm_1d": (lambda: kl.GroupNormalization(groups=2, scale=False), (3, 9, 8)),
    "instance_norm": (
        lambda: kl.InstanceNormalization(track_running_stats=True, momentum=0.5),
        (3, 5, 6, 8),
    ),
    # The same with column sums as per-sample matrix products (S * C large).
    "layer_norm_blocks": (lambda: kl.LayerNormalization(), (2, BLOCK, 8)),
    "rms_norm_blocks": (lambda: kl.RMSNormalization(), (2, BLOCK, 8)),
    "batch_norm_blocks": (
        lambda: kl.BatchNormalization(convention="torch"),
        (3, BLOCK // 16, 16, 8),
    ),
    "ghost_batch_norm_blocks": (
        lambda: kl.BatchNormalization(virtual_batch_size=2),
        (4, BLOCK // 2, 8),
    ),
    "group_norm_blocks": (lambda: kl.GroupNormalization(groups=4), (2, BLOCK, 8)),
    "instance_norm_blocks": (
        lambda: kl.InstanceNormalization(track_running_stats=True),
        (2, BLOCK // 16, 16, 8),
    ),
}


def _inputs(shape, seed):
    rng = np.random.default_rng(seed)
    # An offset mean and a large spread, so the statistics matter.
    return rng.normal(2.0, 3.0, size=shape).astype("float32")


def _training(layer):
    """`{"training": True}` for layers whose `call` takes it."""
    return (
        {"training": True}
        if "training" in inspect.signature(layer.call).parameters
        else {}
    )


def _stateless_loss(layer, upstream):
    """`(loss(x, trainable) -> (sum(y * upstream), (y, new state)), trainable)`."""

    def tensors(variables):
        return [ops.convert_to_tensor(ops.convert_to_numpy(v)) for v in variables]

    trainable = tensors(layer.trainable_variables)
    non_trainable = tensors(layer.non_trainable_variables)

    def loss(x, trainable):
        y, new_state = layer.stateless_call(
            trainable, non_trainable, x, **_training(layer)
        )
        return ops.sum(y * upstream), (y, new_state)

    return loss, trainable


def _step(layer, x, upstream, jit, dynamic_batch=False):
    """Output, gradients (x, trainable weights), new non-trainable weights.

    `dynamic_batch` (TensorFlow): trace with an unknown batch size, as
    `model.fit` does.
    """
    forward, trainable = _stateless_loss(layer, upstream)

    if BACKEND == "jax":
        import jax

        fn = jax.value_and_grad(forward, argnums=(0, 1), has_aux=True)
        fn = jax.jit(fn) if jit else fn
        (_, (y, state)), (dx, dw) = fn(x, trainable)
        return [y, dx, *dw, *state]

    import tensorflow as tf

    def step(x, trainable):
        with tf.GradientTape() as tape:
            tape.watch([x, *trainable])
            loss, (y, state) = forward(x, trainable)
        dx, *dw = tape.gradient(loss, [x, *trainable])
        return [y, dx, *dw, *state]

    if dynamic_batch:
        spec = tf.TensorSpec((None,) + x.shape[1:], "float32")
        weights = [tf.TensorSpec(w.shape, w.dtype) for w in trainable]
        fn = tf.function(step, input_signature=[spec, weights], jit_compile=jit)
    else:
        fn = tf.function(step, jit_compile=True) if jit else step
    return fn(tf.constant(x), trainable)


def _run(make, shape, flag, jit, seed=0, dynamic_batch=False):
    layer = make()
    layer.build(shape)
    rng = np.random.default_rng(seed + 1)
    for v in layer.trainable_variables:  # non-trivial gamma / beta
        v.assign(rng.normal(1.0, 0.5, size=v.shape).astype("float32"))
    x = _inputs(shape, seed)
    upstream = rng.normal(size=shape).astype("float32")
    with fused.use_fused(flag):
        values = _step(layer, x, upstream, jit, dynamic_batch)
    return [ops.convert_to_numpy(v) for v in values]


def _assert_all_close(ours, reference):
    assert len(ours) == len(reference)
    for got, want in zip(ours, reference):
        scale = max(float(np.max(np.abs(want))), 1.0)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5 * scale)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_matches_autodiff(case, jit):
    make, shape = CASES[case]
    _assert_all_close(_run(make, shape, True, jit), _run(make, shape, False, jit))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="JAX traces static shapes")
@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize(
    "case",
    [
        "batch_norm",
        "batch_norm_2d",
        "ghost_batch_norm",
        "layer_norm_4d",
        "batch_norm_blocks",
        "layer_norm_blocks",
        "rms_norm",
    ],
)
def test_fused_matches_autodiff_with_unknown_batch_size(case, jit):
    # Batch norm's statistics span the batch axis, and both kernels block
    # their column sums by sample: the batch size must not need to be static.
    make, shape = CASES[case]
    ours = _run(make, shape, True, jit, dynamic_batch=True)
    _assert_all_close(ours, _run(make, shape, False, jit))


def _input_gradient_penalty(make, shape, flag):
    """d/d(trainable) of sum((d loss / d x)^2): a gradient-penalty term."""
    layer = make()
    layer.build(shape)
    x = _inputs(shape, 3)
    upstream = np.random.default_rng(4).normal(size=shape).astype("float32")
    with_state, trainable = _stateless_loss(layer, upstream)

    def loss(x, trainable):
        return with_state(x, trainable)[0]

    with fused.use_fused(flag):
        if BACKEND == "jax":
            import jax

            def penalty(trainable):
                return ops.sum(ops.square(jax.grad(loss)(x, trainable)))

            grads = jax.grad(penalty)(trainable)
        else:
            import tensorflow as tf

            x = tf.constant(x)
            with tf.GradientTape() as outer:
                outer.watch(trainable)
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    value = loss(x, trainable)
                penalty = ops.sum(ops.square(inner.gradient(value, x)))
            grads = outer.gradient(penalty, trainable)
    # beta does not enter d loss / d x: TensorFlow says None, JAX zeros.
    return [
        np.zeros(v.shape) if g is None else ops.convert_to_numpy(g)
        for v, g in zip(layer.trainable_variables, grads)
    ]


@pytest.mark.parametrize(
    "case", ["layer_norm_4d", "rms_norm", "batch_norm", "group_norm"]
)
def test_second_order_gradients_match(case):
    make, shape = CASES[case]
    ours = _input_gradient_penalty(make, shape, True)
    reference = _input_gradient_penalty(make, shape, False)
    assert np.max(np.abs(reference[0])) > 1e-3  # gamma's penalty gradient
    for got, want in zip(ours, reference):
        scale = max(float(np.max(np.abs(want))), 1.0)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


def test_enabled_on_cpu_hosts_only():
    devices = keras.distribution.list_devices()
    cpu_only = all(str(d).lower().startswith("cpu") for d in devices)
    assert fused.enabled() == cpu_only
    with fused.use_fused(False):
        assert not fused.enabled()
        with fused.use_fused(True):
            assert fused.enabled()
        assert not fused.enabled()
    assert fused.enabled() == cpu_only


def test_masked_and_channels_first_inputs_use_the_generic_path():
    # Both need statistics the fused kernels do not take; results must not
    # depend on the switch.
    x = _inputs((2, 8, 5), 5)
    mask = np.ones((2, 5), bool)
    mask[0, 3:] = False
    for flag in (True, False):
        with fused.use_fused(flag):
            layer = kl.BatchNormalization(axis=1)
            out = ops.convert_to_numpy(layer(x, training=True))
            np.testing.assert_allclose(out.mean(axis=(0, 2)), 0.0, atol=1e-4)
            masked = kl.LayerNormalization(axis=[1, 2])
            out = ops.convert_to_numpy(masked(np.swapaxes(x, 1, 2), mask=mask))
            valid = np.swapaxes(x, 1, 2)[0, :3]
            expected = (valid - valid.mean()) / np.sqrt(valid.var() + 1e-3)
            np.testing.assert_allclose(out[0, :3], expected, rtol=1e-4, atol=1e-4)
