"""An ensemble of classifiers exports as one SavedModel that `kerasdl serve` answers.

`kerasdl.models.ensemble` (average and majority vote) goes through the same
`export_saved_model` as every image classifier; a real server then answers it over
REST and over gRPC with TF Serving's official stub, as the in-process ensemble does.
"""

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ServerProcess, free_port, predict
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from kerasdl.export import export_saved_model
from kerasdl.models import ensemble, mlp

METHODS = ("average", "vote")


def _members(count=5):
    keras.utils.set_random_seed(0)
    return [
        mlp((8, 8, 1), 4, depth=1, width=8, name=f"member_{i}") for i in range(count)
    ]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ensemble")
    models = {method: ensemble(_members(), method=method) for method in METHODS}
    for method, model in models.items():
        export_saved_model(
            model, folder / method, input_shape=(8, 8, 1), input_dtype="float32"
        )
    config = folder / "models.config"
    config.write_text(
        "model_config_list {\n"
        + "".join(
            f"  config {{ name: '{m}' base_path: '{folder}/{m}' }}\n" for m in METHODS
        )
        + "}\n"
    )
    port = free_port()
    process = ServerProcess(
        f"--model_config_file={config}", f"--port={port}", log_path=folder / "log"
    )
    try:
        process.wait_available(METHODS)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        process.stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        yield process, models
        channel.close()
    finally:
        process.stop()


def _images(count=16):
    return np.random.default_rng(1).normal(size=(count, 8, 8, 1)).astype("float32")


@pytest.mark.parametrize("method", METHODS)
def test_rest_answers_what_the_in_process_ensemble_computes(served, method):
    process, models = served
    x = _images()
    expected = np.asarray(models[method](x, training=False))
    reply = predict(
        f"{process.url}/v1/models/{method}:predict", {"instances": x.tolist()}
    )
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    probabilities = np.array([p["probabilities"] for p in predictions])
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    assert [p["class_id"] for p in predictions] == expected.argmax(-1).tolist()
    if method == "vote":
        # Vote fractions of five members: multiples of 1/5.
        np.testing.assert_allclose(probabilities * 5, np.round(probabilities * 5))


@pytest.mark.parametrize("method", METHODS)
def test_official_grpc_stub_gets_the_same_answer(served, method):
    process, models = served
    x = _images(4)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = method
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(x))
    response = process.stub.Predict(request, 10.0)
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    expected = np.asarray(models[method](x, training=False))
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    np.testing.assert_array_equal(
        tf.make_ndarray(response.outputs["class_id"]), expected.argmax(-1)
    )
