"""Training callbacks: `kerasdl.callbacks.EarlyStopping` and friends."""

from kerasdl.callbacks.averaged_weights import AveragedWeightsForValidation
from kerasdl.callbacks.early_stopping import EarlyStopping
from kerasdl.callbacks.gradient_statistics import GradientStatistics  # noqa: F401
from kerasdl.callbacks.resumable_checkpoint import ResumableCheckpoint
from kerasdl.callbacks.terminate_on_non_finite_loss import (
    NonFiniteLossError,
    TerminateOnNonFiniteLoss,
)

__all__ = [
    "AveragedWeightsForValidation",
    "EarlyStopping",
    "NonFiniteLossError",
    "ResumableCheckpoint",
    "TerminateOnNonFiniteLoss",
]
