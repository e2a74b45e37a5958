"""Exports write TF Serving's assets.extra/tf_serving_warmup_requests."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from kerasdl import export
from kerasdl.export.warmup import (
    WARMUP_PATH,
    warmup_batches,
    write_warmup_requests,
)


def _read(path):
    logs = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs


def _classifier():
    inputs = keras.Input((8, 8, 1), dtype="uint8", name="images")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def test_image_export_writes_requests_of_real_images(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (20, 8, 8, 1), dtype="uint8")
    result = export.export_saved_model(
        _classifier(),
        tmp_path / "lenet",
        input_shape=(8, 8, 1),
        input_dtype="uint8",
        verification_images=images,
    )
    logs = _read(f"{result.path}/{WARMUP_PATH}")
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log"] * 2
    requests = [log.predict_log.request for log in logs]
    assert {r.model_spec.signature_name for r in requests} == {"serving_default"}
    assert {r.model_spec.name for r in requests} == {"lenet"}
    batches = [tf.make_ndarray(r.inputs["images"]) for r in requests]
    assert [b.shape for b in batches] == [(1, 8, 8, 1), (8, 8, 8, 1)]
    assert all(b.dtype == np.uint8 for b in batches)
    np.testing.assert_array_equal(batches[1], images[:8])


def test_warmup_can_be_turned_off(tmp_path):
    result = export.export_saved_model(
        _classifier(),
        tmp_path / "m",
        input_shape=(8, 8, 1),
        input_dtype="uint8",
        warmup=False,
    )
    assert not (tmp_path / "m" / "1" / WARMUP_PATH).exists()
    assert result.version == 1


def test_export_signatures_writes_string_requests(tmp_path):
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    path = export.export_signatures(
        [layer],
        tmp_path / "echo",
        {
            "shout": (
                lambda t: {"upper": tf.strings.upper(t)},
                [tf.TensorSpec([None], tf.string, name="text")],
            )
        },
        warmup_requests=[("shout", {"text": np.array([b"hi", "h\u00e9".encode()])})],
    )
    (log,) = _read(f"{path}/{WARMUP_PATH}")
    request = log.predict_log.request
    assert request.model_spec.signature_name == "shout"
    assert tf.make_ndarray(request.inputs["text"]).tolist() == [
        b"hi",
        "h\u00e9".encode(),
    ]


def test_warmup_batches_shrink_to_the_examples_and_a_byte_budget():
    examples = {"x": np.zeros((5, 10), "float32")}
    assert [b["x"].shape[0] for b in warmup_batches(examples)] == [1, 5]
    assert [b["x"].shape[0] for b in warmup_batches(examples, (1, 8), 100)] == [1]
    assert warmup_batches({"x": np.zeros((0, 3))}) == []


def test_more_than_tf_serving_reads_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at most 1000"):
        write_warmup_requests(
            tmp_path, [("serving_default", {"x": np.zeros(1)})] * 1001
        )
