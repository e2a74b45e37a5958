"""Intent classification with a GRU/LSTM over word embeddings (banking77, 77 intents).

    python -m kerasdl train rnn_intent                       # = python -m kerasdl.recipes.rnn_intent
    python -m kerasdl train rnn_intent --cell lstm --num-layers 2 --no-bidirectional
    python -m kerasdl train rnn_intent --dataset sms_spam    # spam vs ham, reports F1

Embedding (padding masked) -> bidirectional GRU -> softmax, trained from scratch.
Tokenization (`TextVectorization`) is inside the exported model: its
`serving_default` takes raw strings `text` and returns `probabilities`, `class_id`
and the intent name `label`.
"""

from kerasdl.tasks import text_classification as TASK
from kerasdl.tasks.command_line import run_recipe
from kerasdl.tasks.text_classification import TextClassificationConfig

CONFIG = TextClassificationConfig(
    model="rnn",
    dataset="banking77",
    epochs=30,
    learning_rate=3e-3,
    embedding_dim=128,
    units=128,
    num_layers=1,
    bidirectional=True,
    cell="gru",
    dropout=0.3,
    sequence_length=48,
)


def main(argv=None, prog=None) -> int:
    """Runs this recipe with command-line flags; returns the exit status."""
    return run_recipe(TASK, CONFIG, argv, recipe="rnn_intent", prog=prog)


if __name__ == "__main__":
    raise SystemExit(main())
