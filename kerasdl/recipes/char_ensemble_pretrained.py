"""Character-level language model: `char_ensemble` with its LSTMs pretrained.

    kerasdl train char_ensemble_pretrained   # = python -m kerasdl.recipes.char_ensemble_pretrained

`char_ensemble` (members trained or reused in `<workdir>/<recipe>`, their
next-token probabilities averaged with equal weights, exported as one
SavedModel) with `char_lstm_deep_pretrained` and `char_lstm_pretrained` in the
places of `char_lstm_deep` and `char_lstm`: the two LSTMs pretrained on the
English sentences of the embedded Tatoeba pairs first
(`kerasdl.tasks.pretraining`), the Transformer trained on the book alone. Reports training and validation perplexity and
bits per character over the whole streams beside the interpolated Kneser-Ney
7-gram; the export answers `serving_default`, `generate` and `score`.
"""

from kerasdl.tasks import language_model_ensemble as TASK
from kerasdl.tasks.command_line import run_recipe
from kerasdl.tasks.language_model_ensemble import LanguageModelEnsembleConfig

# The pretrained LSTMs (1.971 and 1.945 bits per character) with the Transformer
# (2.032): 1.887, 10.5% under the Kneser-Ney 7-gram (char_ensemble: 1.935; with
# only the one-layer LSTM pretrained: 1.896). A pretrained Transformer underfits
# in 40 epochs (2.079) and made every probe average worse (docs/language_models.md).
CONFIG = LanguageModelEnsembleConfig(
    members="char_lstm_deep_pretrained,char_lstm_pretrained,char_transformer",
)


def main(argv=None, prog=None) -> int:
    """Runs this recipe with command-line flags; returns the exit status."""
    return run_recipe(TASK, CONFIG, argv, recipe="char_ensemble_pretrained", prog=prog)


if __name__ == "__main__":
    raise SystemExit(main())
