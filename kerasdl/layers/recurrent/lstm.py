"""`keras.layers.LSTM` with a fused time loop and a hand-written backward pass."""

import functools

import keras
from keras import ops


@functools.cache
def _has_accelerator(backend):
    del backend  # cache key: the device list is the backend's
    devices = keras.distribution.list_devices()
    return not all(str(d).lower().startswith("cpu") for d in devices)


def settings_off_the_fast_path(layer):
    """Names of a recurrent `layer`'s settings that keep it on Keras' path.

    Whatever the call: `go_backwards`, `unroll`, `stateful`, no bias, other
    activations than `tanh`/`sigmoid`, `use_cudnn=True`. Empty when none.
    """
    cell = layer.cell
    ok = {
        "go_backwards": not layer.go_backwards,
        "unroll": not layer.unroll,
        "stateful": not layer.stateful,
        "use_bias": cell.use_bias,
        "activation": cell.activation is keras.activations.tanh,
        "recurrent_activation": cell.recurrent_activation is keras.activations.sigmoid,
        "use_cudnn": layer.use_cudnn is not True,
    }
    return [name for name, holds in ok.items() if not holds]


def fast_path_applies(layer, mask, training):
    """True when a Keras recurrent `layer` (LSTM or GRU) can take the fused path.

    Everything else (a mask, dropout while training, `go_backwards`, `unroll`,
    `stateful`, no bias, other activations, cuDNN) takes Keras' own path.
    """
    cell = layer.cell
    backend = keras.backend.backend()
    dropout = cell.dropout or cell.recurrent_dropout
    return (
        backend in ("tensorflow", "jax")
        and mask is None
        and (not dropout or training is None or training is False)
        and not settings_off_the_fast_path(layer)
        and not (
            backend == "tensorflow"
            and layer.use_cudnn == "auto"
            and _has_accelerator(backend)
        )
    )


def lstm_sequence(projected, h0, c0, recurrent_kernel, bias):
    """Runs the LSTM recurrence over projected inputs, with a closed-form gradient.

    The input projection `x_t @ kernel` of every step is computed before
    (one matrix product over all steps; its gradient is autodiff's: again
    one matrix product each for the inputs and the kernel). The loop then
    does only `h @ recurrent_kernel`, adds the bias (there, not as a pass
    of its own over every step's projection) and the gates, and keeps the
    gates and cell states. The backward loop computes, per step, only the
    pre-activation gate gradients and `dh_{t-1}` (one matrix product with the
    transposed recurrent kernel); the recurrent kernel's gradient is one
    matrix product over all steps after the loop. This is the schedule of
    cuDNN's and PyTorch's CPU LSTMs.

    Gates in Keras' order (input, forget, cell, output), sigmoid and tanh.

    Args:
        projected: `(time, batch, 4 * units)`, time-major `x @ kernel`.
        h0: `(batch, units)` initial hidden state.
        c0: `(batch, units)` initial cell state.
        recurrent_kernel: `(units, 4 * units)`.
        bias: `(4 * units,)`.

    Returns:
        `(hs, h, c)`: every step's hidden state `(time, batch, units)` and the
        final hidden and cell states `(batch, units)`. Gradients flow to all
        five arguments.
    """
    units = recurrent_kernel.shape[0]

    @ops.custom_gradient
    def run(projected, h0, c0, recurrent_kernel, bias):
        batch = ops.shape(h0)[0]
        no_gates = ops.zeros((batch, 4 * units), dtype=projected.dtype)

        # Forward loop: (h, c, gates) carried and stacked (TensorFlow's
        # `scan` stacks outputs shaped as the carry).
        def step(carry, z_x):
            h, c, _ = carry
            z = z_x + bias + ops.matmul(h, recurrent_kernel)  # (batch, 4 * units)
            i, f, g, o = ops.split(z, 4, axis=-1)
            i, f, o = ops.sigmoid(i), ops.sigmoid(f), ops.sigmoid(o)
            g = ops.tanh(g)
            c = f * c + i * g
            h = o * ops.tanh(c)
            new = (h, c, ops.concatenate([i, f, g, o], axis=-1))
            return new, new

        (h, c, _), (hs, cs, gates) = ops.scan(step, (h0, c0, no_gates), projected)

        def grad(*args, upstream=None):
            if upstream is None:
                upstream = args[0] if len(args) == 1 else args
            dhs, dh, dc = (
                ops.zeros_like(ref) if g is None else g
                for g, ref in zip(upstream, (hs, h, c))
            )
            # Everything that does not depend on the recurrence, for all
            # steps at once: (time, batch, ...) tensors.
            c_prev = ops.concatenate([c0[None], cs[:-1]], axis=0)
            h_prev = ops.concatenate([h0[None], hs[:-1]], axis=0)
            i, f, g, o = ops.split(gates, 4, axis=-1)
            tanh_c = ops.tanh(cs)
            dc_per_dh = o * (1.0 - ops.square(tanh_c))
            # dz = [dc, dc, dc, dh] * scale: each gate's local derivative
            # times what it multiplies.
            scale = ops.concatenate(
                [
                    g * i * (1.0 - i),
                    c_prev * f * (1.0 - f),
                    i * (1.0 - ops.square(g)),
                    tanh_c * o * (1.0 - o),
                ],
                axis=-1,
            )
            recurrent_t = ops.transpose(recurrent_kernel)

            def back(carry, inputs):
                dh, dc, _ = carry
                if isinstance(inputs, (list, tuple)):
                    dh_out, dc_per_dh_t, f_t, scale_t = inputs
                else:
                    dh_out, dc_per_dh_t, f_t, scale_t = ops.split(
                        inputs, [units, 2 * units, 3 * units], axis=-1
                    )
                dh = dh + dh_out
                dc = dc + dh * dc_per_dh_t
                dz = ops.concatenate([dc, dc, dc, dh], axis=-1) * scale_t
                new = (ops.matmul(dz, recurrent_t), dc * f_t, dz)
                return new, new

            sequences = (dhs, dc_per_dh, f, scale)
            if projected.shape[0] is None:
                # TensorFlow's `scan` scans several sequences only when their
                # length is static; otherwise one, concatenated (a copy of
                # all of them, 7 * units wide, that the loop slices again).
                sequences = ops.concatenate(sequences, axis=-1)
            (dh0, dc0, _), (_, _, dzs) = ops.scan(
                back, (dh, dc, ops.zeros_like(no_gates)), sequences, reverse=True
            )
            dz_rows = ops.reshape(dzs, (-1, 4 * units))
            d_recurrent = ops.matmul(
                ops.transpose(ops.reshape(h_prev, (-1, units))), dz_rows
            )
            return dzs, dh0, dc0, d_recurrent, ops.sum(dz_rows, axis=0)

        return (hs, h, c), grad

    return run(projected, h0, c0, recurrent_kernel, bias)


