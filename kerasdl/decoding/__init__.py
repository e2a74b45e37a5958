"""Sequence decoding: greedy and beam search over a `next_token_fn` callback."""

from kerasdl.decoding.generate import generate_tokens
from kerasdl.decoding.sampling import sample, sample_next
from kerasdl.decoding.search import (
    beam_search,
    greedy_search,
    length_penalty,
    tile_for_beams,
)

__all__ = [
    "beam_search",
    "generate_tokens",
    "greedy_search",
    "length_penalty",
    "sample",
    "sample_next",
    "tile_for_beams",
]
