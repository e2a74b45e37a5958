"""kerasdl: normalization, regularization and attention layers for Keras 3,
and a zoo of classic CNN / RNN / Transformer recipes exported as SavedModels.

`import kerasdl` registers every layer, regularizer and callback with
`keras.saving`, so `.keras` files that use them reload without
`custom_objects`. The heavier subpackages (`models`, `data`, `serving`, ...)
load on first use.

Imported before TensorFlow, kerasdl turns on TensorFlow's oneDNN CPU kernels
(`TF_ENABLE_ONEDNN_OPTS=1`), which TensorFlow itself enables only on CPUs with
AVX512-VNNI or newer: on a plain AVX2 CPU they train LeNet and ResNet-18 about 2x
faster in graph mode (see README's benchmarks), with float round-off
that differs slightly from TensorFlow's own kernels. A value you set yourself
(`TF_ENABLE_ONEDNN_OPTS=0`) wins; imported after TensorFlow, kerasdl changes nothing.
"""

import importlib
import os
import sys

# TensorFlow's C++ start-up logging would bury the one-line errors of the CLI.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Read once, when TensorFlow is first imported (see the module docstring).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"


def _import_tensorflow_quietly() -> None:
    """Imports Keras (and TensorFlow) with file descriptor 2 pointed at /dev/null.

    Only when kerasdl runs as a command (`kerasdl ...`, `python -m kerasdl...`):
    TensorFlow's C++ start-up lines ("All log messages before absl::InitializeLog()
    is called are written to STDERR", "oneDNN custom operations are on", ...) are
    written before any logging setting applies (`TF_CPP_MIN_LOG_LEVEL` does not
    silence them) and would bury the command's one-line errors. Set
    `KERASDL_TF_STARTUP_LOGS=1` to see them. Nothing is hidden after the import; an
    import that fails raises as usual once stderr is restored.
    """
    command = sys.argv[0] if sys.argv else ""
    if (
        os.environ.get("KERASDL_TF_STARTUP_LOGS")
        or "keras" in sys.modules
        or not (command == "-m" or os.path.basename(command) == "kerasdl")
    ):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_import_tensorflow_quietly()

from kerasdl import (
    callbacks,  # noqa: F401
    layers,  # noqa: F401
    regularizers,  # noqa: F401
)

_SUBPACKAGES = (
    "callbacks",
    "data",
    "decoding",
    "export",
    "layers",
    "models",
    "regularizers",
    "serving",
    "testing",
    "training",
)


def __getattr__(name):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"kerasdl.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'kerasdl' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBPACKAGES))
