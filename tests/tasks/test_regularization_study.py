import csv
import json
import math

import matplotlib.image
import numpy as np

from kerasdl.studies import regularization as regularization_study


def test_tiny_study_writes_a_real_table_plot_and_json(tmp_path, capsys):
    regularization_study.main(
        ["--epochs", "2", "--train-size", "60", "--output", str(tmp_path)]
    )
    variants = list(regularization_study.VARIANTS)

    # The printed table: a header and one row per variant.
    out = capsys.readouterr().out
    assert "train acc" in out and "val acc" in out and "test acc" in out
    table_rows = [
        line.split()[0]
        for line in out.splitlines()
        if line.split() and line.split()[0] in variants
    ]
    assert sorted(set(table_rows)) == sorted(variants)

    # results.json: the resolved config, one finite row and curves per variant.
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["epochs"] == 2
    assert results["config"]["train_size"] == 60
    assert [row["variant"] for row in results["results"]] == variants
    for row in results["results"]:
        for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
            assert 0.0 <= row[key] <= 1.0
        for key in ("train_loss", "val_loss", "accuracy_gap", "loss_gap"):
            assert math.isfinite(row[key])
        assert row["accuracy_gap"] == row["train_accuracy"] - row["val_accuracy"]
        assert 1 <= row["epochs_run"] <= 2
        history = results["history"][row["variant"]]
        assert len(history["val_accuracy"]) == row["epochs_run"]
    early = results["results"][variants.index("early_stopping")]
    assert 1 <= early["best_epoch"] <= early["epochs_run"]

    # results.csv holds the same rows.
    with open(tmp_path / "results.csv") as f:
        assert [row["variant"] for row in csv.DictReader(f)] == variants

    # learning_curves.png is a real picture with something drawn on it.
    image = matplotlib.image.imread(tmp_path / "learning_curves.png")
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert np.std(image[..., :3]) > 0.05


def test_models_differ_only_by_their_regularizer():
    import keras

    import kerasdl

    config = regularization_study.RegularizationStudyConfig()
    layer_types = {
        variant: {
            type(layer)
            for layer in regularization_study.build_model(config, variant).layers
        }
        for variant in regularization_study.VARIANTS
    }
    assert kerasdl.layers.Dropout in layer_types["dropout"]
    assert kerasdl.layers.BatchNormalization in layer_types["batch_norm"]
    assert layer_types["baseline"] == layer_types["l2"] == layer_types["early_stopping"]
    l2_model = regularization_study.build_model(config, "l2")
    regularized = [
        layer
        for layer in l2_model.layers
        if isinstance(
            getattr(layer, "kernel_regularizer", None), kerasdl.regularizers.L2
        )
    ]
    assert len(regularized) == len(config.conv_filters) + 2
    assert not regularization_study.build_model(config, "baseline").losses
    assert isinstance(l2_model, keras.Model)
