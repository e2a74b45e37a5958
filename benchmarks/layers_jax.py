"""Training-step time of the normalization layers on JAX: closed form vs autodiff.

Run (the JAX environment `make test` builds; no TensorFlow needed):

    KERAS_BACKEND=jax .venv-jax/bin/python benchmarks/layers_jax.py

What is timed: `jax.jit(jax.value_and_grad(...))` of `sum(layer(x) * upstream)`
through `layer.stateless_call` (training mode; gradients with respect to the
input and the trainable weights), once with the layers' closed-form gradient
(`kerasdl/layers/normalization/fused.py`, what CPU hosts use) and once with
autodiff of the formula (`fused.use_fused(False)`, what GPUs use), alternating
the two. The ratio is closed form / autodiff (lower is better).

Measured on the project's quiet 2-core CPU, jax 0.10.2 / Keras 3.15.1,
defaults (median of 11 rotating repeats of 3 steps, ms per step):

    shape          layer     closed form  autodiff  ratio
    64x32x32x64    BN               8.77      9.13   0.96
    64x32x32x64    LN              27.23     44.41   0.61
    64x32x32x64    GN(32)           8.11     11.45   0.71
    64x32x32x64    IN               7.35     10.92   0.67
    64x32x32x64    ghost BN         7.84     11.14   0.70
    64x128x256     BN               4.09      4.04   1.01
    64x128x256     LN               6.54     21.13   0.31
    64x128x256     GN(32)           3.38      4.59   0.74
    64x128x256     IN               3.57      4.63   0.77
    64x128x256     ghost BN         3.31      4.78   0.69

A second run (ad hoc, same method): 0.97 / 1.10 for plain BN, 0.27-0.81 for the
rest. Plain batch norm gains nothing on JAX; the others take 0.27-0.81x
autodiff's time.
"""

import argparse
import inspect
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

# isort: split
import jax
import numpy as np
from allocator import pin_malloc_thresholds
from keras import ops
from timing import time_alternating

import kerasdl.layers as kl
from kerasdl.layers.normalization import fused

SHAPES = [(64, 32, 32, 64), (64, 128, 256)]
CASES = [
    ("BN", kl.BatchNormalization),
    ("LN", kl.LayerNormalization),
    ("GN(32)", lambda: kl.GroupNormalization(groups=32)),
    ("IN", kl.InstanceNormalization),
    ("ghost BN", lambda: kl.BatchNormalization(virtual_batch_size=8)),
]


def jax_step(make_layer, x, closed_form):
    """A compiled forward + backward step; the gradient is chosen when traced."""
    layer = make_layer()
    layer.build(x.shape)
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    upstream = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    kwargs = (
        {"training": True}
        if "training" in inspect.signature(layer.call).parameters
        else {}
    )

    def loss(x, trainable):
        y, updated = layer.stateless_call(trainable, non_trainable, x, **kwargs)
        return ops.sum(y * upstream), updated

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    with fused.use_fused(closed_form):
        jax.block_until_ready(step(x, trainable))  # trace and compile here
    return lambda: jax.block_until_ready(step(x, trainable))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--iters", type=int, default=3)
    args = parser.parse_args()
    pinned = pin_malloc_thresholds()
    print(
        f"{'shape':<14} {'layer':<9} {'closed form':>11} {'autodiff':>9} {'ratio':>6}"
    )
    for shape in SHAPES:
        x = np.random.default_rng(0).normal(size=shape).astype("float32")
        for name, make_layer in CASES:
            fns = [jax_step(make_layer, x, True), jax_step(make_layer, x, False)]
            ours, autodiff = time_alternating(fns, args.iters, args.repeats)
            print(
                f"{'x'.join(map(str, shape)):<14} {name:<9} {ours * 1e3:11.2f} "
                f"{autodiff * 1e3:9.2f} {ours / autodiff:6.2f}",
                flush=True,
            )
    print(
        f"\n(median of {args.repeats} alternating repeats x {args.iters} steps; ms per "
        f"step; jax {jax.__version__} on {jax.devices()[0].platform}; malloc "
        f"thresholds pinned: {pinned})"
    )


if __name__ == "__main__":
    main()
