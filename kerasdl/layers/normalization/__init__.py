"""Normalization layers: batch, layer, instance and group normalization.

All four share one moments-over-axes mechanism (`base.moments` /
`base.normalize`) and a `convention="keras"|"torch"` switch.
"""

from kerasdl.layers.normalization.batch_normalization import BatchNormalization
from kerasdl.layers.normalization.group_normalization import GroupNormalization
from kerasdl.layers.normalization.instance_normalization import (
    InstanceNormalization,
)
from kerasdl.layers.normalization.layer_normalization import LayerNormalization

__all__ = [
    "BatchNormalization",
    "GroupNormalization",
    "InstanceNormalization",
    "LayerNormalization",
]
