"""A language model's SavedModel served by `kerasdl serve`: generate and score over
REST and gRPC, the sampling options optional."""

import grpc
import keras
import numpy as np
import pytest
import requests
import tensorflow as tf
from conftest import ServerProcess, free_port, predict
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from kerasdl.data.timemachine import Vocabulary, tokenize
from kerasdl.export.language_model import TextLanguageModel, export_language_model
from kerasdl.models import RNNLanguageModel

PROMPTS = ["the time", "so"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("language_model")
    vocabulary = Vocabulary.build(
        tokenize("the time traveller smiled, and so on.", "char")
    )
    keras.utils.set_random_seed(0)
    model = RNNLanguageModel(vocabulary.size, cell="gru", units=8, embedding_dim=4)
    model(np.zeros((1, 1), "int32"))
    text_model = TextLanguageModel(model, vocabulary, "char", max_sequence_length=24)
    export_language_model(text_model, folder / "lm")
    grpc_port = free_port()
    server = ServerProcess(
        "--model_name=lm",
        f"--model_base_path={folder / 'lm'}",
        f"--port={grpc_port}",
        log_path=folder / "log",
    )
    channel = None
    try:
        server.wait_available(["lm"])
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        server.prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        yield server, text_model
    finally:
        if channel is not None:
            channel.close()
        server.stop()


def _texts(tensor):
    return [t.decode("utf-8") for t in np.asarray(tensor).tolist()]


def test_rest_answers_generate_and_score_as_the_eager_model(served):
    server, text_model = served
    url = f"{server.url}/v1/models/lm:predict"
    prompts = tf.constant(PROMPTS)

    reply = predict(url, {"inputs": {"prompt": PROMPTS}})
    assert reply.status_code == 200, reply.text
    expected = text_model.generate(prompts)["continuation"].numpy()
    outputs = reply.json()["outputs"]
    assert outputs["continuation"] == [t.decode("utf-8") for t in expected]
    # A 24-token buffer: each prompt kept whole, the continuation fills the rest.
    assert outputs["continuation_length"] == [24 - len(p) for p in PROMPTS]

    options = {"max_length": 6, "temperature": 0.7, "top_k": 3, "top_p": 0.9, "seed": 5}
    reply = predict(
        url,
        {"signature_name": "generate", "inputs": {"prompt": PROMPTS, **options}},
    )
    assert reply.status_code == 200, reply.text
    expected = text_model.generate(prompts, **options)["continuation"].numpy()
    assert reply.json()["outputs"]["continuation"] == [
        t.decode("utf-8") for t in expected
    ]

    texts = ["the time traveller", "a"]
    reply = predict(url, {"signature_name": "score", "inputs": {"text": texts}})
    assert reply.status_code == 200, reply.text
    scored = reply.json()["outputs"]
    expected = text_model.score(tf.constant(texts))
    np.testing.assert_allclose(
        scored["negative_log_likelihood"],
        expected["negative_log_likelihood"].numpy(),
        rtol=1e-5,
    )
    assert scored["num_predicted"] == [17, 0]


def test_a_bad_sampling_option_is_a_400_that_names_it(served):
    server, _ = served
    options = {"max_length": 6, "temperature": 1.0, "top_k": 0, "top_p": 1.5, "seed": 1}
    reply = predict(
        f"{server.url}/v1/models/lm:predict",
        {"signature_name": "generate", "inputs": {"prompt": PROMPTS, **options}},
    )
    assert reply.status_code == 400, reply.text
    assert "top_p must be in (0, 1]" in reply.json()["error"]


def test_sampling_options_are_optional_over_rest(served):
    server, text_model = served
    url = f"{server.url}/v1/models/lm:predict"
    prompts = tf.constant(PROMPTS)
    # Any subset of the options; the rest take the export's defaults.
    reply = predict(url, {"inputs": {"prompt": PROMPTS, "max_length": 4, "seed": 9}})
    assert reply.status_code == 200, reply.text
    expected = text_model.generate(prompts, max_length=4, seed=9)
    assert reply.json()["outputs"]["continuation"] == _texts(expected["continuation"])
    assert reply.json()["outputs"]["continuation_length"] == [4, 4]
    # The plain list goes to the one input without a default.
    reply = predict(url, {"instances": PROMPTS})
    assert reply.status_code == 200, reply.text
    expected = text_model.generate(prompts)["continuation"]
    assert [row["continuation"] for row in reply.json()["predictions"]] == _texts(
        expected
    )
    metadata = requests.get(f"{server.url}/v1/models/lm/metadata", timeout=30).json()
    defaults = metadata["metadata"]["signature_def"]["signature_def"][
        "serving_default"
    ]["defaults"]
    assert defaults["max_length"]["int_val"] == [100]
    assert defaults["temperature"]["float_val"] == [1.0]
    assert sorted(defaults) == ["max_length", "seed", "temperature", "top_k", "top_p"]


def test_sampling_options_are_optional_over_grpc(served):
    server, text_model = served
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lm"
    request.inputs["prompt"].CopyFrom(tf.make_tensor_proto(PROMPTS))
    request.inputs["max_length"].CopyFrom(tf.make_tensor_proto(5, dtype=tf.int32))
    response = server.prediction.Predict(request, 30.0)
    expected = text_model.generate(tf.constant(PROMPTS), max_length=5)
    continuation = tf.make_ndarray(response.outputs["continuation"])
    assert _texts(continuation) == _texts(expected["continuation"])
    del request.inputs["prompt"]
    with pytest.raises(grpc.RpcError) as caught:
        server.prediction.Predict(request, 30.0)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Signature input alias: prompt" in caught.value.details()


def test_a_negative_max_length_is_refused_by_name(served):
    server, _ = served
    reply = predict(
        f"{server.url}/v1/models/lm:predict",
        {"inputs": {"prompt": PROMPTS, "max_length": -5}},
    )
    assert reply.status_code == 400, reply.text
    assert "max_length must be >= 0" in reply.json()["error"]
