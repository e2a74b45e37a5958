"""Convolution layers: weight-standardized convolution."""

from kerasdl.layers.convolution.std_conv2d import StdConv2D

__all__ = ["StdConv2D"]
