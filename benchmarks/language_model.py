"""Training throughput (tokens/second) of character LSTM/GRU language models.

Run:

    .venv-bench/bin/python benchmarks/language_model.py            # LSTM and GRU, 2x256
    .venv-bench/bin/python benchmarks/language_model.py --quick    # ~2 minutes
    .venv-bench/bin/python benchmarks/language_model.py --cells lstm --layers 1
    .venv-bench/bin/python benchmarks/language_model.py --clock cpu   # CPU time
    .venv-bench/bin/python benchmarks/language_model.py --layer       # one layer

What is timed: one training step after another on real batches of *The Time
Machine* (kerasdl.data's character pipeline, batch 32 x 64 characters, 77 ids):
embedding (64) -> `--layers` recurrent layers of `--units` -> dense logits, Adam,
cross-entropy over every position. Each side first trains until its step is
traced (and XLA-compiled); then the sides are timed in turn, one epoch of
`--steps` steps each, rotating who goes first, `--repeats` times, and the median
tokens/second (batch x sequence length per step) is reported, so load from other
processes hits every side alike.

Sides, for each cell:

- `kerasdl`: `kerasdl.models.RNNLanguageModel` (the char_rnn recipes' model),
  `jit_compile` off and on.
- `keras`: the same network from plain `keras.layers` (`Sequential` of
  `Embedding`, `LSTM`/`GRU`, `Dense`), `jit_compile` off and on.
- `keras+proj`: plain Keras with the input projection of every layer hoisted
  out of the time loop (one `Dense` over the whole sequence, then a recurrent
  layer whose cell only adds the recurrent matmul), `jit_compile` off and on. A
  diagnostic: it does what PyTorch's CPU `nn.LSTM` does (see "Where the time
  goes" in the output).
- `fused`: the plain Keras network with `kerasdl.layers.LSTM` /
  `kerasdl.layers.GRU` (input projection of all steps as one matrix product,
  hand-written backward pass), `jit_compile` off and on.
- `torch`: `nn.Embedding` + `nn.LSTM`/`nn.GRU` (`batch_first`) + `nn.Linear`,
  eager, CPU.

`best/torch` is the better kerasdl setting over PyTorch (goal >= 0.8);
`best fused/torch` the same for the `fused` side. `--sides fused,torch` times
only the sides named.

Measured on the project's 2-core CPU under load from other jobs (load average
6-9), `--threads 1 --steps 10 --repeats 3` (with 2 threads PyTorch's OpenMP
threads collapse under that load: 631 tokens/s), tokens/second:

| cell | kerasdl off | kerasdl on | keras off | keras on | keras+proj on | torch | best kerasdl/torch |
| --- | --- | --- | --- | --- | --- | --- | --- |
| LSTM 2x256 | 6,001 | 4,622 | 7,020 | 4,623 | 4,766 | 13,300 | 0.45 |
| GRU 2x256 | 6,451 | 5,185 | 6,256 | 4,824 | 5,784 | 8,371 | 0.77 |

Where the time goes (`--profile --cells lstm --threads 1 --steps 8 --repeats 3`,
LSTM, tokens/second): forward only, Keras under XLA 30,564 vs PyTorch 42,931
(0.71x); a training step, 5,135 vs 15,264 (0.34x). A Keras training step costs
6x its forward pass, PyTorch's 2.8x: the gap is the backward pass through the
time loop. On CPU Keras' LSTM/GRU have no fused kernel (`backend.lstm` is cuDNN,
GPU only; on CPU it raises NotImplementedError and the layer falls back to the
generic `tf.while_loop` over `LSTMCell.call`), so every step does its own input
projection and separate gate ops, and the gradient is a second while loop that
pops every step's saved intermediates from TensorLists. PyTorch's CPU `nn.LSTM`
runs the input projection of all steps as one GEMM and each step in C++.
Hoisting the input projection out of the loop helps a little (training 6,170;
GRU +20% under XLA); unrolling the 64 steps makes XLA's backward worse (3,009);
XLA is slower than TensorFlow's graph executor here (4,623 vs 7,020 for the LSTM).
Without XLA, in a separate run of the same sides (1 thread, 8 steps, 3 repeats),
hoisting gave LSTM 8,137 vs 7,581 (PyTorch 13,923) and GRU 9,027 vs 8,480
(PyTorch 10,766, so 0.84x): the hoisted projection is worth about 7%, the rest
of the gap is the loop's backward pass.

`kerasdl.layers.LSTM` (the `fused` side) does what that points to: the input
projection of all steps as one matrix product, a time loop with only the
recurrent product and the gates, and a hand-written backward pass whose loop
computes only the gate gradients and `dh` (one product per step), the weight
gradients being single products over all steps after it. LSTM 2x256,
`--cells lstm --threads 1 --steps 10 --repeats 5`, load average 3.4-4.5 (other
jobs' trainings), tokens/second, two runs:

| run | kerasdl off | kerasdl on | keras off | keras on | keras+proj on | fused off | fused on | torch | best kerasdl/torch | best fused/torch |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
| 1 | 10,859 | 6,211 | 10,024 | 6,769 | 7,767 | 11,271 | 16,065 | 20,880 | 0.52 | 0.77 |
| 2 | 10,041 | 7,268 | 10,722 | 7,305 | 8,546 | 12,049 | 16,241 | 22,358 | 0.45 | 0.73 |

(`--sides keras,fused,torch --repeats 7` under heavier load, 4.7-5.1: keras
5,654 / 4,488, fused 5,728 / 14,215, torch 18,164: 0.78.) Under XLA the fused
layer trains the network 1.5-2.5x as fast as the best Keras LSTM side, at
0.73-0.78x PyTorch: close to the goal, not at it. Without XLA it gains little
(11,271 and 12,049 vs the best side without XLA, 10,859 and 10,722: +4% and
+12%): TensorFlow's graph executor pays per op, and each step of each loop
is about 25 ops (gates plus the TensorArray reads and writes of Keras'
`ops.scan`); `jit_compile="auto"` means off on a CPU-only host, so a model
gets the fused rate only when compiled with `jit_compile=True`.

Where the time still goes (same machine and load, each figure from one run
with the variants alternating in one process):

- Matrix products. The products of one training step alone (the same shapes,
  10.7 GFLOP: projections and their two gradients, 128 recurrent products
  forward and 128 backward, the recurrent kernels' gradients, the head) took
  90 ms under XLA where the fused step took 124 ms (`train_on_batch`); at
  heavier load, malloc pinned, 190 of 248 ms, while PyTorch's whole step took
  190 ms. 72-77% of the step is matrix products, and PyTorch's are faster: 256x2048 @ 2048x1024 took 8.9 ms in PyTorch, 10.4 ms
  under XLA, 14.8 ms in TensorFlow's graph executor.
- The rest is the loops' per-step work. One layer's loop forward and backward
  (projected inputs given, T=64, B=32, 256 units) took 45-46 ms under XLA for
  3.2 GFLOP of products. `--profile`: the fused step costs 3.4x its forward
  pass (Keras' LSTM under XLA 7.4x, PyTorch 2.0x).
- Tried and dropped: packing the carried `(h, c, gates)` into one tensor, to
  halve the TensorArray operations, was slower (50.9 vs 44.7 ms XLA, 61.2 vs
  55.6 ms graph); `fori_loop` over preallocated buffers with
  `dynamic_update_slice` instead of `scan` was 7% faster under XLA (42.6 vs
  46.0 ms) but 3x slower without it (185.7 vs 58.7 ms: every update copies the
  buffer), and a layer cannot tell whether it is being compiled.
- JAX (`train_on_batch`, always XLA): no gain, the fused layer 6,398 tokens/s
  vs Keras' LSTM 6,171 (one run), both far below TensorFlow under XLA.

`kerasdl.layers.GRU` (the `fused` side of `--cells gru`) does the same for
Keras' GRU (`reset_after=True`, Keras' default): the input projection of all
steps as one matrix product, a loop with only `h @ recurrent_kernel +
recurrent_bias` and the gates, and a backward loop that does per step `dh_t`
times three factors computed for all steps before it and one product with the
transposed recurrent kernel. `RNNLanguageModel` (the `kerasdl` side) uses it
for `cell="gru"` since run 2 below (in run 1 it still used `keras.layers.GRU`).
Both cells in one run each, `--threads 1 --steps 10 --repeats 5` (all sides),
load average 1.6-3.9 from other people's trainings, tokens/second:

| run | cell | kerasdl off | kerasdl on | keras off | keras on | keras+proj off | keras+proj on | fused off | fused on | torch | best kerasdl/torch | best keras/torch | best fused/torch |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
| 1 | LSTM | 12,347 | 15,902 | 10,599 | 7,271 | 10,968 | 8,660 | 12,628 | 16,399 | 20,816 | 0.76 | 0.51 | 0.79 |
| 1 | GRU | 11,306 | 9,115 | 11,016 | 9,333 | 12,544 | 10,697 | 14,905 | 19,474 | 16,013 | 0.71 | 0.69 | 1.22 |
| 2 | LSTM | 13,063 | 16,509 | 11,445 | 7,341 | 11,111 | 8,407 | 13,265 | 16,292 | 21,122 | 0.78 | 0.54 | 0.77 |
| 2 | GRU | 14,761 | 18,921 | 11,064 | 8,776 | 12,702 | 10,113 | 14,148 | 18,471 | 14,448 | 1.31 | 0.77 | 1.28 |

(`--cells gru --sides keras,fused,torch`, load 3.9-4.5: keras 10,960 / 8,543,
fused 15,072 / 18,731, torch 15,028: 1.25. With `--threads 2` PyTorch collapses
again, 1,039, fused 13,838 / 17,674.) Under XLA the fused GRU trains the network
at 1.22-1.31x PyTorch's `nn.GRU` (goal 0.8: met) and 1.7-1.8x the best plain
Keras GRU side; without XLA it gains 28-35% over Keras' GRU (0.93-0.98x
PyTorch), and XLA adds 1.3x on top, so `char_gru` trains with
`jit_compile=True`. The LSTM rows repeat the earlier figures: fused under XLA
0.77-0.79x PyTorch, now also through `RNNLanguageModel` (0.76-0.78).

Where the GRU's time goes (1 thread, load 3.1-3.6, medians of 7 alternating
calls, one run):

- A training step (`train_on_batch`): fused under XLA 108 ms, without 127 ms;
  Keras' GRU 228 ms under XLA, 159 ms without; PyTorch 130 ms. `--profile
  --cells gru --threads 1 --steps 8 --repeats 3`: the fused step costs 3.9x its
  forward pass under XLA (forward 72,302 tokens/s, training 18,598), PyTorch's
  4.1x (60,914 and 14,702), Keras' GRU under XLA 8.2x (71,279 and 8,687).
- The loops: one fused layer's loop forward and backward, projected inputs
  given (T=64, B=32, 256 units), 36.4 ms under XLA (44.8 ms without), its
  forward alone 9.8 ms; the 128 recurrent products alone, in two loops, 15.5 ms.
  The two layers' loops are two thirds of the step, and within them the
  per-step gate arithmetic and the loops' TensorArray reads and writes cost as
  much as the products. PyTorch's `nn.GRU` layer, its input projection and
  gradients included, takes 66.2 ms forward and backward, 17.0 ms forward.
- Matrix products: all products of one step (the same shapes, 8.1 GFLOP) took
  46 ms under XLA, 54 ms in TensorFlow's graph executor and 69 ms in PyTorch
  (its 256 small recurrent products issued from Python): about 43% of the fused
  step, where they were 72-77% for the LSTM. PyTorch's `nn.GRU` trains at
  0.68-0.77x its `nn.LSTM` here although a GRU does 3/4 of an LSTM's products;
  the fused GRU trains at 1.13-1.19x the fused LSTM.
- JAX (`train_on_batch`, always XLA, one run): the fused GRU 13,292 tokens/s vs
  Keras' GRU 11,622 (+14%), below TensorFlow under XLA.

The fused LSTM, profiled again (TensorFlow 2.21, XLA's CPU thunk runtime,
1 thread). The machine was shared the whole time: other jobs' trainings and
serving benchmarks (this process got 16-50% of one CPU), load average 4-9. Wall-clock tables were noise that day (the same layer through
`kerasdl` and `fused` in one run: 0.89 and 0.74 of PyTorch; another run
1.74, PyTorch's epoch having stalled), so the comparisons below are in CPU
time (`time.process_time`, this process, all threads; `--clock cpu` for the
table, `--layer` for one layer), which load changes less.

- PyTorch's CPU `nn.LSTM` is no Python loop: `torch.profiler` shows oneDNN's
  LSTM primitive, `aten::mkldnn_rnn_layer` 15.0 ms and
  `mkldnn_rnn_layer_backward` 29.8 ms per layer call, 91% of its step (5
  steps, 490.7 ms under the profiler). It does the same 10.7 GFLOP of
  products per step as the fused side; `nn.GRU` has no oneDNN path, which is
  why the fused GRU beats it and the fused LSTM does not.
- Per HLO operation (`XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true` and
  `tf.profiler`), one layer's recurrence, projected inputs given (T=64,
  B=32, 256 units), forward and backward, 40.0 ms in the quietest run:
  matrix products 25.2 ms (65%; the 64 forward recurrent products 9.2, the
  64 backward ones 8.1, the recurrent kernel's gradient 8.0, i.e. 116-134
  GFLOP/s, about oneDNN's rate), the other kernels 13.8 ms, all small: per
  time step the gate nonlinearities as four fusions plus a concatenate, the
  cell state recomputed in three fusions, the writes of h, c and the gates
  into the stacked outputs (2.3 ms of dynamic-update-slices in all), the
  loop counter (each kernel a thunk of its own, 5-10 us on 32 x 256
  floats); outside the loops the backward pass' precomputation (five
  elementwise passes), the 7 x units wide concatenation of the backward
  loop's inputs (1.7 ms) and the zero-filled TensorArray buffers and their
  copies (1.0 ms). The products take about what PyTorch's take; the gap is
  those small kernels. One whole layer (`--layer`: input 256, gradients to
  the inputs and all weights; after the change below, load 7.7): fused 72.0
  ms vs PyTorch 60.8 ms (0.85x); GRU 62.7 vs 84.3 ms (1.34x).
- Changed since (same outputs and gradients; identical to the bit in these
  runs): the backward loop scans its four inputs (upstream dh, dc/dh, the
  forget gate, the gate factors) as four sequences when the number of steps
  is static, as under `fit` with fixed-size batches and on JAX, instead of
  one concatenated copy that the loop slices again (TensorFlow's `scan`
  takes several sequences only with a static length, so unknown lengths
  keep the concatenation); and the bias is added inside the forward loop,
  not as a pass of its own over the (time, batch, 4 x units) projection. One
  layer's recurrence, the sequences apart alone: 1-5% less CPU time in six
  runs (e.g. 33.0 vs 34.0 ms, 37.1 vs 39.0 ms); the bias in the loop: a
  whole layer 61.5 vs 63.0 ms; both, a whole layer, input 256: 61.5 vs 65.9 ms and 68.9 vs
  71.5 ms (PyTorch 55.2 and 61.6: 0.90 and 0.89x, before 0.84 and 0.86x).
- The training step, `--cells lstm --sides kerasdl,fused,torch --threads 1
  --steps 10 --repeats 5 --clock cpu`, load 5.2-6.5, the code before and
  after the change run alternately from two checkouts, tokens per CPU
  second:

| code | kerasdl off | kerasdl on | fused off | fused on | torch | best kerasdl/torch | best fused/torch |
| --- | --- | --- | --- | --- | --- | --- | --- |
| before | 10,340 | 14,146 | 10,359 | 14,177 | 18,101 | 0.78 | 0.78 |
| after | 10,565 | 15,063 | 10,515 | 14,906 | 18,602 | 0.81 | 0.80 |
| before | 10,467 | 14,827 | 11,232 | 14,717 | 19,142 | 0.77 | 0.77 |
| after | 12,400 | 16,269 | 12,473 | 16,951 | 20,672 | 0.79 | 0.82 |
| after | 11,413 | 15,737 | 11,222 | 15,409 | 19,159 | 0.82 | 0.80 |
| after | 11,408 | 16,424 | 11,592 | 15,928 | 20,136 | 0.82 | 0.79 |

  After the change the fused LSTM under XLA trains at 0.79-0.82x PyTorch's
  `nn.LSTM` in CPU time (the same layer through `RNNLanguageModel`
  0.79-0.82x), before 0.77-0.78x: at the goal of 0.8, not clearly past it.
  In wall time the goal still has to be confirmed on a quieter machine: two
  wall-clock runs of the same command without `--clock cpu` just after
  (load 4.8-6.0) gave kerasdl on 14,969 and 13,858, fused on 11,375 and
  11,988, torch 18,804 and 18,833 tokens/s (0.80 and 0.74; 0.60 and 0.64),
  the same layers 20-25% apart between the two sides, which CPU time does
  not show. With the other jobs paused (load from this benchmark alone), two
  wall-clock runs of the same command: kerasdl on 16,710 and 17,051, fused on
  16,935 and 17,015, torch 20,712 and 20,484 tokens/s, so 0.81 and 0.83x
  through `RNNLanguageModel`, 0.82 and 0.83x for the fused side: the goal of
  0.8x is met in wall time too (the two sides now within 1% of each other).
- Tried and dropped (one layer's recurrence, forward and backward, CPU time,
  against the code of the same run): the tanh of the cell gate as
  `2 * sigmoid(2x) - 1`, so that all four gates are one fusion (38.2 vs
  39.7 ms, 36.8 vs 38.9; the step 107.8 vs 108.3 and 112.7 vs 114.3 ms,
  within the noise; it rounds differently, by up to 1e-3 in float16); `where(gate is g, tanh, sigmoid)`
  over all gates (39.3 vs 38.9); sigmoid over all gates and tanh over one
  (39.2 vs 37.1 and 33.6 vs 33.8, with the sequences apart); the backward pass' factors
  computed in the forward loop (40.1 vs 40.4); the cell state packed with
  the gates, one carry fewer (38.8 vs 38.9), and dc packed with dz in the
  backward loop (42.1); stacking c_{t-1} and recomputing c_t and tanh(c_t)
  in the backward loop (44.2 vs 39.7: XLA recomputes the tanh in each
  fusion that uses it); dz by broadcasting over (batch, 4, units) instead of
  a concatenate (45.8 vs 38.9); `fori_loop` over preallocated buffers again
  (37.5 vs 41.2 under XLA, as fast as the sequences apart, but the forward
  pass alone 17.0 vs 13.8 ms and, as before, 3x slower without XLA); one
  product for the input and recurrent kernels' gradients, `[x, h_prev]^T @
  dz` (16.6 vs 16.7 ms for the two); XLA's CPU options for the products
  (`--xla_cpu_experimental_xnn_fusion_type=dot`: products about 10% faster
  alone but the step not, 112.3 ms against 105.8-108.8 in other runs without;
  `..._ynn_fusion_type=dot` 140.6 ms; `..._onednn_fusion_type=dot` 116.8
  ms; `--xla_cpu_use_onednn` no change in the products).
  Not the cause either: page faults (XLA's 71 MiB of temporaries per step,
  0 minor faults per step). Not tried in the layer: the recurrence
  transposed, `(4 x units, units) @ (units, batch)`, whose 64 products took
  7.3 vs 8.6 ms forward and 9.6 vs 10.5 ms backward, but which would need the
  projection and the gate gradients (8 MB each) transposed.
- What is left: about 15% of a layer's time in small per-step kernels that
  oneDNN's LSTM runs inside one primitive. Keras' `scan` on TensorFlow
  keeps its carry in size-1 TensorArrays and stacks outputs shaped like the
  carry, so every step writes h, c and the gates twice and zero-fills the
  stacked buffers first; a loop the layer could write in `keras.ops` over
  preallocated buffers is fast only under XLA, and a layer cannot tell
  whether it is being compiled.

Dropout and XLA. The networks above have no dropout; the char_rnn recipes do
(`keras.layers.Dropout` on the embeddings and the recurrent outputs), and under
XLA on this CPU a Keras dropout mask is slow: one `Dropout(0.4)` on a
(32, 64, 384) tensor took 307 ms jit-compiled vs 6.2 ms without XLA (its
stateless RNG with the seed drawn from a `SeedGenerator` at run time; with a
constant seed XLA folds it away). `RNNLanguageModel` at the recipes' sizes
(`train_on_batch`, Adam with clipnorm 1, 1 thread, load 3.0-3.4, one run each),
tokens/second under XLA vs without:

| model | dropout | XLA | no XLA |
| --- | --- | --- | --- |
| GRU 384 (`char_gru`) | 0.4 | 4,579 | 17,014 |
| GRU 384 | 0 | 21,331 | 18,601 |
| LSTM 384 (`char_lstm`) | 0.3 | 4,230 | 14,513 |
| LSTM 384 | 0 | 17,343 | 14,989 |
| 2 x LSTM 384 (`char_lstm_deep`) | 0.3 | 5,837 | 6,403 |
| 2 x LSTM 384 | 0 | 7,644 | 6,518 |

So `char_gru` trains without XLA; there, in another run of the recipe's
model (GRU 384, dropout 0.4, clipnorm 1), `kerasdl.layers.GRU` gave 17,203
tokens/s and `keras.layers.GRU` 15,642 (+10%); under XLA 4,524 and 3,796.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import kerasdl.layers

# isort: split
import keras
import numpy as np
import tensorflow as tf
from allocator import pin_malloc_thresholds

from kerasdl.data.timemachine import load_language_modeling_dataset

try:
    from kerasdl.models.rnn_language_model import RNNLanguageModel
except ImportError:  # a checkout without the language models
    RNNLanguageModel = None

try:  # optional PyTorch reference
    import torch
    import torch.nn.functional as F
    from torch import nn
except Exception:  # noqa: BLE001 - any import failure means "no torch column"
    torch = None

EMBEDDING_DIM = 64
# What the timed epochs read: wall time, or with `--clock cpu` this process'
# CPU time (all its threads), which load from other processes changes less.
CLOCK = time.perf_counter


# Keras sides -----------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="benchmarks")
class ProjectedLSTMCell(keras.layers.Layer):
    """An LSTM cell whose input is already `x @ W + b` (4 * units gates)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        self.recurrent_kernel = self.add_weight(
            (self.units, 4 * self.units), initializer="orthogonal", name="recurrent"
        )

    def call(self, projected, states):
        h, c = states
        z = projected + keras.ops.matmul(h, self.recurrent_kernel)
        i, f, g, o = keras.ops.split(z, 4, axis=-1)
        c = keras.ops.sigmoid(f) * c + keras.ops.sigmoid(i) * keras.ops.tanh(g)
        h = keras.ops.sigmoid(o) * keras.ops.tanh(c)
        return h, [h, c]