@keras.saving.register_keras_serializable(package="kerasdl")
class LSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` whose CPU training runs a fused loop and backward pass.

    The same layer as `keras.layers.LSTM` (same arguments, weights
    `cell.kernel`, `cell.recurrent_kernel`, `cell.bias`, gate order input,
    forget, cell, output, and `get_config`), computing the same function.
    Only the schedule differs where it can:

    - the input projection `x_t @ kernel` of all steps is one matrix
      product before the time loop;
    - the loop does only `h @ recurrent_kernel`, the bias and the gates, and
      keeps the gates and cell states for the backward pass;
    - the backward pass is written out (`keras.ops.custom_gradient`): a
      reverse loop computes the gate gradients and `dh_{t-1}` (one matrix
      product per step), and the kernels' and bias' gradients are single
      matrix products over all steps after it, as cuDNN and PyTorch do.

    Keras' own CPU path (`backend.rnn` over `LSTMCell.call`, differentiated by
    autodiff) projects the input inside every step and accumulates the weight
    gradients step by step in its backward loop.

    The fast path runs on the TensorFlow and JAX backends when nothing needs
    the step-by-step cell: no mask, no dropout or recurrent dropout in effect
    (both 0, or not training), `go_backwards=False`, `unroll=False`,
    `stateful=False`, `use_bias=True`, the default `tanh`/`sigmoid`
    activations, `use_cudnn` not `True`, and, on TensorFlow, no GPU (where
    Keras uses cuDNN). Everything else falls back to `keras.layers.LSTM`.
    Under mixed precision it computes in the compute dtype, as Keras does.

    The gain is largest under XLA (`jit_compile=True`; Keras' `"auto"` is off
    on CPU-only hosts): a character language model with 2 x LSTM(256) trained
    1.5-2.5x as fast as with `keras.layers.LSTM` on a 2-core CPU, at about
    0.8x PyTorch's oneDNN `nn.LSTM`; without XLA 4-12% faster, on JAX no
    faster (`benchmarks/language_model.py`).

    One addition: `weight_dropout`, DropConnect on the recurrent kernel
    (Wan et al. 2013; the "weight-dropped LSTM" of Merity et al.'s AWD-LSTM):
    in training, one dropout mask over `recurrent_kernel` per call, the same
    for every step and every row of the batch, so it regularizes the
    recurrence without a per-step mask and costs one elementwise product per
    batch. It runs on the fast path only (a training call that needs Keras'
    path raises a `ValueError` naming why) and is off (0) by default, where
    the layer is `keras.layers.LSTM`'s function exactly.

    Args:
        units: Positive integer, dimensionality of the output space.
        *args: Keras' other positional arguments (`activation`, ...), in
            `keras.layers.LSTM`'s order.
        weight_dropout: Float in [0, 1), keyword only, the fraction of the
            recurrent kernel's entries dropped in training (the rest scaled by
            `1 / (1 - weight_dropout)`). Defaults to `0.0`.
        **kwargs: every other argument of `keras.layers.LSTM`, with its
            defaults.

    Call arguments:
        sequences: A 3D tensor `(batch, timesteps, features)`.
        initial_state: List of the initial hidden and cell states.
        mask: Binary tensor `(batch, timesteps)` (uses the fallback).
        training: Python boolean, whether dropout is active.

    Example:

    ```python
    layer = kerasdl.layers.LSTM(256, return_sequences=True, return_state=True)
    outputs, h, c = layer(x)  # (batch, time, 256), (batch, 256), (batch, 256)
    # A recurrent kernel with 30% of its entries dropped per training batch:
    regularized = kerasdl.layers.LSTM(256, weight_dropout=0.3)
    ```
    """

    def __init__(self, units, *args, weight_dropout=0.0, **kwargs):
        # Keyword-only, so that Keras' positional arguments (`LSTM(64, "relu")`
        # is `activation="relu"`) keep their meaning.
        super().__init__(units, *args, **kwargs)
        if (
            isinstance(weight_dropout, bool)
            or not isinstance(weight_dropout, (int, float))
            or not 0.0 <= weight_dropout < 1.0
        ):
            raise ValueError(
                "`weight_dropout` must be a float in [0, 1). "
                f"Received: weight_dropout={weight_dropout!r}"
            )
        self.weight_dropout = float(weight_dropout)
        if self.weight_dropout:
            wrong = [
                name
                for name in ("dropout", "recurrent_dropout")
                if getattr(self.cell, name)
            ] + settings_off_the_fast_path(self)
            if wrong:
                raise ValueError(
                    "`weight_dropout` runs on kerasdl's fused LSTM path, which "
                    "needs `dropout=0`, `recurrent_dropout=0`, `go_backwards=False`, "
                    "`unroll=False`, `stateful=False`, `use_bias=True`, "
                    "`use_cudnn` not True and the default activations. "
                    f"Received other values for: {', '.join(wrong)}"
                )

    def _fast_path(self, mask, training):
        return fast_path_applies(self, mask, training)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._fast_path(mask, training):
            if training and self.weight_dropout:
                raise ValueError(
                    f"`weight_dropout` of {self.name} runs on kerasdl's fused LSTM "
                    "path only, which takes no mask (and, on TensorFlow, no GPU, "
                    "where Keras uses cuDNN). Received a training call with "
                    f"mask={'a tensor' if mask is not None else None}"
                )
            return super().inner_loop(sequences, initial_state, mask, training)
        dtype = sequences.dtype
        kernel = ops.cast(self.cell.kernel, dtype)
        recurrent_kernel = ops.cast(self.cell.recurrent_kernel, dtype)
        if training and self.weight_dropout:
            recurrent_kernel = keras.random.dropout(
                # The cell's own dropout is off here: its seed is free.
                recurrent_kernel,
                self.weight_dropout,
                seed=self.cell.seed_generator,
            )
        bias = ops.cast(self.cell.bias, dtype)
        h0, c0 = initial_state
        # (time, batch, features) @ (features, 4 * units): all steps at once.
        projected = ops.matmul(ops.transpose(sequences, (1, 0, 2)), kernel)
        hs, h, c = lstm_sequence(projected, h0, c0, recurrent_kernel, bias)
        return h, ops.transpose(hs, (1, 0, 2)), [h, c]

    def get_config(self):
        config = super().get_config()
        config["weight_dropout"] = self.weight_dropout
        return config
