"""English -> French with an encoder-decoder Transformer.

    python -m kerasdl train transformer_translate   # = python -m kerasdl.recipes.transformer_translate

Tatoeba fra-eng pairs with at most 10 English words, test sentences held out by
English sentence. 2 kerasdl `TransformerEncoder` + 2 `TransformerDecoder` blocks
(d=128, 4 heads, 512-wide feed-forward), teacher forcing with `model.fit`, linear
warm-up then cosine decay;
greedy and beam decoding through `kerasdl.decoding`; BLEU (sacrebleu) on the test
split, sample translations, `<workdir>/attention.png` (last block's cross-attention).
The export maps raw English strings to French strings: `serving_default` (beam
search), `beam_decode`, `greedy_decode`.
"""

from kerasdl.tasks import translation as TASK
from kerasdl.tasks.command_line import run_recipe
from kerasdl.tasks.translation import TranslationConfig

CONFIG = TranslationConfig(
    model="transformer",
    dataset="fra_eng",
    epochs=9,  # ~3 min each on 2 CPU cores
    batch_size=64,
    learning_rate=1e-3,
    warmup_steps=500,
    max_tokens=8000,
    hidden_dim=128,
    num_layers=2,
    num_heads=4,
    intermediate_dim=512,
    dropout=0.1,
    beam_size=4,
    length_penalty_alpha=0.6,
)


def main(argv=None, prog=None) -> int:
    """Runs this recipe with command-line flags; returns the exit status."""
    return run_recipe(TASK, CONFIG, argv, recipe="transformer_translate", prog=prog)


if __name__ == "__main__":
    raise SystemExit(main())
