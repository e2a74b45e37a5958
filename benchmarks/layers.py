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
`RMSNormalization` / `GroupNormalization(groups=32)` against the Keras layer
of the same name,
kerasdl `InstanceNormalization` against `keras.layers.GroupNormalization(
groups=-1)`, and ghost batch norm (`virtual_batch_size=8`) against kerasdl's
plain batch norm. With PyTorch importable, the `torch` column times
`nn.BatchNorm2d/1d`, `nn.LayerNorm`, `nn.RMSNorm(eps=1e-6)`, `nn.GroupNorm`, `nn.InstanceNorm2d/1d
(affine=True)` in train mode on channels-first tensors of the same sizes, and
`xla/torch` is kerasdl-with-jit over PyTorch.

Goals: every kerasdl layer <= 1.0x its built-in; ghost BN <= 1.3x plain BN;
with jit_compile <= 1.5x PyTorch CPU.

Measured on the project's quiet 2-core CPU (AVX2, no AVX512), TF 2.21 /
Keras 3.15.1 / torch 2.13 CPU, `--iters 3 --repeats 15` (median of 15
rotating repeats of 3 steps, ms per step), TensorFlow's oneDNN kernels on
(`import kerasdl` turns them on), glibc malloc's thresholds pinned (the
default; `--adaptive-malloc` leaves them, see allocator.py). On a CPU host
the layers compute their gradient in closed form (`kerasdl/layers/
normalization/fused.py`):

    shape          layer                tf ours   tf ref  ratio xla ours  xla ref  ratio    torch xla/torch
    64x32x32x64    BatchNorm              12.85    16.32   0.79     8.36    21.23   0.39    11.97      0.70
    64x32x32x64    LayerNorm              15.41    22.08   0.70     9.66    16.15   0.60     7.46      1.30
    64x32x32x64    GroupNorm(32)          14.64    41.56   0.35     7.94    19.05   0.42     7.43      1.07
    64x32x32x64    InstanceNorm           14.49    16.52   0.88     7.83    24.22   0.32    11.32      0.69
    64x32x32x64    GhostBN(v=8) vs BN     14.27    15.13   0.94     6.54     6.47   1.01        -         -
    64x128x256     BatchNorm               6.81     8.08   0.84     3.86     9.00   0.43     5.93      0.65
    64x128x256     LayerNorm               7.31    10.38   0.70     4.73     7.64   0.62     3.81      1.24
    64x128x256     GroupNorm(32)           6.87    10.10   0.68     3.89     5.78   0.67     3.24      1.20
    64x128x256     InstanceNorm            6.98     6.98   1.00     4.67     9.12   0.51     6.23      0.75
    64x128x256     GhostBN(v=8) vs BN      6.42     6.40   1.00     2.59     3.18   0.81        -         -

Every layer is at or below its built-in's time in both modes (three full
runs: 0.32-1.00; instance norm on 64x128x256 once at 1.01 in graph mode,
0.94 in a rerun), ghost BN costs no more than plain BN (0.76-1.02). Under
XLA, against PyTorch CPU, three runs: BN 0.65-0.73, LN 1.09-1.32 (1.51 once
on 64x32x32x64, in a run where the built-in was 10-20% slower too; 1.17 in
a rerun), GN 1.07-1.44, IN 0.67-0.75.

