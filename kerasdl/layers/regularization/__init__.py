"""Regularization layers: dropout of units, channels and whole samples."""

from kerasdl.layers.regularization.drop_path import DropPath, drop_path
from kerasdl.layers.regularization.dropout import Dropout
from kerasdl.layers.regularization.spatial_dropout import (
    SpatialDropout1D,
    SpatialDropout2D,
    SpatialDropout3D,
)

__all__ = [
    "DropPath",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "drop_path",
]
