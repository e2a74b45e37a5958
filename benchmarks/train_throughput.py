"""Steady-state training throughput (images/second) of the recipe CNNs.

Run:

    .venv-bench/bin/python benchmarks/train_throughput.py           # lenet, resnet18
    .venv-bench/bin/python benchmarks/train_throughput.py --quick   # ~2-3 minutes
    .venv/bin/python benchmarks/train_throughput.py --models lenet  # no torch column

What is timed: `model.fit` on synthetic images of the model's natural size
(LeNet 28x28x1, everything else 32x32x3 CIFAR-style, batch-norm models in
training mode), from an in-memory `tf.data` pipeline (cached, repeated,
prefetched, like the recipes' pipelines), Adam, sparse categorical
cross-entropy. Each side first trains until its step function is traced (and
XLA-compiled); then the sides are timed alternately, one `fit` epoch of
`--steps` steps each, `--repeats` times, and the median images/second is
reported, so load from other processes hits every side alike. The clock
runs from the end of the first step (execution) to the end of the last, so
`fit`'s per-call set-up is left out.

Sides, for each model:

- `kerasdl`: `kerasdl.models.get_model(name, ...)` (kerasdl normalization,
  dropout, L2 layers), with `jit_compile` off and on.
- `keras`: the same builder with `layer_library="keras"` (Keras' built-in
  layers, the identical graph), `jit_compile` off and on.
- `torch`: the same architecture as a plain PyTorch CPU eager training loop
  (`model.train()`, Adam, `cross_entropy`), when torch imports.

Columns: images/s per side; `dl/keras` = kerasdl over built-in at the same
`jit_compile` (goal >= 0.95); `best/torch` = the better kerasdl setting over
PyTorch (goals: >= 1.0 LeNet, >= 0.8 ResNet-18).

Options: `--steps-per-execution N` (Keras runs N steps per `tf.function`
call), `--mixed-precision` (`mixed_float16` policy), `--models a,b`,
`--threads N` (both frameworks' intra-op threads), `--adaptive-malloc` (leave
glibc malloc's thresholds adaptive; by default they are pinned, see
allocator.py, because PyTorch's eager steps otherwise vary by process).
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

from kerasdl.models import MODELS, get_model

try:  # optional PyTorch reference
    import torch
    import torch.nn.functional as F
    from torch import nn
except Exception:  # noqa: BLE001 - any import failure means "no torch column"
    torch = None

NUM_CLASSES = 10
# name -> (input shape, batch size, normalization); the recipes' settings.
NATURAL = {
    "lenet": ((28, 28, 1), 128, None),
    "resnet18": ((32, 32, 3), 64, "batch"),
    "alexnet": ((32, 32, 3), 64, None),
    "vgg11": ((32, 32, 3), 64, None),
    "nin": ((32, 32, 3), 64, None),
    "googlenet": ((32, 32, 3), 32, None),
}
DEFAULT_MODELS = ("lenet", "resnet18")


# PyTorch references: the same graphs as kerasdl's builders -------------------------


def torch_model(name):
    if name == "lenet":  # sigmoid LeNet, "same" first conv, average pooling
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.Sigmoid(),
            nn.AvgPool2d(2, 2),
            nn.Conv2d(6, 16, 5),
            nn.Sigmoid(),
            nn.AvgPool2d(2, 2),
            nn.Flatten(),
            nn.Linear(400, 120),
            nn.Sigmoid(),
            nn.Linear(120, 84),
            nn.Sigmoid(),
            nn.Linear(84, NUM_CLASSES),
        )
    if name == "resnet18":  # CIFAR stem (3x3 conv, no max pooling), basic blocks

        class Block(nn.Module):
            def __init__(self, cin, cout, stride):
                super().__init__()
                self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
                self.bn1 = nn.BatchNorm2d(cout)
                self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
                self.bn2 = nn.BatchNorm2d(cout)
                self.shortcut = nn.Identity()
                if stride != 1 or cin != cout:
                    self.shortcut = nn.Sequential(
                        nn.Conv2d(cin, cout, 1, stride, bias=False),
                        nn.BatchNorm2d(cout),
                    )

            def forward(self, x):
                y = F.relu(self.bn1(self.conv1(x)))
                return F.relu(self.shortcut(x) + self.bn2(self.conv2(y)))

        layers = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
        cin = 64
        for stage, cout in enumerate((64, 128, 256, 512)):
            for index in range(2):
                layers.append(Block(cin, cout, 2 if stage and not index else 1))
                cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, NUM_CLASSES)]
        return nn.Sequential(*layers)
    return None


class TorchSide:
    def __init__(self, name, images, labels, batch_size):
        self.model = torch_model(name)
        self.optimizer = torch.optim.Adam(self.model.parameters(), 1e-3)
        # NCHW float32, like the Keras side's rescaled images.
        x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
        self.batches = list(
            zip(
                torch.split(x, batch_size),
                torch.split(torch.from_numpy(labels), batch_size),
            )
        )
        self.model.train()

    def epoch(self, steps):
        """Runs `steps` steps; returns the seconds of all but the first."""
        for step in range(steps):
            if step == 1:
                start = time.perf_counter()
            x, y = self.batches[step % len(self.batches)]
            self.optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - start


class StepTimes(keras.callbacks.Callback):
    """Records when each `tf.function` execution (steps_per_execution steps) ends."""

    def on_epoch_begin(self, epoch, logs=None):
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


class KerasSide:
    def __init__(self, name, library, jit_compile, dataset, args, shape, normalization):
        self.model = get_model(
            name,
            shape,
            NUM_CLASSES,
            rescale=1 / 255,
            input_dtype="uint8",
            normalization=normalization,
            layer_library=library,
        )
        self.model.compile(
            keras.optimizers.Adam(1e-3),
            "sparse_categorical_crossentropy",
            jit_compile=jit_compile,
            steps_per_execution=args.steps_per_execution,
        )
        self.dataset = dataset
        self.steps_per_execution = args.steps_per_execution
        self.timer = StepTimes()

    def epoch(self, steps):
        """Runs `steps` steps; returns the seconds of all but the first execution.

        Timing inside `fit` leaves out its per-call set-up (iterator, callbacks),
        which is paid once per epoch, not per step.
        """
        self.model.fit(
            self.dataset,
            epochs=1,
            steps_per_epoch=steps,
            verbose=0,
            callbacks=[self.timer],
        )
        return self.timer.ends[-1] - self.timer.ends[0]


def benchmark(name, args):
    shape, batch_size, normalization = NATURAL[name]
    if args.batch_size:
        batch_size = args.batch_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch_size * 4, *shape)).astype(np.uint8)
    labels = rng.integers(0, NUM_CLASSES, batch_size * 4).astype(np.int64)
    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .cache()
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    sides = {}
    for library in ("kerasdl", "keras"):
        for jit in (False, True):
            sides[f"{library} jit={'on' if jit else 'off'}"] = KerasSide(
                name, library, jit, dataset, args, shape, normalization
            )
    if torch is not None and torch_model(name) is not None:
        sides["torch"] = TorchSide(name, images, labels, batch_size)

    spe = args.steps_per_execution
    steps = spe * max(2, args.steps // spe)
    for side in sides.values():  # trace / compile, then one warm epoch
        side.epoch(2 * spe)
        side.epoch(steps)
    times = {key: [] for key in sides}
    for _ in range(args.repeats):
        for key, side in sides.items():
            times[key].append(side.epoch(steps))
    # Keras sides time all but the first execution (spe steps), torch all but one step.
    timed = {key: (steps - (1 if key == "torch" else spe)) for key in sides}
    return {
        key: timed[key] * batch_size / statistics.median(t) for key, t in times.items()
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help=f"comma-separated, from {sorted(NATURAL)}",
    )
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="intra-op threads for TensorFlow and PyTorch alike (default: all CPUs); "
        "on a CPU shared with other jobs, 1 avoids PyTorch's OpenMP "
        "oversubscription collapse",
    )
    parser.add_argument(
        "--adaptive-malloc",
        action="store_true",
        help="leave glibc malloc's adaptive thresholds as they are (see allocator.py)",
    )
    args = parser.parse_args(argv)
    args.steps = args.steps or (4 if args.quick else 10)
    args.repeats = args.repeats or (3 if args.quick else 5)
    names = [n for n in args.models.split(",") if n]
    for n in names:
        if n not in NATURAL or n not in MODELS:
            parser.error(f"unknown model {n!r}; choose from {sorted(NATURAL)}")
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:  # only possible before TensorFlow's runtime starts
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    except RuntimeError:
        pass
    if torch is not None:
        torch.set_num_threads(args.threads)
    pinned = False if args.adaptive_malloc else pin_malloc_thresholds()

    print(
        f"TF {tf.__version__}, Keras {keras.__version__}, "
        f"torch {torch.__version__ if torch else 'not installed'}, "
        f"{os.cpu_count()} CPUs, threads={args.threads}, steps_per_execution={args.steps_per_execution}, "
        f"mixed_precision={args.mixed_precision}, steps={args.steps}, "
        f"repeats={args.repeats}, "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}, "
        f"malloc thresholds pinned: {pinned}"
    )
    header = (
        f"{'model':<10} {'kerasdl off':>12} {'kerasdl on':>11} {'keras off':>10} "
        f"{'keras on':>9} {'torch':>8} {'dl/keras off':>13} {'dl/keras on':>12} "
        f"{'best/torch':>11}"
    )
    # Rows print as each model finishes, so a cut-short run still reports.
    print("\nimages/second (median); higher is better")
    print(header, flush=True)
    for name in names:
        r = benchmark(name, args)
        best = max(r["kerasdl jit=off"], r["kerasdl jit=on"])
        torch_rate = r.get("torch")
        print(
            f"{name:<10} {r['kerasdl jit=off']:>12.0f} {r['kerasdl jit=on']:>11.0f} "
            f"{r['keras jit=off']:>10.0f} {r['keras jit=on']:>9.0f} "
            f"{(f'{torch_rate:.0f}' if torch_rate else '-'):>8} "
            f"{r['kerasdl jit=off'] / r['keras jit=off']:>13.2f} "
            f"{r['kerasdl jit=on'] / r['keras jit=on']:>12.2f} "
            f"{(f'{best / torch_rate:.2f}' if torch_rate else '-'):>11}",
            flush=True,
        )


if __name__ == "__main__":
    main()
