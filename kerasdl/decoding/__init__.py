"""Sequence decoding over a `next_token_fn` callback: greedy and beam search, and sampling (temperature, top-k, top-p)."""

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