Column sums (batch statistics, `dgamma`, `dbeta`): when a sample holds at
least 16384 values, batched matrix products over each sample's positions. A
vector-matrix product over all 65536 rows of a (65536, 64) tensor took
1.9 ms, the batched product over (64, 1024, 64) 0.5 ms, a reduction 0.6 ms.
An earlier version used the former (BN's statistics, LN's `dgamma`) and
reductions (LN's `dbeta`): LN on 64x32x32x64 ran at 1.54-1.74x PyTorch.
Below 16384 values per sample (and for unknown shapes) the layers keep that
earlier method: TF graph mode pays for each small product (BN on (512, 64)
3.1x the time).

RMSNormalization rows (kerasdl vs `keras.layers.RMSNormalization`, and
`torch.nn.RMSNorm(eps=1e-6)`), with the normalization fixes of the Keras
compatibility work (autocast off, Keras masks), `--iters 3 --repeats 15`, on
the project's 2-core machine of 2026-11-30, whose CPU now reports AVX512 and
AMX (the table above was an AVX2 CPU):

    shape          layer                tf ours   tf ref  ratio xla ours  xla ref  ratio    torch xla/torch
    64x32x32x64    BatchNorm              11.41    17.88   0.64     8.36    51.76   0.16    12.19      0.69
    64x32x32x64    LayerNorm              14.17    24.25   0.58     9.65    18.50   0.52     9.12      1.06
    64x32x32x64    RMSNorm                10.86    14.68   0.74     7.01    10.59   0.66    23.73      0.30
    64x32x32x64    GroupNorm(32)          13.82    30.39   0.45     9.67    21.31   0.45     7.30      1.32
    64x32x32x64    InstanceNorm           12.13    13.88   0.87     9.10    26.12   0.35    11.39      0.80
    64x32x32x64    GhostBN(v=8) vs BN     12.28    12.20   1.01     6.18     6.06   1.02        -         -
    64x128x256     BatchNorm               6.47     9.54   0.68     5.28     7.37   0.72     5.86      0.90
    64x128x256     LayerNorm               6.98    11.54   0.61     4.75     7.92   0.60     3.91      1.21
    64x128x256     RMSNorm                 5.27     7.26   0.73     4.40     6.42   0.69    11.96      0.37
    64x128x256     GroupNorm(32)           7.07     9.50   0.74     5.22     6.16   0.85     4.42      1.18
    64x128x256     InstanceNorm            6.73     7.47   0.90     5.07     7.16   0.71     5.25      0.97
    64x128x256     GhostBN(v=8) vs BN      6.60     6.53   1.01     3.28     3.79   0.87        -         -

RMSNorm is 0.66-0.74x the Keras built-in (its closed-form gradient; with
`--autodiff` 0.97-1.07x in a loaded smoke run). PyTorch 2.13's CPU
`nn.RMSNorm` is not one fused kernel: it took 2.6-3x its own `nn.LayerNorm`
time on the same tensors, so the torch column flatters RMSNorm.

With `--autodiff` (the layers' generic path: autodiff of the formula, as on
GPUs), an earlier run:

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

Why the closed form wins: autodiff leaves XLA's CPU compiler reductions of
elementwise products (`sum(dy * x_hat)` over rows or columns). It fuses the
product into the reduction and splits that into a tree of partial sums: a
column sum of `a * b` over 16 MB took 5.7 ms, the product written out and
summed by a matrix-vector product 3.3 ms, and a row-wise `sum((x - mean) ** 2)`
2.4 ms against 1.0 ms as a matrix-vector product (XLA fuses the square into
the product's loop). The fused path writes `dy * x_hat` once, reduces it with
matrix products and writes `dx` in one fused pass; the XLA flags
`xla_cpu_use_thunk_runtime=false`, `xla_cpu_enable_fast_math`,
`xla_cpu_use_fusion_emitters=false` and turning YNNPACK off
(`xla_cpu_experimental_ynn_fusion_type=`) did not help the autodiff path.

PyTorch's own step times move up to 2.5x from process to process with
malloc's adaptive thresholds (LayerNorm 64x128x256 3.59 vs 7.11 ms) while
the TensorFlow sides move by at most 20%, which is why the thresholds are
pinned. Run to run, single ratios move by about +-0.1 on this machine.

Group norm: statistics per channel over the spatial axes (the channel axis
stays innermost), pooled per group with the parallel-variance formula
`var_g = mean_c(var_c + (mean_c - mean_g)^2)`, exact and free of
cancellation; the built-in reduces over (groups, channels / groups) blocks.
Every layer normalizes with one fused multiply-add whose factor and offset
are computed on the small statistics tensors.
"""

import argparse
import contextlib
import os

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
from timing import time_alternating

import kerasdl.layers as kl
from kerasdl.layers.normalization import fused

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
            "RMSNorm",
            lambda: kl.RMSNormalization(),
            lambda: keras.layers.RMSNormalization(),
            lambda: torch.nn.RMSNorm(channels, eps=1e-6),
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
    # Same sizes in PyTorch's channels-first layout (LayerNorm, RMSNorm: last axis).
    if isinstance(module, (torch.nn.LayerNorm, torch.nn.RMSNorm)):
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
        "--autodiff",
        action="store_true",
        help="time kerasdl's generic path (autodiff of the formula, as on GPUs)",
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
    # The layers pick their gradient when traced: inside this block.
    with fused.use_fused(False) if args.autodiff else contextlib.nullcontext():
        for shape in SHAPES:
            run_shape(shape, args, iters, repeats, rows)
    print(
        f"\n(median of {repeats} alternating repeats x {iters} steps; ms per "
        "step; ratio = kerasdl / reference, lower is better; 'eager' = "
        "tf.function without XLA; "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}; "
        f"malloc thresholds pinned: {pinned}; kerasdl gradients: "
        f"{'autodiff' if args.autodiff else 'closed form' if fused.enabled() else 'autodiff'})"
    )


def run_shape(shape, args, iters, repeats, rows):
    """Times every case on one input shape, appending and printing its row."""
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
