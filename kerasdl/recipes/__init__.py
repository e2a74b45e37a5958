"""The recipe zoo: one module per recipe, each a task config and a thin `main`.

A recipe is a configuration of a task pipeline (`kerasdl.tasks`): `lenet.py` is
`image_classification.ImageClassificationConfig(model="lenet", epochs=15, ...)`.
`RECIPES` maps a recipe name to its module, the dataset it trains on by default and
the test score its default config is built to reach there; `kerasdl list` prints it,
`kerasdl train <name>` runs it (as does `python -m kerasdl.recipes.<name>`), and the
tests parametrize over it. A new recipe is a module here plus one entry below.
"""

from __future__ import annotations

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A registry entry: `module` defines `CONFIG`, `TASK` and `main(argv, prog)`."""

    name: str
    module: str
    dataset: str
    target: float | None  # Test score the default config is built to reach.
    # (For language models: validation perplexity, at most this.)
    description: str
    task: str = "image classification"
    metric: str = (
        "accuracy"  # What `target` measures: "accuracy", "bleu", "perplexity".
    )

    def load(self):
        return importlib.import_module(self.module)


# Validation perplexity of the interpolated Kneser-Ney 7-gram on The Time Machine
# (kerasdl.models.ngram; its best order): what every char_* model is built to beat.
BASELINE_PERPLEXITY = 4.31


def _image(name, dataset, target, description):
    return Recipe(name, f"kerasdl.recipes.{name}", dataset, target, description)


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in [
        _image("lenet", "digits", 0.95, "LeNet-5 (LeCun et al., 1998)"),
        _image("alexnet", "digits", 0.95, "AlexNet (Krizhevsky et al., 2012)"),
        _image("vgg11", "digits", 0.95, "VGG-11 (Simonyan & Zisserman, 2014)"),
        _image("vgg16", "digits", 0.95, "VGG-16 (Simonyan & Zisserman, 2014)"),
        _image("nin", "digits", 0.95, "Network in Network (Lin et al., 2013)"),
        _image(
            "googlenet",
            "digits",
            0.95,
            "GoogLeNet / Inception v1 (Szegedy et al., 2014)",
        ),
        _image("resnet18", "digits", 0.95, "ResNet-18 (He et al., 2015)"),
        _image("resnet34", "digits", 0.95, "ResNet-34 (He et al., 2015)"),
        _image(
            "resnet50", "digits", 0.95, "ResNet-50, bottleneck blocks (He et al., 2015)"
        ),
        Recipe(
            "rnn_intent",
            "kerasdl.recipes.rnn_intent",
            "banking77",
            0.85,
            "Bidirectional GRU intent classifier, raw strings in",
            "text classification",
        ),
        Recipe(
            "transformer_intent",
            "kerasdl.recipes.transformer_intent",
            "banking77",
            0.88,
            "Transformer encoder intent classifier, raw strings in",
            "text classification",
        ),
        Recipe(
            "seq2seq_attention",
            "kerasdl.recipes.seq2seq_attention",
            "fra_eng",
            18.0,
            "GRU seq2seq + Bahdanau attention, en->fr",
            "translation",
            "bleu",
        ),
        Recipe(
            "transformer_translate",
            "kerasdl.recipes.transformer_translate",
            "fra_eng",
            25.0,
            "Encoder-decoder Transformer, en->fr",
            "translation",
            "bleu",
        ),
        Recipe(
            "char_rnn",
            "kerasdl.recipes.char_rnn",
            "timemachine",
            BASELINE_PERPLEXITY,
            "Character-level SimpleRNN language model, The Time Machine",
            "language modeling",
            "perplexity",
        ),
        Recipe(
            "char_gru",
            "kerasdl.recipes.char_gru",
            "timemachine",
            BASELINE_PERPLEXITY,
            "Character-level GRU language model, The Time Machine",
            "language modeling",
            "perplexity",
        ),
        Recipe(
            "char_lstm",
            "kerasdl.recipes.char_lstm",
            "timemachine",
            BASELINE_PERPLEXITY,
            "Character-level LSTM language model, The Time Machine",
            "language modeling",
            "perplexity",
        ),
        Recipe(
            "char_lstm_deep",
            "kerasdl.recipes.char_lstm_deep",
            "timemachine",
            BASELINE_PERPLEXITY,
            "Character-level 2-layer LSTM language model, The Time Machine",
            "language modeling",
            "perplexity",
        ),
        Recipe(
            "char_transformer",
            "kerasdl.recipes.char_transformer",
            "timemachine",
            BASELINE_PERPLEXITY,
            "Character-level decoder-only Transformer language model, The Time Machine",
            "language modeling",
            "perplexity",
        ),
        Recipe(
            "char_distilled",
            "kerasdl.recipes.char_distilled",
            "timemachine",
            BASELINE_PERPLEXITY,
            "Character-level LSTM distilled from char_ensemble, The Time Machine",
            "language modeling",
            "perplexity",
        ),
        Recipe(
            "char_lstm_pretrained",
            "kerasdl.recipes.char_lstm_pretrained",
            "timemachine",
            BASELINE_PERPLEXITY,
            "Character-level LSTM pretrained on Tatoeba's English, The Time Machine",
            "language modeling",
            "perplexity",
        ),
        Recipe(
            "char_lstm_deep_pretrained",
            "kerasdl.recipes.char_lstm_deep_pretrained",
            "timemachine",
            BASELINE_PERPLEXITY,
            "Character-level 2-layer LSTM pretrained on Tatoeba's English, The Time Machine",
            "language modeling",
            "perplexity",
        ),
        Recipe(
            "char_ensemble",
            "kerasdl.recipes.char_ensemble",
            "timemachine",
            BASELINE_PERPLEXITY,
            "Character-level ensemble: 2-layer LSTM, LSTM and Transformer averaged",
            "language modeling",
            "perplexity",
        ),
        Recipe(
            "char_ensemble_pretrained",
            "kerasdl.recipes.char_ensemble_pretrained",
            "timemachine",
            BASELINE_PERPLEXITY,
            "Character-level ensemble: char_ensemble with its LSTMs pretrained",
            "language modeling",
            "perplexity",
        ),
    ]
}


def get_recipe(name: str) -> Recipe:
    """Returns the registry entry `name`; ValueError listing the known names if absent."""
    if name not in RECIPES:
        raise ValueError(
            f"Unknown recipe {name!r}. Known recipes: {', '.join(sorted(RECIPES))}."
        )
    return RECIPES[name]


def default_dataset(name: str) -> str | None:
    """The dataset recipe `name` trains on by default (`None` for an unknown name)."""
    recipe = RECIPES.get(name)
    return recipe.dataset if recipe else None
