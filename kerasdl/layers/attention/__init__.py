"""Attention layers: scaled dot-product, multi-head and additive (Bahdanau)."""

from kerasdl.layers.attention.additive_attention import AdditiveAttention
from kerasdl.layers.attention.multi_head_attention import MultiHeadAttention
from kerasdl.layers.attention.scaled_dot_product_attention import (
    ScaledDotProductAttention,
    scaled_dot_product_attention,
)

__all__ = [
    "AdditiveAttention",
    "MultiHeadAttention",
    "ScaledDotProductAttention",
    "scaled_dot_product_attention",
]
