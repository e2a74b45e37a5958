"""Layers that merge several inputs (`MajorityVote`, used by `kerasdl.models.ensemble`)."""

from kerasdl.layers.merging.majority_vote import MajorityVote  # noqa: F401
