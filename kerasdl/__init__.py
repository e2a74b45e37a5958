"""kerasdl: normalization, regularization and attention layers for Keras 3,
and a zoo of classic CNN / RNN / Transformer recipes exported as SavedModels."""

__version__ = "0.1.0"

from kerasdl import callbacks  # noqa: E402,F401
from kerasdl import layers  # noqa: E402,F401
from kerasdl import regularizers  # noqa: E402,F401
