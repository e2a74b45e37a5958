"""Corpus BLEU (sacrebleu) of translations that each have one or more references."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class BleuScore:
    """A corpus BLEU score (0-100) and sacrebleu's signature of how it was computed."""

    score: float
    signature: str


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> BleuScore:
    """Scores `hypotheses` against their references with sacrebleu's default BLEU.

    Sentences may have different numbers of references (Tatoeba lists every
    accepted translation of a sentence); sacrebleu gets them as reference streams,
    a sentence with fewer references leaving a gap in the later streams.

    Args:
        hypotheses: one translation per test sentence.
        references: for each test sentence, its reference translations (at least
            one).

    Returns:
        A `BleuScore` with the score and sacrebleu's signature string (tokenizer,
        smoothing, number of references, version), to report next to it.

    Example:

    ```python
    bleu = corpus_bleu(
        ["the cat sat on the mat", "a dog"],
        [["the cat sat on the mat", "a cat was on the mat"], ["a dog"]],
    )
    print(f"BLEU {bleu.score:.1f} ({bleu.signature})")
    ```
    """
    import sacrebleu

    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError(
            "Expected a list of hypotheses and a list of reference lists. Received: "
            f"a string for {'hypotheses' if isinstance(hypotheses, str) else 'references'}."
        )
    if len(hypotheses) == 0:
        raise ValueError("Expected at least one hypothesis. Received: hypotheses=[].")
    if len(hypotheses) != len(references):
        raise ValueError(
            "Expected one list of references per hypothesis. Received: "
            f"{len(hypotheses)} hypotheses and {len(references)} reference lists."
        )
    if any(len(refs) == 0 for refs in references):
        raise ValueError(
            "Expected at least one reference per sentence. Received: a sentence "
            "with references=[]."
        )
    for index, refs in enumerate(references):
        if isinstance(refs, str):
            raise TypeError(
                "Expected a list of reference strings per sentence. Received: the "
                f"string {refs[:60]!r} as the references of sentence {index} "
                f"(wrap it: [{refs[:20]!r}...])."
            )
    most = max((len(refs) for refs in references), default=1)
    streams = [
        [refs[i] if i < len(refs) else None for refs in references] for i in range(most)
    ]
    metric = sacrebleu.BLEU()
    score = metric.corpus_score(list(hypotheses), streams).score
    return BleuScore(float(score), str(metric.get_signature()))
