"""Overhead of `kerasdl.callbacks.GradientStatistics` on `model.fit`.

Run:

    .venv/bin/python benchmarks/gradient_statistics.py
    KERAS_BACKEND=jax .venv-jax/bin/python benchmarks/gradient_statistics.py
    .venv/bin/python benchmarks/gradient_statistics.py --jit-compile --log-dir /tmp/gs

What is timed: LeNet (`kerasdl.models.get_model("lenet", (8, 8, 1), 10,
rescale=1/16)`, sigmoid activations, the stem resizes to 28x28) trained on
sklearn's 1,797 digits with Adam, batch 32, for `--epochs` epochs per `fit`,
without the callback and with it probing once per epoch on a 128-image probe
batch (`--probe-size`). Each side has its own model; a first `fit` of each traces and compiles
(timed apart, as "first fit"); then the sides' `fit` calls alternate,
`--repeats` times, rotating who goes first, and the medians are compared,
in wall-clock and in process CPU time (all threads; steadier than the wall
clock on a shared machine). The CPU time spent inside the callback's hooks is
reported too. Goal: median overhead <= 5% of the fit time.

With `--log-dir`, the callback also writes its CSV, TensorBoard summaries
(histograms included) and PNG there, which costs more per probe.

Measured on the project's 2-core CPU while other jobs ran (load 5-9, so the
wall-clock medians swing by +-25%; the CPU-time figures are steadier),
TensorFlow 2.21 / jax 0.10.2, Keras 3.15.1, 5 repeats (JAX: 3):

    backend  probe  log_dir  CPU in callback  per probe  first probe (traces)
    TF       128    -        4.2% of the fit  18 ms      0.6 s
    TF       256    -        7.2%             29 ms      0.5 s
    JAX      128    -        0.7%             35 ms      2.2 s

(An earlier run with histograms and `--log-dir`, TF, probe 256: 17.4%, 47 ms.)
The cost is the probe batch's forward and backward pass, so it grows with the
probe: at 128 images (7% of the 1,797-image epoch) it meets the 5% goal, at 256
it does not: the gradient of 256 images alone costs about one training step at
batch 256 (19 ms CPU, 5.5% of an epoch of 57 steps at batch 32) and the layer
statistics over its ~2.5M layer-output values add ~5 ms. JAX's LeNet epochs are
several times slower here, so the same probe is a smaller share. Later probes
cost the same as the second: nothing retraces.
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import kerasdl  # noqa: F401  (first, as users import it)

# isort: split
import keras
from sklearn.datasets import load_digits

from kerasdl.callbacks import GradientStatistics
from kerasdl.models import get_model


def _digits():
    digits = load_digits()
    images = digits.images.astype("float32")[..., None]  # (1797, 8, 8, 1), 0..16
    return images, digits.target.astype("int32")


class TimedGradientStatistics(GradientStatistics):
    """Also adds up the CPU seconds its epoch-end hook (the probe) takes."""

    def on_train_begin(self, logs=None):
        start = time.process_time()
        super().on_train_begin(logs)
        self.seconds = [time.process_time() - start]

    def on_epoch_end(self, epoch, logs=None):
        start = time.process_time()
        super().on_epoch_end(epoch, logs)
        self.seconds.append(time.process_time() - start)


def _model(jit_compile):
    keras.utils.set_random_seed(0)
    model = get_model("lenet", (8, 8, 1), 10, rescale=1 / 16, input_dtype="float32")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--probe-size", type=int, default=128)
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--log-dir", default=None)
    args = parser.parse_args()

    images, labels = _digits()
    probe = TimedGradientStatistics(
        probe_data=(images[: args.probe_size], labels[: args.probe_size]),
        log_dir=args.log_dir,
    )
    sides = {
        "without": (_model(args.jit_compile), []),
        "with": (_model(args.jit_compile), [probe]),
    }

    def fit(name):
        """(wall, CPU) seconds of one `fit`."""
        model, callbacks = sides[name]
        start, start_cpu = time.perf_counter(), time.process_time()
        model.fit(
            images,
            labels,
            batch_size=32,
            epochs=args.epochs,
            verbose=0,
            callbacks=callbacks,
        )
        return time.perf_counter() - start, time.process_time() - start_cpu

    names = list(sides)
    first = {name: fit(name)[0] for name in names}
    first_probes = list(probe.seconds)
    samples = {name: [] for name in names}  # (wall, CPU) seconds per fit
    inside = []  # share of the with-side fit's CPU time spent in the callback
    for repeat in range(args.repeats):
        for i in range(len(names)):
            name = names[(repeat + i) % len(names)]
            samples[name].append(fit(name))
            if name == "with":
                inside.append(sum(probe.seconds) / samples[name][-1][1])
    medians = {
        name: [statistics.median(s[k] for s in samples[name]) for k in (0, 1)]
        for name in names
    }

    print(
        f"backend={keras.backend.backend()} jit_compile={args.jit_compile} "
        f"epochs={args.epochs} probes/fit={len(probe.history)} "
        f"probe batch={args.probe_size} log_dir={args.log_dir} "
        f"repeats={args.repeats}"
    )
    for name in names:
        walls = ", ".join(f"{wall:.2f}" for wall, _ in samples[name])
        print(
            f"{name:>8}: median {medians[name][0]:.3f} s wall ({walls}), "
            f"{medians[name][1]:.3f} s CPU per fit; first fit {first[name]:.2f} s wall"
        )
    for k, clock in enumerate(("wall", "CPU")):
        ratio = medians["with"][k] / medians["without"][k]
        print(
            f"overhead ({clock}): {100 * (ratio - 1):+.1f}% "
            f"(with / without = {ratio:.3f})"
        )
    print(
        f"CPU time inside the callback: median {100 * statistics.median(inside):.1f}%"
        f" of the with-side fit's; first fit: set-up {1000 * first_probes[0]:.0f} ms,"
        f" first probe (traces) {1000 * first_probes[1]:.0f} ms, later probes "
        f"{1000 * statistics.median(first_probes[2:]):.1f} ms each"
    )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
