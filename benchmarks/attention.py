"""Training-step time of kerasdl's MultiHeadAttention against the built-ins.

Run:

    .venv/bin/python benchmarks/attention.py            # full (a few minutes)
    .venv/bin/python benchmarks/attention.py --quick    # ~1-2 minutes
    .venv-bench/bin/python benchmarks/attention.py      # adds PyTorch CPU columns

What is timed: one forward + backward training step (gradients with respect to
the inputs and the layer's trainable weights, `training=True`, no dropout)
inside a `tf.function`, with `jit_compile` off ("tf") and on ("xla"), for
kerasdl's `MultiHeadAttention` and `keras.layers.MultiHeadAttention` with the
same sizes; with PyTorch importable also `torch.nn.MultiheadAttention(
batch_first=True)` in train mode (`need_weights=False`; the causal case passes
a boolean `attn_mask` with `is_causal=True`). The sides are timed alternately
— A, B, C, A, B, C, ... — with `benchmarks/timing.py`, and the median
per-step time of each is reported, so a burst of load from other processes
hits all sides alike. Ratio columns are kerasdl / reference (lower is better);
`xla/torch` is kerasdl-with-XLA over PyTorch.

Cases: self-attention `(batch, length, d)` with `d = num_heads * key_dim`,
without a mask and with `use_causal_mask=True`, and cross-attention from a
shorter query onto a longer memory.

Goals: kerasdl <= 1.0x the Keras built-in; under XLA <= 1.5x PyTorch CPU.

Measured on the project's quiet 2-core machine (2026-11-30; the CPU reports
AVX512 and AMX), TF 2.21 / Keras 3.15.1 / torch 2.13 CPU, oneDNN on, malloc
thresholds pinned, `--repeats 40`, two runs (ms per step):

    case                tf ours   tf ref  ratio xla ours  xla ref  ratio    torch xla/torch
    self 32x128           43.13    48.47   0.89    58.13    58.14   1.00    53.36      1.09
    causal 32x128         49.54    51.94   0.95    61.53    60.74   1.01    57.42      1.07
    cross 32x64<-128      29.42    32.79   0.90    37.78    36.95   1.02    37.68      1.00
    self 32x128           42.70    48.18   0.89    59.81    58.19   1.03    55.00      1.09
    causal 32x128         48.47    51.52   0.94    60.52    59.05   1.02    55.83      1.08
    cross 32x64<-128      28.70    31.29   0.92    37.18    36.83   1.01    36.45      1.02

A third run: 0.89 / 0.94 / 0.95 (graph), 1.02 / 1.00 / 1.05 (XLA).

TF graph: 0.89-0.95x the built-in. XLA: 1.00-1.05x, inside this harness's
run-to-run noise: an A/A run (kerasdl vs two Keras layers, 40 repeats,
XLA) gave kerasdl/Keras 0.98 and 0.99 (self), 1.00 and 1.00 (causal), and
Keras/Keras 1.014. Keras' layer computes unmasked attention with
`ops.dot_product_attention` (`tf.einsum`); ours uses the einsum path, which
Keras' TF backend lowers to transposes and batched matmuls: faster in graph
mode, level under XLA. Routing our unmasked case through
`dot_product_attention` measured 1.035x (graph) and 1.016x (XLA) of Keras
in one ad-hoc run, worse in both. Against PyTorch CPU under XLA: 0.98-1.09x.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# kerasdl first, as users import it: it sets TensorFlow's oneDNN default before
# TensorFlow loads (kerasdl/__init__.py).
import kerasdl  # noqa: F401

# isort: split
import keras
import numpy as np
import tensorflow as tf
from allocator import pin_malloc_thresholds
from timing import time_alternating

import kerasdl.layers as kl

try:  # optional PyTorch reference
    import torch
except Exception:  # noqa: BLE001 - any import failure means "no torch column"
    torch = None

NUM_HEADS, KEY_DIM = 8, 32
# (name, batch, query length, key length, causal)
CASES = [
    ("self 32x128", 32, 128, 128, False),
    ("causal 32x128", 32, 128, 128, True),
    ("cross 32x64<-128", 32, 64, 128, False),
]


def keras_step(layer, query, value, causal, jit_compile):
    layer(query, value, use_causal_mask=causal)  # build
    rng = np.random.default_rng(1)
    upstream = tf.constant(rng.normal(size=query.shape), "float32")
    weights = layer.trainable_weights

    @tf.function(jit_compile=jit_compile, autograph=False)
    def step(query, value):
        with tf.GradientTape() as tape:
            tape.watch([query, value])
            y = layer(query, value, use_causal_mask=causal, training=True)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [query, value] + weights)
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    return lambda: step(query, value).numpy()


def torch_step(batch, query_length, key_length, causal):
    width = NUM_HEADS * KEY_DIM
    module = torch.nn.MultiheadAttention(width, NUM_HEADS, batch_first=True)
    module.train()
    query = torch.randn(batch, query_length, width, requires_grad=True)
    value = (
        query
        if query_length == key_length
        else torch.randn(batch, key_length, width, requires_grad=True)
    )
    upstream = torch.randn(batch, query_length, width)
    mask = None
    if causal:  # True = may NOT attend, in PyTorch
        mask = torch.triu(torch.ones(query_length, key_length, dtype=torch.bool), 1)

    def step():
        query.grad = None
        module.zero_grad(set_to_none=True)
        output, _ = module(
            query, value, value, need_weights=False, attn_mask=mask, is_causal=causal
        )
        (output * upstream).sum().backward()
        return float(query.grad[0].sum())

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (~1-2 min)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument(
        "--only", default="", help="comma-separated substrings of case names to run"
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
    for name, batch, query_length, key_length, causal in CASES:
        if args.only and not any(k in name for k in args.only.split(",")):
            continue
        rng = np.random.default_rng(0)
        width = NUM_HEADS * KEY_DIM
        query = tf.constant(rng.normal(size=(batch, query_length, width)), "float32")
        value = query
        if key_length != query_length:
            value = tf.constant(rng.normal(size=(batch, key_length, width)), "float32")
        row = {"case": name}
        for jit in (False, True):
            fns = [
                keras_step(
                    kl.MultiHeadAttention(NUM_HEADS, KEY_DIM), query, value, causal, jit
                ),
                keras_step(
                    keras.layers.MultiHeadAttention(NUM_HEADS, KEY_DIM),
                    query,
                    value,
                    causal,
                    jit,
                ),
            ]
            if jit and torch is not None:
                fns.append(torch_step(batch, query_length, key_length, causal))
            times = time_alternating(fns, iters, repeats)
            tag = "xla" if jit else "tf"
            row[f"{tag}_ours"], row[f"{tag}_ref"] = times[0], times[1]
            if len(times) == 3:
                row["torch"] = times[2]
        rows.append(row)
        print_row(row, header=len(rows) == 1)
    print(
        f"\n(median of {repeats} alternating repeats x {iters} steps; ms per "
        "step; ratio = kerasdl / reference, lower is better; "
        f"num_heads={NUM_HEADS}, key_dim={KEY_DIM}; "
        f"torch threads: {torch.get_num_threads() if torch else '-'}; "
        f"malloc thresholds pinned: {pinned})"
    )


def print_row(row, header=False):
    def ms(value):
        return f"{value * 1e3:8.2f}" if value is not None else "       -"

    if header:
        print(
            f"{'case':<18} {'tf ours':>8} {'tf ref':>8} {'ratio':>6} "
            f"{'xla ours':>8} {'xla ref':>8} {'ratio':>6} {'torch':>8} "
            f"{'xla/torch':>9}"
        )
    torch_time = row.get("torch")
    vs_torch = f"{row['xla_ours'] / torch_time:9.2f}" if torch_time else "        -"
    print(
        f"{row['case']:<18} {ms(row['tf_ours'])} {ms(row['tf_ref'])} "
        f"{row['tf_ours'] / row['tf_ref']:6.2f} {ms(row['xla_ours'])} "
        f"{ms(row['xla_ref'])} {row['xla_ours'] / row['xla_ref']:6.2f} "
        f"{ms(torch_time)} {vs_torch}",
        flush=True,
    )


if __name__ == "__main__":
    main()
