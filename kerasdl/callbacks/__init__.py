"""Training callbacks: `kerasdl.callbacks.EarlyStopping`."""

from kerasdl.callbacks.early_stopping import EarlyStopping

__all__ = ["EarlyStopping"]