@keras.saving.register_keras_serializable(package="benchmarks")
class ProjectedGRUCell(keras.layers.Layer):
    """A GRU cell (reset after the recurrent matmul, as Keras' and PyTorch's)
    whose input is already `x @ W + b` (3 * units)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        self.recurrent_kernel = self.add_weight(
            (self.units, 3 * self.units), initializer="orthogonal", name="recurrent"
        )
        self.recurrent_bias = self.add_weight(
            (3 * self.units,), initializer="zeros", name="recurrent_bias"
        )

    def call(self, projected, states):
        h = states[0] if isinstance(states, (list, tuple)) else states
        x_z, x_r, x_h = keras.ops.split(projected, 3, axis=-1)
        recurrent = keras.ops.matmul(h, self.recurrent_kernel) + self.recurrent_bias
        h_z, h_r, h_h = keras.ops.split(recurrent, 3, axis=-1)
        z = keras.ops.sigmoid(x_z + h_z)
        r = keras.ops.sigmoid(x_r + h_r)
        candidate = keras.ops.tanh(x_h + r * h_h)
        h = z * h + (1 - z) * candidate
        return h, [h]


def keras_model(
    cell, vocabulary_size, units, layers, projected=False, unroll=False, fused=False
):
    recurrent = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
    if fused:  # kerasdl's layers: hoisted projection, hand-written backward pass
        recurrent = {"lstm": kerasdl.layers.LSTM, "gru": kerasdl.layers.GRU}[cell]
    stack = [
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(vocabulary_size, EMBEDDING_DIM),
    ]
    for _ in range(layers):
        if projected:
            gates = 4 if cell == "lstm" else 3
            projected_cell = (
                ProjectedLSTMCell if cell == "lstm" else ProjectedGRUCell
            )(units)
            stack += [
                keras.layers.Dense(gates * units),  # every step's x @ W + b at once
                keras.layers.RNN(projected_cell, return_sequences=True),
            ]
        else:
            stack.append(recurrent(units, return_sequences=True, unroll=unroll))
    stack.append(keras.layers.Dense(vocabulary_size))
    return keras.Sequential(stack)


class StepTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(CLOCK())


class KerasSide:
    def __init__(self, model, jit_compile, dataset):
        self.model = model
        self.model.compile(
            keras.optimizers.Adam(1e-3),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
        self.dataset = dataset
        self.timer = StepTimes()

    def epoch(self, steps):
        """Runs `steps` steps; returns the seconds of all but the first."""
        self.model.fit(
            self.dataset,
            epochs=1,
            steps_per_epoch=steps,
            verbose=0,
            shuffle=False,
            callbacks=[self.timer],
        )
        return self.timer.ends[-1] - self.timer.ends[0]


# PyTorch side ----------------------------------------------------------------------


class TorchSide:
    def __init__(self, cell, vocabulary_size, units, layers, batches):
        recurrent = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.embedding = nn.Embedding(vocabulary_size, EMBEDDING_DIM)
        self.rnn = recurrent(EMBEDDING_DIM, units, num_layers=layers, batch_first=True)
        self.head = nn.Linear(units, vocabulary_size)
        self.parameters = [
            *self.embedding.parameters(),
            *self.rnn.parameters(),
            *self.head.parameters(),
        ]
        self.optimizer = torch.optim.Adam(self.parameters, 1e-3)
        self.batches = [
            (torch.from_numpy(x).long(), torch.from_numpy(y).long()) for x, y in batches
        ]

    def epoch(self, steps):
        for step in range(steps):
            if step == 1:
                start = CLOCK()
            x, y = self.batches[step % len(self.batches)]
            self.optimizer.zero_grad(set_to_none=True)
            hidden, _ = self.rnn(self.embedding(x))  # (batch, length, units)
            logits = self.head(hidden)  # (batch, length, vocabulary)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            loss.backward()
            self.optimizer.step()
        return CLOCK() - start

    def forward(self, x):
        with torch.no_grad():
            hidden, _ = self.rnn(self.embedding(x))
            return self.head(hidden)


# Benchmark -------------------------------------------------------------------------


def benchmark(cell, args):
    data = load_language_modeling_dataset(
        sequence_length=args.sequence_length, batch_size=args.batch_size, seed=0
    )
    batches = [(x.numpy(), y.numpy()) for x, y in data.train.take(16)]
    dataset = (
        tf.data.Dataset.from_tensor_slices(
            tuple(np.stack(parts) for parts in zip(*batches))
        )
        .cache()
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    vocabulary_size = data.vocabulary.size
    sides = {}
    for jit in (False, True):
        if RNNLanguageModel is not None:
            keras.utils.set_random_seed(0)
            sides[f"kerasdl jit={'on' if jit else 'off'}"] = KerasSide(
                RNNLanguageModel(
                    vocabulary_size,
                    cell=cell,
                    units=args.units,
                    num_layers=args.layers,
                    embedding_dim=EMBEDDING_DIM,
                ),
                jit,
                dataset,
            )
        keras.utils.set_random_seed(0)
        sides[f"keras jit={'on' if jit else 'off'}"] = KerasSide(
            keras_model(cell, vocabulary_size, args.units, args.layers), jit, dataset
        )
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        sides[f"keras+proj jit={'on' if jit else 'off'}"] = KerasSide(
            keras_model(cell, vocabulary_size, args.units, args.layers, projected=True),
            jit,
            dataset,
        )
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        sides[f"fused jit={'on' if jit else 'off'}"] = KerasSide(
            keras_model(cell, vocabulary_size, args.units, args.layers, fused=True),
            jit,
            dataset,
        )
    if torch is not None:
        torch.manual_seed(0)
        sides["torch"] = TorchSide(
            cell, vocabulary_size, args.units, args.layers, batches
        )
    if args.sides:
        wanted = args.sides.split(",")
        sides = {k: v for k, v in sides.items() if k.split(" ")[0] in wanted}

    for side in sides.values():  # trace / compile, then one warm epoch
        side.epoch(2)
        side.epoch(args.steps)
    keys = list(sides)
    times = {key: [] for key in keys}
    for repeat in range(args.repeats):
        for i in range(len(keys)):
            key = keys[(repeat + i) % len(keys)]
            times[key].append(sides[key].epoch(args.steps))
    tokens = (args.steps - 1) * args.batch_size * args.sequence_length
    return {key: tokens / statistics.median(t) for key, t in times.items()}


def profile(cell, args):
    """Where the time goes: forward-only vs training rates of the variants."""
    from timing import time_alternating

    data = load_language_modeling_dataset(
        sequence_length=args.sequence_length, batch_size=args.batch_size, seed=0
    )
    batches = [(x.numpy(), y.numpy()) for x, y in data.train.take(16)]
    dataset = (
        tf.data.Dataset.from_tensor_slices(
            tuple(np.stack(parts) for parts in zip(*batches))
        )
        .cache()
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    vocabulary_size = data.vocabulary.size
    variants = {  # name: (keras_model options, jit_compile)
        "keras jit=off": ({}, False),
        "keras jit=on": ({}, True),
        "keras+proj jit=on": ({"projected": True}, True),
        "keras unroll jit=on": ({"unroll": True}, True),
    }
    variants["fused jit=off"] = ({"fused": True}, False)
    variants["fused jit=on"] = ({"fused": True}, True)
    sides, forwards = {}, {}
    x = tf.constant(batches[0][0])
    for key, (options, jit) in variants.items():
        keras.utils.set_random_seed(0)
        model = keras_model(cell, vocabulary_size, args.units, args.layers, **options)
        sides[key] = KerasSide(model, jit, dataset)
        forward = tf.function(lambda x, model=model: model(x), jit_compile=jit)
        forwards[key] = lambda forward=forward: forward(x).numpy()
    if torch is not None:
        torch.manual_seed(0)
        sides["torch"] = TorchSide(
            cell, vocabulary_size, args.units, args.layers, batches
        )
        tx = torch.from_numpy(batches[0][0]).long()
        forwards["torch"] = lambda: sides["torch"].forward(tx)
    tokens = args.batch_size * args.sequence_length
    forward_rates = dict(
        zip(
            forwards,
            (tokens / t for t in time_alternating(list(forwards.values()), 3, 5)),
        )
    )
    for side in sides.values():
        side.epoch(2)
    train_times = {key: [] for key in sides}
    for repeat in range(args.repeats):
        for key in (
            list(sides)[repeat % len(sides) :] + list(sides)[: repeat % len(sides)]
        ):
            train_times[key].append(sides[key].epoch(args.steps))
    train_rates = {
        key: (args.steps - 1) * tokens / statistics.median(t)
        for key, t in train_times.items()
    }
    print(f"\n{cell}: where the time goes (tokens/second, median)")
    print(f"{'variant':<22} {'forward':>9} {'train step':>11} {'train/forward':>14}")
    for key in sides:
        print(
            f"{key:<22} {forward_rates[key]:>9.0f} {train_rates[key]:>11.0f} "
            f"{train_rates[key] / forward_rates[key]:>14.2f}",
            flush=True,
        )


def time_alternating_cpu(fns, iters, repeats):
    """Median (CPU, wall) seconds per call of each fn, timing them in turn.

    CPU time is `time.process_time` (all of this process' threads): what the
    call itself cost, which load from other processes changes less than the
    wall time it took.
    """
    for fn in fns:  # warm up / compile
        fn()
        fn()
    cpu = [[] for _ in fns]
    wall = [[] for _ in fns]
    for repeat in range(repeats):
        for i in [(repeat + k) % len(fns) for k in range(len(fns))]:
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            for _ in range(iters):
                fns[i]()
            cpu[i].append((time.process_time() - cpu_start) / iters)
            wall[i].append((time.perf_counter() - wall_start) / iters)
    return [statistics.median(s) for s in cpu], [statistics.median(s) for s in wall]


def layer(cell, args):
    """One fused layer against PyTorch's: forward and backward, CPU and wall time.

    `kerasdl.layers.LSTM`/`GRU` (`--units` wide input and output, batch x
    sequence length) under XLA, gradients to the inputs and every weight, vs
    `nn.LSTM`/`nn.GRU` (on CPU PyTorch runs its oneDNN LSTM kernel). CPU
    time (`time.process_time`, this process, all threads) is what the
    process itself spent; under load from other jobs it varies less than
    wall time.
    """
    width = args.units
    x = np.random.default_rng(0).normal(
        size=(args.batch_size, args.sequence_length, width)
    )
    x = x.astype("float32")
    keras_layer = {"lstm": kerasdl.layers.LSTM, "gru": kerasdl.layers.GRU}[cell](
        args.units, return_sequences=True
    )
    keras_layer.build((None, None, width))

    @tf.function(jit_compile=True)
    def keras_step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = keras_layer(x)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [x, *keras_layer.trainable_variables])

    tx = tf.constant(x)
    fns = {"fused jit=on": lambda: [g.numpy() for g in keras_step(tx)]}
    if torch is not None:
        recurrent = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](
            width, args.units, batch_first=True
        )
        px = torch.from_numpy(x).requires_grad_()

        def torch_step():
            for parameter in (px, *recurrent.parameters()):
                parameter.grad = None
            y, _ = recurrent(px)
            (y * y).sum().backward()

        fns["torch"] = torch_step
    cpu, wall = time_alternating_cpu(list(fns.values()), 3, args.repeats)
    print(
        f"\n{cell}: one layer ({width} -> {args.units}, batch {args.batch_size} x "
        f"{args.sequence_length}), forward + backward, ms (median)"
    )
    print(f"{'side':<14} {'cpu':>8} {'wall':>8} {'torch/side cpu':>15} {'wall':>6}")
    for key, c, w in zip(fns, cpu, wall):
        print(
            f"{key:<14} {c * 1e3:>8.2f} {w * 1e3:>8.2f} {cpu[-1] / c:>15.2f} "
            f"{wall[-1] / w:>6.2f}",
            flush=True,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", default="lstm,gru", help="comma-separated")
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed epoch")
    parser.add_argument(
        "--sides",
        default="",
        help="comma-separated sides to time (kerasdl, keras, keras+proj, fused, "
        "torch); default: all",
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the table: forward-only and training rates of plain Keras "
        "(as is, input projection hoisted, time loop unrolled), the fused "
        "kerasdl layers and PyTorch",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what the table's epochs are timed with: wall time (default) or this "
        "process' CPU time (time.process_time, all threads), which load from "
        "other processes changes less",
    )
    parser.add_argument(
        "--layer",
        action="store_true",
        help="instead of the table: one fused layer's forward and backward under "
        "XLA vs PyTorch's layer, CPU and wall time",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="intra-op threads for TensorFlow and PyTorch alike (default: all CPUs)",
    )
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    args.steps = args.steps or (6 if args.quick else 15)
    args.repeats = args.repeats or (3 if args.quick else 5)
    cells = [c for c in args.cells.split(",") if c]
    for cell in cells:
        if cell not in ("lstm", "gru"):
            parser.error(f"unknown cell {cell!r}; choose from lstm, gru")
    try:  # only possible before TensorFlow's runtime starts
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    except RuntimeError:
        pass
    if torch is not None:
        torch.set_num_threads(args.threads)
    pinned = pin_malloc_thresholds()
    if args.profile:
        for cell in cells:
            profile(cell, args)
        return
    if args.layer:
        for cell in cells:
            layer(cell, args)
        return
    print(
        f"TF {tf.__version__}, Keras {keras.__version__}, "
        f"torch {torch.__version__ if torch else 'not installed'}, "
        f"{os.cpu_count()} CPUs, threads={args.threads}, {args.layers}x{args.units} "
        f"units, batch {args.batch_size} x {args.sequence_length} characters, "
        f"steps={args.steps}, repeats={args.repeats}, malloc pinned: {pinned}, "
        f"clock: {args.clock}"
    )
    columns = [
        "kerasdl jit=off",
        "kerasdl jit=on",
        "keras jit=off",
        "keras jit=on",
        "keras+proj jit=off",
        "keras+proj jit=on",
        "fused jit=off",
        "fused jit=on",
        "torch",
    ]
    print("\ntraining tokens/second (median); higher is better")
    print(
        f"{'cell':<5} "
        + " ".join(f"{c:>17}" for c in columns)
        + f" {'best dl/torch':>14} {'best keras/torch':>17}"
        + f" {'best fused/torch':>17}",
        flush=True,
    )
    for cell in cells:
        rates = benchmark(cell, args)
        torch_rate = rates.get("torch")
        dl = [rates[k] for k in ("kerasdl jit=off", "kerasdl jit=on") if k in rates]
        plain = max(rates.get("keras jit=off", 0), rates.get("keras jit=on", 0))
        fused = max(rates.get("fused jit=off", 0), rates.get("fused jit=on", 0))

        def ratio(value, torch_rate=torch_rate):
            return f"{value / torch_rate:.2f}" if torch_rate and value else "-"

        print(
            f"{cell:<5} "
            + " ".join(
                f"{rates[c]:>17.0f}" if c in rates else f"{'-':>17}" for c in columns
            )
            + f" {ratio(max(dl) if dl else None):>14} {ratio(plain):>17}"
            + f" {ratio(fused):>17}",
            flush=True,
        )


if __name__ == "__main__":
    main()
