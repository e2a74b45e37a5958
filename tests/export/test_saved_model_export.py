"""Export layout, versioning, atomicity and the serving signature."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasdl import export
from kerasdl.export import saved_model as saved_model_module

SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


def tiny_classifier(input_shape=(8, 8, 1), input_dtype="float32", rescale=1 / 16):
    inputs = keras.Input(input_shape, dtype=input_dtype, name="images")
    x = keras.layers.Rescaling(rescale)(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def test_versions_are_numbered_and_never_overwritten(tmp_path):
    model = tiny_classifier()
    first = export.export_saved_model(
        model,
        tmp_path / "m",
        input_shape=(8, 8, 1),
        input_dtype="float32",
        model_card={"run": 1},
    )
    second = export.export_saved_model(
        model,
        tmp_path / "m",
        input_shape=(8, 8, 1),
        input_dtype="float32",
        model_card={"run": 2},
    )
    assert (first.version, second.version) == (1, 2)
    assert export.load_model_card(first.path) == {"run": 1}
    assert export.load_model_card(second.path) == {"run": 2}
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "2"]  # No temp dirs left.
    for name in ("saved_model.pb", "variables", "assets.extra/model_card.json"):
        assert os.path.exists(os.path.join(second.path, name))


def test_version_taken_by_someone_else_is_skipped(tmp_path):
    (tmp_path / "m" / "4").mkdir(parents=True)
    (tmp_path / "m" / "4" / "keep.txt").write_text("not ours")
    result = export.export_saved_model(
        tiny_classifier(), tmp_path / "m", input_shape=(8, 8, 1), input_dtype="float32"
    )
    assert result.version == 5
    assert (tmp_path / "m" / "4" / "keep.txt").read_text() == "not ours"


def test_failed_verification_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise export.ExportError("mismatch")

    monkeypatch.setattr(saved_model_module, "_verify", broken)
    with pytest.raises(export.ExportError, match="mismatch"):
        export.export_saved_model(
            tiny_classifier(),
            tmp_path / "m",
            input_shape=(8, 8, 1),
            input_dtype="float32",
        )
    assert os.listdir(tmp_path / "m") == []


def test_non_finite_weights_are_not_exported(tmp_path):
    model = tiny_classifier()
    kernel = model.layers[-1].kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    with pytest.raises(export.ExportError, match="NaN"):
        export.export_saved_model(
            model, tmp_path / "m", input_shape=(8, 8, 1), input_dtype="float32"
        )
    assert not os.path.exists(tmp_path / "m" / "1")


def test_serving_default_takes_raw_uint8_images(tmp_path):
    model = tiny_classifier((28, 28, 1), "uint8", 1 / 255)
    result = export.export_saved_model(
        model, tmp_path / "m", input_shape=(28, 28, 1), input_dtype="uint8"
    )
    loaded = tf.saved_model.load(result.path)
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    outputs = loaded.signatures["serving_default"](images=tf.constant(images))
    assert outputs["probabilities"].dtype == tf.float32
    assert outputs["probabilities"].shape == (5, 3)
    assert outputs["class_id"].dtype == tf.int64
    np.testing.assert_allclose(
        outputs["probabilities"], model.predict(images, verbose=0), atol=1e-6
    )
    np.testing.assert_allclose(
        loaded.serve(images), outputs["probabilities"], atol=1e-6
    )


def test_saved_model_cli_shows_named_input_and_outputs(tmp_path):
    result = export.export_saved_model(
        tiny_classifier(), tmp_path / "m", input_shape=(8, 8, 1), input_dtype="float32"
    )
    shown = subprocess.run(
        [
            SAVED_MODEL_CLI,
            "show",
            "--dir",
            result.path,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    ).stdout
    assert "inputs['images']" in shown
    assert "outputs['probabilities']" in shown
    assert "outputs['class_id']" in shown
    assert "DT_INT64" in shown and "(-1, 8, 8, 1)" in shown


def test_model_card_is_json(tmp_path):
    card = {"recipe": "tiny", "metrics": {"test_accuracy": 0.5}}
    result = export.export_saved_model(
        tiny_classifier(),
        tmp_path / "m",
        input_shape=(8, 8, 1),
        input_dtype="float32",
        model_card=card,
    )
    with open(os.path.join(result.path, export.MODEL_CARD_PATH)) as f:
        assert json.load(f) == card
