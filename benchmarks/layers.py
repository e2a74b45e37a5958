"""Training-step time of kerasdl's normalization layers against the built-ins.

Run:

    .venv/bin/python benchmarks/layers.py            # full (a few minutes)
    .venv/bin/python benchmarks/layers.py --quick    # ~1-2 minutes
    .venv-bench/bin/python benchmarks/layers.py      # adds PyTorch CPU columns

What is timed: one forward + backward training step (gradients with respect to
the input and the layer's trainable weights, `training=True`, so batch-norm
layers also update their moving statistics) inside a `tf.function`, with
`jit_compile` off and on. Each pair of layers is timed alternately — A, B,
A, B, ... — and the median per-step time of each side is reported, so a burst
of load from other processes on a shared CPU hits both sides alike. The
ratio column is kerasdl / reference (lower is better).

Pairs: kerasdl `BatchNormalization` / `LayerNormalization` /
`GroupNormalization(groups=32)` against the Keras layer of the same name,
kerasdl `InstanceNormalization` against `keras.layers.GroupNormalization(
groups=-1)`, and ghost batch norm (`virtual_batch_size=8`) against kerasdl's
plain batch norm. With PyTorch importable, the `torch` column times
`nn.BatchNorm2d/1d`, `nn.LayerNorm`, `nn.GroupNorm`, `nn.InstanceNorm2d/1d
(affine=True)` in train mode on channels-first tensors of the same sizes, and
`xla/torch` is kerasdl-with-jit over PyTorch.

Goals: every kerasdl layer <= 1.0x its built-in; ghost BN <= 1.3x plain BN;
with jit_compile <= 1.5x PyTorch CPU.

Measured on the project's quiet 2-core CPU (AVX2, no AVX512), TF 2.21 /
Keras 3.15.1 / torch 2.13 CPU, `--iters 3 --repeats 15` (median of 15
rotating repeats of 3 steps, ms per step). With TensorFlow's oneDNN kernels,
which `import kerasdl` turns on (TF_ENABLE_ONEDNN_OPTS=1), and glibc malloc's
thresholds pinned (the default; `--adaptive-malloc` leaves them, see
allocator.py):

    shape          layer                tf ours   tf ref  ratio xla ours  xla ref  ratio    torch xla/torch
    64x32x32x64    BatchNorm              20.34    19.48   1.04    22.68    21.52   1.05    12.12      1.87
    64x32x32x64    LayerNorm              23.42    22.55   1.04    16.90    16.58   1.02     7.54      2.24
    64x32x32x64    GroupNorm(32)          17.12    42.71   0.40    14.03    20.45   0.69     7.30      1.92
    64x32x32x64    InstanceNorm           16.29    16.14   1.01    13.09    24.82   0.53    11.46      1.14
    64x32x32x64    GhostBN(v=8) vs BN     18.18    18.70   0.97    22.12    19.38   1.14        -         -
    64x128x256     BatchNorm               8.76     8.68   1.01    10.17     8.56   1.19     6.15      1.65
    64x128x256     LayerNorm              10.26     9.51   1.08     7.69     6.90   1.11     3.55      2.17
    64x128x256     GroupNorm(32)           7.24    10.02   0.72     4.01     5.76   0.70     3.48      1.15
    64x128x256     InstanceNorm            7.16     7.23   0.99     4.42     8.69   0.51     5.68      0.78
    64x128x256     GhostBN(v=8) vs BN      7.54     8.61   0.88     9.68     8.78   1.10        -         -

Two earlier runs with malloc's adaptive thresholds (the first of them):

    shape          layer                tf ours   tf ref  ratio xla ours  xla ref  ratio    torch xla/torch
    64x32x32x64    BatchNorm              18.55    18.59   1.00    22.08    20.84   1.06    18.61      1.19
    64x32x32x64    LayerNorm              23.37    23.34   1.00    16.33    16.22   1.01    16.93      0.96
    64x32x32x64    GroupNorm(32)          14.83    39.26   0.38    17.80    23.69   0.75     7.58      2.35
    64x32x32x64    InstanceNorm           16.66    16.30   1.02    12.11    22.24   0.54    15.02      0.81
    64x32x32x64    GhostBN(v=8) vs BN     16.33    17.38   0.94    22.29    20.19   1.10        -         -
    64x128x256     BatchNorm               8.43     8.38   1.01     8.94     7.85   1.14     6.15      1.45
    64x128x256     LayerNorm              10.40    10.17   1.02     7.52     6.94   1.08     3.59      2.10
    64x128x256     GroupNorm(32)           7.58    10.11   0.75     4.21     5.78   0.73     3.46      1.22
    64x128x256     InstanceNorm            7.28     7.34   0.99     4.18     8.41   0.50     5.37      0.78
    64x128x256     GhostBN(v=8) vs BN      6.59     7.52   0.88     8.82     6.74   1.31        -         -

The second adaptive run read XLA/torch 1.11, 1.05, 0.65, 0.74 (4-D BN, LN,
GN, IN) and 0.73, 0.94, 1.11, 0.57 (3-D), because PyTorch's own times moved
by up to 2.5x (LayerNorm 64x128x256 7.11 ms, GroupNorm 64x32x32x64 18.83 ms)
while the TensorFlow sides moved by at most 20%. Pinned, PyTorch runs at its
best every time, and the table above is the honest comparison. oneDNN halves the graph-mode times of every layer, built-ins alike, and
changes XLA's little (XLA layer norm on 64x32x32x64 went from 30 to 16 ms,
group norm from 14 to 18 ms). With TensorFlow's own kernels
(TF_ENABLE_ONEDNN_OPTS=0), an earlier run:

    shape          layer                tf ours   tf ref  ratio xla ours  xla ref  ratio    torch xla/torch
    64x32x32x64    BatchNorm              39.54    36.09   1.10    24.70    23.08   1.07    20.95      1.18
    64x32x32x64    LayerNorm              47.55    45.24   1.05    30.02    28.78   1.04    12.73      2.36
    64x32x32x64    GroupNorm(32)          33.83    63.13   0.54    13.99    18.95   0.74     9.27      1.51
    64x32x32x64    InstanceNorm           35.07    33.41   1.05    15.32    22.46   0.68    12.31      1.24
    64x32x32x64    GhostBN(v=8) vs BN     36.74    40.36   0.91    20.02    18.45   1.08        -         -
    64x128x256     BatchNorm               8.91     8.84   1.01    10.20     8.89   1.15     6.39      1.60
    64x128x256     LayerNorm              10.04    10.04   1.00     8.05     7.85   1.03     3.69      2.18
    64x128x256     GroupNorm(32)           8.22    11.13   0.74     4.18     5.83   0.72     3.71      1.13
    64x128x256     InstanceNorm            7.24     6.99   1.04     4.02     8.55   0.47     7.42      0.54
    64x128x256     GhostBN(v=8) vs BN      7.97     8.83   0.90     9.67     7.96   1.21        -         -

Run to run, single ratios against the built-ins move by about +-0.1 on this
machine (the 64x128x256 BatchNorm XLA row read 0.99 to 1.15 in five runs;
PyTorch's own times moved by up to 1.5x): batch and layer norm run the same
fused computation as the built-ins, at parity within that noise; group norm
is 0.5-0.75x the built-in (statistics per channel first, pooled per group:
see below); instance norm is 1.5-2x faster under XLA (no reshape into
one-channel groups); ghost BN costs at most 1.2x plain BN. Against PyTorch
CPU, kerasdl with XLA is 0.5-1.6x for batch, group and instance norm, but
2.2-2.4x for layer norm (with oneDNN: 0.96x on 64x32x32x64 but still 2.1x
on 64x128x256, and group norm on 64x32x32x64 at 1.5-2.35x). That gap is XLA's CPU code for the per-row
reductions, not the layer: the Keras built-in compiles to the same time; a
one-pass E[x^2] - E[x]^2 variant and the XLA flags
`xla_cpu_use_thunk_runtime=false`, `xla_cpu_enable_fast_math`,
`xla_cpu_use_fusion_emitters=false` changed nothing; computing the row means
as matrix products with a column of 1/n was 0.94-0.97x under XLA and
1.1-1.16x slower in graph mode; a hand-written backward pass
(`keras.ops.custom_gradient`) with matrix-product reductions was 0.63-0.88x
the current layer but still 1.3-1.8x PyTorch, and is not used (a custom
gradient per layer, variables passed in by value, and TF32 precision of
products on GPUs, for a few milliseconds).

Group norm: moments over the grouped view (batch, ..., groups, channels /
groups) reduce over a short trailing axis that neither runtime vectorizes;
kerasdl takes the mean and variance per channel over the spatial axes (the
channel axis stays innermost) and pools them per group with the
parallel-variance formula `var_g = mean_c(var_c + (mean_c - mean_g)^2)`,
which is exact and free of cancellation (every channel of a sample counts
the same positions, masked or not).

Earlier, in the TF graph runtime, the gradient of broadcasting (1, 1, C)
statistics over (N, T, C) inputs took ~7% longer than broadcasting (C,);
`normalize` now applies statistics and weights shaped (1, ..., 1, C) as (C,).

Why kerasdl keeps up: every layer computes float32 statistics once
(`ops.moments`) and then normalizes with a single fused multiply-add,
`x * (rsqrt(var + eps) * gamma) + (beta - mean * rsqrt(var + eps) * gamma)`,
where the factor and the offset are computed on the small per-channel (or
per-group) statistics. A naive `(x - mean) / sqrt(var + eps) * gamma + beta`
makes three full passes over the activations and was 1.4-2.2x slower.
Instance norm reduces over the spatial axes directly instead of reshaping
into one-channel groups.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# kerasdl first, as users import it: it sets TensorFlow's oneDNN default before
# TensorFlow loads (kerasdl/__init__.py); TF_ENABLE_ONEDNN_OPTS=0 measures without.
import kerasdl  # noqa: F401

# isort: split
import keras
import numpy as np
import tensorflow as tf
from allocator import pin_malloc_thresholds

import kerasdl.layers as kl

try:  # optional PyTorch reference
    import torch
except Exception:  # noqa: BLE001 - any import failure means "no torch column"
    torch = None

SHAPES = [(64, 32, 32, 64), (64, 128, 256)]


def cases(shape):
    """(name, kerasdl factory, reference factory, torch factory or None)."""
    channels = shape[-1]
    spatial = len(shape) - 2

    def torch_bn():
        return (torch.nn.BatchNorm2d if spatial == 2 else torch.nn.BatchNorm1d)(
            channels
        )

    def torch_in():
        return (torch.nn.InstanceNorm2d if spatial == 2 else torch.nn.InstanceNorm1d)(
            channels, affine=True
        )

    return [
        (
            "BatchNorm",
            lambda: kl.BatchNormalization(),
            lambda: keras.layers.BatchNormalization(),
            torch_bn,
        ),
        (
            "LayerNorm",
            lambda: kl.LayerNormalization(),
            lambda: keras.layers.LayerNormalization(),
            lambda: torch.nn.LayerNorm(channels),
        ),
        (
            "GroupNorm(32)",
            lambda: kl.GroupNormalization(groups=32),
            lambda: keras.layers.GroupNormalization(groups=32),
            lambda: torch.nn.GroupNorm(32, channels),
        ),
        (
            "InstanceNorm",
            lambda: kl.InstanceNormalization(),
            lambda: keras.layers.GroupNormalization(groups=-1),
            torch_in,
        ),
        (
            "GhostBN(v=8) vs BN",
            lambda: kl.BatchNormalization(virtual_batch_size=8),
            lambda: kl.BatchNormalization(),
            None,
        ),
    ]


def keras_step(layer, x, jit_compile):
    layer(x, training=True)  # build
    upstream = tf.constant(np.random.default_rng(1).normal(size=x.shape), "float32")
    weights = layer.trainable_weights

    @tf.function(jit_compile=jit_compile, autograph=False)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x] + weights)
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    return lambda: step(x).numpy()


def torch_step(module, shape):
    # Same sizes in PyTorch's channels-first layout (LayerNorm: last axis).
    if isinstance(module, torch.nn.LayerNorm):
        tshape = shape
    else:
        tshape = (shape[0], shape[-1]) + tuple(shape[1:-1])
    x = torch.randn(*tshape, requires_grad=True)
    upstream = torch.randn(*tshape)
    module.train()

    def step():
        x.grad = None
        module.zero_grad(set_to_none=True)
        (module(x) * upstream).sum().backward()
        return float(x.grad[0].sum())

    return step


def time_alternating(fns, iters, repeats):
    """Median seconds per call of each fn, timing them in turn each repeat."""
    for fn in fns:  # warm up / compile
        fn()
        fn()
    samples = [[] for _ in fns]
    for repeat in range(repeats):
        # Rotate who goes first, so no side always runs right after another
        # (PyTorch's OpenMP threads keep spinning for a while after a call).
        for i in [(repeat + k) % len(fns) for k in range(len(fns))]:
            fn = fns[i]
            start = time.perf_counter()
            for _ in range(iters):
                fn()
            samples[i].append((time.perf_counter() - start) / iters)
    return [statistics.median(s) for s in samples]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats and iterations (~1-2 min)"
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument(
        "--only", default="", help="comma-separated substrings of layer names to run"
    )
    parser.add_argument(
        "--no-eager", action="store_true", help="time only the jit_compile=True variant"
    )
    parser.add_argument(
        "--adaptive-malloc",
        action="store_true",
        help="leave glibc malloc's adaptive thresholds as they are (see allocator.py)",
    )
    args = parser.parse_args()
    repeats = args.repeats or (7 if args.quick else 25)
    iters = args.iters or 1
    pinned = False if args.adaptive_malloc else pin_malloc_thresholds()

    rows = []
    for shape in SHAPES:
        x = tf.constant(np.random.default_rng(0).normal(size=shape), "float32")
        for name, ours, ref, torch_factory in cases(shape):
            if args.only and not any(k in name for k in args.only.split(",")):
                continue
            row = {"shape": "x".join(map(str, shape)), "layer": name}
            for jit in (True,) if args.no_eager else (False, True):
                ours_fn = keras_step(ours(), x, jit)
                ref_fn = keras_step(ref(), x, jit)
                fns = [ours_fn, ref_fn]
                if jit and torch is not None and torch_factory is not None:
                    fns.append(torch_step(torch_factory(), shape))
                times = time_alternating(fns, iters, repeats)
                tag = "xla" if jit else "eager"
                row[f"{tag}_ours"], row[f"{tag}_ref"] = times[0], times[1]
                if len(times) == 3:
                    row["torch"] = times[2]
            rows.append(row)
            print_row(row, header=len(rows) == 1)
    print(
        f"\n(median of {repeats} alternating repeats x {iters} steps; ms per "
        "step; ratio = kerasdl / reference, lower is better; 'eager' = "
        "tf.function without XLA; "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}; "
        f"malloc thresholds pinned: {pinned})"
    )


def print_row(row, header=False):
    def ratio(a, b):
        return f"{row[a] / row[b]:6.2f}" if a in row else "     -"

    def ms(v):
        return f"{v * 1e3:8.2f}" if v is not None else "       -"

    if header:
        print(
            f"{'shape':<14} {'layer':<19} {'tf ours':>8} {'tf ref':>8} "
            f"{'ratio':>6} {'xla ours':>8} {'xla ref':>8} {'ratio':>6} "
            f"{'torch':>8} {'xla/torch':>9}"
        )
    torch_t = row.get("torch")
    vs_torch = f"{row['xla_ours'] / torch_t:9.2f}" if torch_t else "        -"
    print(
        f"{row['shape']:<14} {row['layer']:<19} {ms(row.get('eager_ours'))} "
        f"{ms(row.get('eager_ref'))} {ratio('eager_ours', 'eager_ref')} "
        f"{ms(row['xla_ours'])} {ms(row['xla_ref'])} "
        f"{ratio('xla_ours', 'xla_ref')} {ms(torch_t)} {vs_torch}",
        flush=True,
    )


if __name__ == "__main__":
    main()
