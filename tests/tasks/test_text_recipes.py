"""rnn_intent / transformer_intent: one epoch on a tiny slice, export, raw strings served."""

import importlib

import numpy as np
import pytest
import tensorflow as tf

from kerasdl.export import list_versions, load_model_card

TINY = [
    "--epochs",
    "1",
    "--limit",
    "40",
    "--batch-size",
    "16",
    "--max-tokens",
    "200",
    "--sequence-length",
    "16",
    "--verbose",
    "0",
]
SIZES = {
    "rnn_intent": ["--embedding-dim", "8", "--units", "8"],
    "transformer_intent": [
        "--hidden-dim",
        "16",
        "--intermediate-dim",
        "32",
        "--num-layers",
        "1",
        "--num-heads",
        "2",
    ],
}


@pytest.mark.parametrize("recipe", ["rnn_intent", "transformer_intent"])
def test_recipe_trains_and_exports_a_strings_in_model(tmp_path, recipe):
    module = importlib.import_module(f"kerasdl.recipes.{recipe}")
    output = tmp_path / "saved_models"
    argv = [
        *TINY,
        *SIZES[recipe],
        "--output",
        str(output),
        "--workdir",
        str(tmp_path / "run"),
    ]
    assert module.main(argv) == 0
    export = output / recipe / "1"
    assert list_versions(output / recipe) == [1]
    card = load_model_card(export)
    assert card["recipe"] == recipe and card["dataset"]["num_classes"] == 77
    assert 0.0 <= card["metrics"]["test_accuracy"] <= 1.0

    serving = tf.saved_model.load(str(export)).signatures["serving_default"]
    assert list(serving.structured_input_signature[1]) == ["text"]
    outputs = serving(text=tf.constant(["I am still waiting on my card?", ""]))
    assert outputs["probabilities"].shape == (2, 77)
    np.testing.assert_allclose(outputs["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5)
    assert outputs["label"].dtype == tf.string
    names = card["dataset"]["class_names"]
    assert [label.decode() for label in outputs["label"].numpy()] == [
        names[i] for i in outputs["class_id"].numpy()
    ]


def test_sms_spam_run_reports_binary_f1(tmp_path):
    module = importlib.import_module("kerasdl.recipes.rnn_intent")
    output = tmp_path / "saved_models"
    argv = [
        *TINY,
        *SIZES["rnn_intent"],
        "--dataset",
        "sms_spam",
        "--output",
        str(output),
        "--workdir",
        str(tmp_path / "run"),
    ]
    assert module.main(argv) == 0
    card = load_model_card(output / "rnn_intent-sms_spam" / "1")
    assert "test_f1_binary" in card["metrics"]
    assert card["dataset"]["class_names"] == ["ham", "spam"]


def test_unknown_dataset_is_a_usage_error(tmp_path):
    module = importlib.import_module("kerasdl.recipes.rnn_intent")
    assert module.main(["--dataset", "reuters", "--output", str(tmp_path)]) == 2
