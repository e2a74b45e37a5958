"""Character-level language model: `char_lstm_deep` pretrained on other English first.

    kerasdl train char_lstm_deep_pretrained

`char_lstm_deep`'s model (two LSTM layers of 384 units, dropout 0.4, 32-character
rows, Adam with a cosine-decayed rate, weights averaged, early stopping on the
book's validation loss), preceded by up to 6 epochs on the English sentences of
the embedded Tatoeba translation pairs (`kerasdl.tasks.pretraining`, as
`char_lstm_pretrained`), then 24 epochs on the book instead of 48: it starts
from what it learned. Reports perplexity and bits per character beside the
interpolated Kneser-Ney 7-gram and exports one model (`serving_default`,
`generate`, `score`).
"""

import dataclasses

from kerasdl.recipes import char_lstm_deep
from kerasdl.tasks import language_modeling as TASK
from kerasdl.tasks.command_line import run_recipe

# 6 epochs of Tatoeba's English, then 24 on the book: 1.971 bits per character,
# the validation loss still falling at the last epoch (a probe: 1.963;
# char_lstm_deep alone, 48 epochs: 2.027) (docs/language_models.md).
CONFIG = dataclasses.replace(char_lstm_deep.CONFIG, pretrain_epochs=6, epochs=24)


def main(argv=None, prog=None) -> int:
    """Runs this recipe with command-line flags; returns the exit status."""
    return run_recipe(TASK, CONFIG, argv, recipe="char_lstm_deep_pretrained", prog=prog)


if __name__ == "__main__":
    raise SystemExit(main())
