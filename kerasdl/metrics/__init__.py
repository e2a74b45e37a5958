"""Evaluation metrics computed outside the graph: corpus BLEU (sacrebleu)."""

from kerasdl.metrics.bleu import (
    BleuScore,  # noqa: F401
    corpus_bleu,  # noqa: F401
)
