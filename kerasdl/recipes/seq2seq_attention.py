"""English -> French with a GRU encoder-decoder and additive (Bahdanau) attention.

    python -m kerasdl train seq2seq_attention   # = python -m kerasdl.recipes.seq2seq_attention

Tatoeba fra-eng pairs with at most 10 English words, test sentences held out by
English sentence. Bidirectional GRU encoder, GRU decoder with
`kerasdl.layers.AdditiveAttention`, teacher forcing with `model.fit`; greedy and beam
decoding through `kerasdl.decoding`; BLEU (sacrebleu) on the test split, sample
translations, `<workdir>/attention.png`. The export maps raw English strings to
French strings: `serving_default` (beam search), `beam_decode`, `greedy_decode`.
"""

from kerasdl.tasks import translation as TASK
from kerasdl.tasks.command_line import run_recipe
from kerasdl.tasks.translation import TranslationConfig

CONFIG = TranslationConfig(
    model="seq2seq",
    dataset="fra_eng",
    epochs=10,  # ~2.5 min each on 2 CPU cores
    max_tokens=8000,
    batch_size=64,
    learning_rate=2e-3,
    embedding_dim=128,
    units=256,
    dropout=0.2,
    beam_size=4,
    length_penalty_alpha=0.6,
)


def main(argv=None, prog=None) -> int:
    """Runs this recipe with command-line flags; returns the exit status."""
    return run_recipe(TASK, CONFIG, argv, recipe="seq2seq_attention", prog=prog)


if __name__ == "__main__":
    raise SystemExit(main())
