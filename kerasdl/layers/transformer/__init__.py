"""Transformer blocks and position encodings."""

from kerasdl.layers.transformer.position_embedding import PositionEmbedding
from kerasdl.layers.transformer.sine_position_encoding import SinePositionEncoding
from kerasdl.layers.transformer.transformer_decoder import TransformerDecoder
from kerasdl.layers.transformer.transformer_encoder import TransformerEncoder

__all__ = [
    "PositionEmbedding",
    "SinePositionEncoding",
    "TransformerDecoder",
    "TransformerEncoder",
]
