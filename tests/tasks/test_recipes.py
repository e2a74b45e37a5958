"""Every registered recipe trains one epoch on a tiny slice and exports a SavedModel."""

import json
import os

import pytest

from kerasdl.recipes import RECIPES

FLAGS = ["--epochs", "1", "--limit", "16", "--batch-size", "16", "--verbose", "0"]
# 20M-37M parameters: building, tracing and writing a 100-150 MB SavedModel takes
# minutes on a shared 2-core CPU, so these run with `make test-large`.
HEAVY = {"alexnet", "vgg11", "vgg16", "resnet34", "resnet50"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.large) if n in HEAVY else n
        for n in sorted(RECIPES)
        if RECIPES[n].task == "image classification"
    ],
)
def test_recipe_trains_one_epoch_and_exports(name, tmp_path, capsys):
    import kerasdl.models

    recipe = RECIPES[name]
    module = recipe.load()
    assert module.CONFIG.model in kerasdl.models.MODELS, (
        f"recipe {name} uses model {module.CONFIG.model!r}, not in kerasdl.models"
    )
    status = module.main(
        FLAGS
        + ["--workdir", str(tmp_path / "run"), "--output", str(tmp_path / "models")]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    export_dir = tmp_path / "models" / name / "1"
    assert f"Model exported to: {export_dir}" in out
    card = json.loads((export_dir / "assets.extra" / "model_card.json").read_text())
    assert card["recipe"] == name
    assert card["config"]["model"] == module.CONFIG.model
    assert card["config"]["epochs"] == 1 and card["config"]["limit"] == 16
    assert card["dataset"]["name"] == recipe.dataset
    assert 0.0 <= card["metrics"]["test_accuracy"] <= 1.0
    assert card["training"]["epochs_run"] == 1
    assert card["parameter_count"] > 0
    for key in ("device", "versions", "created"):
        assert card[key]
    assert set(card["versions"]) >= {"kerasdl", "tensorflow", "keras"}
    assert os.path.exists(tmp_path / "run" / "training_log.csv")
    assert os.path.exists(tmp_path / "run" / "learning_curves.png")
    assert os.path.exists(export_dir / "assets.extra" / "learning_curves.png")


def test_python_m_recipe_and_kerasdl_train_are_the_same_code():
    import kerasdl.recipes.lenet
    from kerasdl import cli  # noqa: F401

    assert kerasdl.recipes.lenet.CONFIG.model == "lenet"
    assert RECIPES["lenet"].module == "kerasdl.recipes.lenet"


def test_mixed_precision_run_exports(tmp_path, capsys):
    import keras

    from kerasdl.recipes import lenet

    flags = ["--epochs", "1", "--limit", "64", "--verbose", "0", "--mixed-precision"]
    try:
        status = lenet.main(
            flags
            + ["--workdir", str(tmp_path / "run"), "--output", str(tmp_path / "out")]
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert (tmp_path / "out" / "lenet" / "1" / "saved_model.pb").exists()
