"""Normalization layers: batch, layer, instance, group and RMS normalization,
frozen batch normalization, and model-level batch norm conversions.

The layers share one moments-over-axes mechanism (`base.moments` /
`base.normalize`) and a `convention="keras"|"torch"` switch;
`freeze_batch_norm` / `fold_batch_norm` convert whole models for fine-tuning
and export.
"""

from kerasdl.layers.normalization.batch_norm_conversion import (
    fold_batch_norm,
    freeze_batch_norm,
)
from kerasdl.layers.normalization.batch_normalization import BatchNormalization
from kerasdl.layers.normalization.frozen_batch_normalization import (
    FrozenBatchNormalization,
)
from kerasdl.layers.normalization.group_normalization import GroupNormalization
from kerasdl.layers.normalization.instance_normalization import (
    InstanceNormalization,
)
from kerasdl.layers.normalization.layer_normalization import LayerNormalization
from kerasdl.layers.normalization.rms_normalization import RMSNormalization

__all__ = [
    "BatchNormalization",
    "FrozenBatchNormalization",
    "GroupNormalization",
    "InstanceNormalization",
    "LayerNormalization",
    "RMSNormalization",
    "fold_batch_norm",
    "freeze_batch_norm",
]
