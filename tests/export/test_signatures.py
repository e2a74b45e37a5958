"""export_signatures: caller-chosen endpoints, versioned and published atomically."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from kerasdl.export import export_signatures
from kerasdl.export.saved_model import ExportError


def _scaler():
    layer = keras.layers.Dense(2, use_bias=False, kernel_initializer="ones")
    layer.build((None, 3))
    return layer


def _endpoints(layer):
    numbers = [tf.TensorSpec([None, 3], tf.float32, name="numbers")]
    text = [tf.TensorSpec([None], tf.string, name="text")]
    return {
        "serving_default": (lambda x: {"sums": layer(x)}, numbers),
        "shout": (lambda t: {"upper": tf.strings.upper(t)}, text),
    }


def _entries(base):
    return sorted(p.name for p in base.iterdir())


def test_writes_numbered_versions_with_every_endpoint(tmp_path):
    layer = _scaler()
    base = tmp_path / "echo"

    first = export_signatures([layer], base, _endpoints(layer), model_card={"run": 1})
    second = export_signatures([layer], base, _endpoints(layer), model_card={"run": 2})

    assert (first, second) == (str(base / "1"), str(base / "2"))
    assert _entries(base) == ["1", "2"]  # no temporary directory left
    loaded = tf.saved_model.load(second)
    assert set(loaded.signatures) == {"serving_default", "shout"}
    sums = loaded.signatures["serving_default"](numbers=tf.constant([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(sums["sums"].numpy(), [[6.0, 6.0]])
    upper = loaded.signatures["shout"](text=tf.constant(["abc"]))
    assert upper["upper"].numpy().tolist() == [b"ABC"]
    card = json.loads((base / "2" / "assets.extra" / "model_card.json").read_text())
    assert card == {"run": 2}


def test_extra_assets_are_copied_and_missing_ones_skipped(tmp_path):
    layer = _scaler()
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text("a\nb\n")

    path = export_signatures(
        [layer],
        tmp_path / "m",
        _endpoints(layer),
        extra_assets={"vocab.txt": vocabulary, "curves.png": tmp_path / "absent.png"},
    )

    extra = tmp_path / "m" / "1" / "assets.extra"
    assert path == str(tmp_path / "m" / "1")
    assert sorted(p.name for p in extra.iterdir()) == ["model_card.json", "vocab.txt"]
    assert (extra / "vocab.txt").read_text() == "a\nb\n"


def test_failed_verification_publishes_nothing(tmp_path):
    layer = _scaler()
    seen = []

    def verify(directory):
        seen.append(tf.saved_model.load(directory))
        raise ExportError("reloaded model disagrees")

    with pytest.raises(ExportError, match="disagrees"):
        export_signatures([layer], tmp_path / "m", _endpoints(layer), verify=verify)

    assert len(seen) == 1  # verify saw a complete SavedModel
    assert _entries(tmp_path / "m") == []


def test_non_finite_weights_are_refused_before_writing(tmp_path):
    layer = _scaler()
    layer.kernel.assign(np.full((3, 2), np.nan, "float32"))

    with pytest.raises(ExportError):
        export_signatures([layer], tmp_path / "m", _endpoints(layer))

    assert not (tmp_path / "m").exists()


def test_tensor_defaults_become_optional_signature_inputs(tmp_path):
    layer = _scaler()
    specs = [
        tf.TensorSpec([None, 3], tf.float32, name="numbers"),
        tf.TensorSpec([], tf.float32, name="scale"),
    ]

    two = tf.constant(2.0)

    def scaled(numbers, scale=two):
        return {"sums": layer(numbers) * scale}

    path = export_signatures(
        [layer], tmp_path / "scaled", {"serving_default": (scaled, specs)}
    )

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((tmp_path / "scaled" / "1" / "saved_model.pb").read_bytes())
    defaults = proto.meta_graphs[0].signature_def["serving_default"].defaults
    assert list(defaults) == ["scale"]
    assert tf.make_ndarray(defaults["scale"]) == 2.0
    loaded = tf.saved_model.load(path)
    numbers = tf.constant([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(loaded.serving_default(numbers)["sums"], [[12.0, 12.0]])
    sums = loaded.signatures["serving_default"](numbers=numbers, scale=tf.constant(0.5))
    np.testing.assert_allclose(sums["sums"], [[3.0, 3.0]])
