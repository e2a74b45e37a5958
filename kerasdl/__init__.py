"""kerasdl: normalization, regularization and attention layers for Keras 3,
and a zoo of classic CNN / RNN / Transformer recipes exported as SavedModels.

`import kerasdl` registers every layer, regularizer and callback with
`keras.saving`, so `.keras` files that use them reload without
`custom_objects`. The heavier subpackages (`models`, `data`, `serving`, ...)
load on first use.
"""

import importlib
import os

# TensorFlow's C++ start-up logging would bury the one-line errors of the CLI.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

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
