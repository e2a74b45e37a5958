"""Character-level language model: an ensemble of three recipes of the family.

    kerasdl train char_ensemble   # = python -m kerasdl.recipes.char_ensemble

Trains `char_lstm_deep`, `char_lstm` and `char_transformer` with their own
defaults (each in `<workdir>/<recipe>`, resumable; a published run of the same
settings there is reused), averages their next-token probabilities
(`kerasdl.models.LanguageModelEnsemble`, equal weights), reports training and
validation perplexity and bits per character over the whole streams beside the
interpolated Kneser-Ney 7-gram, and exports the ensemble as one SavedModel with
`serving_default` (prompt -> continuation), `generate` and `score`. Its context
is the Transformer's: 64 characters, prompt and continuation together.
"""

from kerasdl.tasks import language_model_ensemble as TASK
from kerasdl.tasks.command_line import run_recipe
from kerasdl.tasks.language_model_ensemble import LanguageModelEnsembleConfig

# The three best models of the family alone (2.027, 2.035 and 2.032 bits per
# character): 1.935 together. The Transformer errs where the LSTMs do not:
# averaged with either LSTM it gains 0.08 bits, the two LSTMs together only 0.05
# (docs/language_models.md).
CONFIG = LanguageModelEnsembleConfig(
    members="char_lstm_deep,char_lstm,char_transformer",
)


def main(argv=None, prog=None) -> int:
    """Runs this recipe with command-line flags; returns the exit status."""
    return run_recipe(TASK, CONFIG, argv, recipe="char_ensemble", prog=prog)


if __name__ == "__main__":
    raise SystemExit(main())
