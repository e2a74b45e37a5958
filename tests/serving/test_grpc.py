"""TF Serving's gRPC API against a real `kerasdl serve`, driven by the official stubs.

Requests are built as TF Serving's own client examples and tests build them
(`tf.make_tensor_proto`, `request.inputs[...].float_val`, `Input` example lists),
and answers are compared with the REST API's answers for the same inputs.
"""

import argparse

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from conftest import CONFIG, ServerProcess, free_port, predict
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from kerasdl.serving import server as serve_cli
from kerasdl.serving.grpc_server import parse_channel_arguments

TIMEOUT = 10.0  # seconds per call
MAX_MESSAGE_BYTES = 1_000_000


@pytest.fixture(scope="module")
def served(model_base, tmp_path_factory):
    """The conftest models over REST and gRPC, with TF Serving's channel-args example."""
    folder = tmp_path_factory.mktemp("grpc_server")
    config = folder / "models.config"
    config.write_text(CONFIG.format(base=model_base))
    port = free_port()
    process = ServerProcess(
        f"--model_config_file={config}",
        f"--port={port}",
        f"--grpc_max_message_bytes={MAX_MESSAGE_BYTES}",
        "--grpc_channel_arguments=grpc.max_connection_age_ms=60000,"
        "grpc.lb_policy_name=grpclb",
        "--file_system_poll_wait_seconds=0.5",
        log_path=folder / "server.log",
    )
    channel = None
    try:
        process.wait_available(["dense", "recipe", "text", "half"])
        channel = grpc.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.max_send_message_length", 4 * MAX_MESSAGE_BYTES)],
        )
        process.prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        process.models = model_service_pb2_grpc.ModelServiceStub(channel)
        process.base = model_base
        yield process
    finally:
        if channel is not None:
            channel.close()
        process.stop()


def _predict_request(name, inputs, signature_name="", version=None, label=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if signature_name:
        request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def _outputs(response):
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def _error(call, request):
    with pytest.raises(grpc.RpcError) as caught:
        call(request, TIMEOUT)
    return caught.value.code(), caught.value.details()


# --- Predict ------------------------------------------------------------------------


def test_predict_equals_rest(served):
    rows = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    response = served.prediction.Predict(
        _predict_request("dense", {"features": rows}), TIMEOUT
    )
    rest = predict(
        f"{served.url}/v1/models/dense:predict", {"inputs": rows.tolist()}
    ).json()
    (output,) = _outputs(response).values()
    assert output.dtype == np.float32 and output.shape == (3, 3)
    np.testing.assert_array_equal(output, np.asarray(rest["outputs"], "float32"))
    assert response.model_spec.name == "dense"
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 2  # policy all: latest is 2


def test_predict_named_inputs_and_outputs_equal_rest(served):
    image = np.arange(8, dtype="float32").reshape(2, 2, 2) / 8
    scale = np.array([1.0, 0.5], "float32")
    got = _outputs(
        served.prediction.Predict(
            _predict_request("recipe", {"image": image, "scale": scale}), TIMEOUT
        )
    )
    rest = predict(
        f"{served.url}/v1/models/recipe:predict",
        {"inputs": {"image": image.tolist(), "scale": scale.tolist()}},
    ).json()["outputs"]
    assert set(got) == set(rest) == {"probabilities", "class_id"}
    np.testing.assert_array_equal(
        got["probabilities"], np.asarray(rest["probabilities"], "float32")
    )
    assert got["class_id"].dtype == np.int64
    np.testing.assert_array_equal(got["class_id"], rest["class_id"])


def test_predict_strings(served):
    text = np.array([b"abc", "h\u00e9".encode(), b"\xff\x00"], dtype=object)
    got = _outputs(
        served.prediction.Predict(_predict_request("text", {"text": text}), TIMEOUT)
    )
    assert got["length"].tolist() == [3, 3, 2]
    assert got["upper_bytes"].tolist() == [b"ABC", "H\u00e9".encode(), b"\xff\x00"]


def test_predict_as_tf_serving_test_client(served):
    """TF Serving's VerifyPredictRequest: float_val in, float_val out, output_filter."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half"
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    request.output_filter.append("y")
    result = served.prediction.Predict(request, TIMEOUT)
    assert list(result.outputs) == ["y"]
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert list(result.outputs["y"].float_val) == [3.0]
    assert result.model_spec.version.value == 123


def test_version_and_label_selection(served):
    rows = np.ones((1, 4), "float32")
    answers = {}
    for version in (1, 2):
        response = served.prediction.Predict(
            _predict_request("dense", {"features": rows}, version=version), TIMEOUT
        )
        assert response.model_spec.version.value == version
        answers[version] = _outputs(response)["output_0"]
        rest = predict(
            f"{served.url}/v1/models/dense/versions/{version}:predict",
            {"instances": rows.tolist()},
        ).json()["predictions"]
        np.testing.assert_array_equal(answers[version], np.asarray(rest, "float32"))
    assert not np.array_equal(answers[1], answers[2])
    for label, version in (("stable", 1), ("canary", 2)):
        response = served.prediction.Predict(
            _predict_request("dense", {"features": rows}, label=label), TIMEOUT
        )
        assert response.model_spec.version.value == version
        np.testing.assert_array_equal(_outputs(response)["output_0"], answers[version])


@pytest.mark.parametrize(
    "change, code, message",
    [
        (
            lambda r: r.model_spec.__setattr__("name", "nope"),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(nope)",
        ),
        (
            lambda r: r.model_spec.version.__setattr__("value", 7),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Specific(dense, 7)",
        ),
        (
            lambda r: r.model_spec.__setattr__("version_label", "nope"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Unrecognized servable version label: nope",
        ),
        (
            lambda r: r.ClearField("model_spec"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Missing ModelSpec",
        ),
        (
            lambda r: r.model_spec.__setattr__("name", ""),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ModelSpec has no name specified.",
        ),
        (
            lambda r: r.model_spec.__setattr__("signature_name", "nope"),
            grpc.StatusCode.FAILED_PRECONDITION,
            'Serving signature key "nope" not found.',
        ),
        (
            lambda r: r.inputs["other"].CopyFrom(tf.make_tensor_proto([1.0])),
            grpc.StatusCode.INVALID_ARGUMENT,
            (
                "input size does not match signature: 2!=1 len({features,other}) != "
                "len({features}). Sent extra: {other}. Missing but required: {}."
            ),
        ),
        (
            lambda r: r.inputs["features"].CopyFrom(
                tf.make_tensor_proto(np.ones((1, 4), "float64"))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Input 'features': expected dtype DT_FLOAT; received DT_DOUBLE",
        ),
        (
            lambda r: r.output_filter.append("nope"),
            grpc.StatusCode.INVALID_ARGUMENT,
            (
                "output tensor alias not found in signature: nope Outputs expected to be "
                "in the set {output_0}."
            ),
        ),
        (
            lambda r: r.inputs["features"].tensor_shape.dim[1].__setattr__("size", 3),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tensor parsing error: features",
        ),
    ],
)
def test_predict_errors(served, change, code, message):
    request = _predict_request("dense", {"features": np.ones((1, 4), "float32")})
    change(request)
    assert _error(served.prediction.Predict, request) == (code, message)


def test_wrong_shape_is_refused_by_the_graph(served):
    request = _predict_request("dense", {"features": np.ones((1, 3), "float32")})
    code, message = _error(served.prediction.Predict, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Matrix size-incompatible" in message and "{{" not in message


def test_message_over_the_limit(served):
    big = np.zeros((MAX_MESSAGE_BYTES // 16 + 1, 4), "float32")  # just over 1 MB
    code, message = _error(
        served.prediction.Predict, _predict_request("dense", {"features": big})
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # A few bytes that claim a huge shape are refused before anything is allocated.
    request = _predict_request("dense", {"features": np.ones((1, 4), "float32")})
    request.inputs["features"].tensor_shape.dim[0].size = 10**9
    request.inputs["features"].ClearField("tensor_content")
    request.inputs["features"].float_val.append(1.0)
    code, message = _error(served.prediction.Predict, request)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "over the 1000000-byte limit" in message
    # The server still answers.
    served.prediction.Predict(
        _predict_request("dense", {"features": np.ones((1, 4), "float32")}), TIMEOUT
    )


def test_concurrent_calls(served):
    rows = np.random.default_rng(1).normal(size=(16, 1, 4)).astype("float32")
    futures = [
        served.prediction.Predict.future(
            _predict_request("dense", {"features": row}), TIMEOUT
        )
        for row in rows
    ]
    whole = _outputs(
        served.prediction.Predict(
            _predict_request("dense", {"features": rows[:, 0]}), TIMEOUT
        )
    )["output_0"]
    for index, future in enumerate(futures):
        got = _outputs(future.result())["output_0"]
        np.testing.assert_allclose(got[0], whole[index], rtol=1e-6, atol=1e-7)


# --- Classify / Regress / MultiInference ---------------------------------------------


def _examples(request, *values, context=None):
    if context is None:
        for value in values:
            example = request.input.example_list.examples.add()
            example.features.feature["x"].float_list.value.extend([value])
        return request
    listed = request.input.example_list_with_context
    listed.context.features.feature["x"].float_list.value.extend([context])
    for value in values:
        example = listed.examples.add()
        if value is not None:
            example.features.feature["x"].float_list.value.extend([value])
    return request


def test_classify_as_tf_serving_test(served):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half"
    request.model_spec.signature_name = "classify_x"
    result = served.prediction.Classify(_examples(request, 2.0, 4.0), TIMEOUT)
    got = [
        [(c.label, c.score) for c in row.classes]
        for row in result.result.classifications
    ]
    assert got == [[("big", 3.0), ("small", -3.0)], [("big", 4.0), ("small", -4.0)]]
    assert result.model_spec.name == "half"
    assert result.model_spec.signature_name == "classify_x"
    assert result.model_spec.version.value == 123
    rest = predict(
        f"{served.url}/v1/models/half:classify",
        {"signature_name": "classify_x", "examples": [{"x": 2.0}, {"x": 4.0}]},
    ).json()
    rest_rows = rest.get("results", rest.get("result"))  # TF Serving's key: results
    assert [[tuple(pair) for pair in row] for row in rest_rows] == got


def test_regress_and_context(served):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half"
    request.model_spec.signature_name = "tensorflow/serving/regress"
    result = served.prediction.Regress(_examples(request, 2.0), TIMEOUT)
    assert [r.value for r in result.result.regressions] == [3.0]
    # The example's own feature wins over the context's, as TF Serving merges them.
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half"
    request.model_spec.signature_name = "tensorflow/serving/regress"
    result = served.prediction.Regress(
        _examples(request, None, 6.0, context=2.0), TIMEOUT
    )
    assert [r.value for r in result.result.regressions] == [3.0, 5.0]


@pytest.mark.parametrize(
    "signature_name, fill, message",
    [
        ("nope", True, "No signature was found with the name: nope"),
        ("", True, "No classification inputs found in SignatureDef: "),
        ("classify_x", False, "Input is empty."),
    ],
)
def test_classify_errors(served, signature_name, fill, message):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half"
    request.model_spec.signature_name = signature_name
    if fill:
        _examples(request, 1.0)
    code, details = _error(served.prediction.Classify, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(message)


def _multi_request(*tasks):
    request = inference_pb2.MultiInferenceRequest()
    for signature_name, method_name in tasks:
        task = request.tasks.add()
        task.model_spec.name = "half"
        task.model_spec.signature_name = signature_name
        task.method_name = method_name
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    return request


def test_multi_inference_as_tf_serving_test(served):
    request = _multi_request(
        ("tensorflow/serving/regress", "tensorflow/serving/regress"),
        ("classify_x", "tensorflow/serving/classify"),
    )
    result = served.prediction.MultiInference(request, TIMEOUT)
    assert len(result.results) == 2
    assert result.results[0].regression_result.regressions[0].value == 3.0
    classes = result.results[1].classification_result.classifications[0].classes
    assert classes[0].score == 3.0
    for task, answer in zip(request.tasks, result.results):
        assert answer.model_spec.name == "half"
        assert answer.model_spec.signature_name == task.model_spec.signature_name
        assert answer.model_spec.version.value == 123
    duplicate = _multi_request(
        ("classify_x", "tensorflow/serving/classify"),
        ("classify_x", "tensorflow/serving/classify"),
    )
    assert _error(served.prediction.MultiInference, duplicate) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Duplicate evaluation of signature: classify_x",
    )
    predict_task = _multi_request(("serving_default", "tensorflow/serving/predict"))
    assert _error(served.prediction.MultiInference, predict_task) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "Unsupported signature method_name: tensorflow/serving/predict",
    )


# --- metadata and status -------------------------------------------------------------


def test_metadata_matches_rest(served):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "recipe"
    request.metadata_field.append("signature_def")
    result = served.prediction.GetModelMetadata(request, TIMEOUT)
    assert result.model_spec.name == "recipe"
    assert result.model_spec.version.value == 1
    assert list(result.metadata) == ["signature_def"]
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert result.metadata["signature_def"].Unpack(signatures)
    rest = requests.get(f"{served.url}/v1/models/recipe/metadata", timeout=10).json()
    rest_signatures = rest["metadata"]["signature_def"]["signature_def"]
    assert set(signatures.signature_def) == set(rest_signatures)
    for name, signature in signatures.signature_def.items():
        want = rest_signatures[name]
        assert signature.method_name == want["method_name"]
        for got_map, want_map in (
            (signature.inputs, want["inputs"]),
            (signature.outputs, want["outputs"]),
        ):
            assert set(got_map) == set(want_map)
            for key, info in got_map.items():
                assert types_pb2.DataType.Name(info.dtype) == want_map[key]["dtype"]
                assert [str(d.size) for d in info.tensor_shape.dim] == [
                    d["size"] for d in want_map[key]["tensor_shape"]["dim"]
                ]
    request.ClearField("metadata_field")
    assert _error(served.prediction.GetModelMetadata, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "GetModelMetadataRequest must specify at least one metadata_field",
    )
    request.metadata_field.append("graph")
    assert _error(served.prediction.GetModelMetadata, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Metadata field graph is not supported",
    )


def test_model_status(served):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "dense"
    result = served.models.GetModelStatus(request, TIMEOUT)
    rest = requests.get(f"{served.url}/v1/models/dense", timeout=10).json()
    got = [
        (
            str(s.version),
            get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
            s.status.error_code,
        )
        for s in result.model_version_status
    ]
    want = [
        (s["version"], s["state"], 0 if s["status"]["error_code"] == "OK" else None)
        for s in rest["model_version_status"]
    ]
    assert got == want
    assert ("1", "AVAILABLE", 0) in got and ("2", "AVAILABLE", 0) in got
    request.model_spec.version.value = 1
    result = served.models.GetModelStatus(request, TIMEOUT)
    assert [s.version for s in result.model_version_status] == [1]
    request.model_spec.version.value = 9
    assert _error(served.models.GetModelStatus, request) == (
        grpc.StatusCode.NOT_FOUND,
        "Could not find version 9 of model dense",
    )


# --- config reload (last: it changes what the server serves) ---------------------------


def test_reload_config(served):
    base = served.base
    request = model_management_pb2.ReloadConfigRequest()
    configs = request.config.model_config_list.config
    for name in ("dense", "recipe", "text", "half"):
        configs.add(name=name, base_path=f"{base}/{name}", model_platform="tensorflow")
    configs[0].model_version_policy.all.SetInParent()
    configs[0].version_labels["stable"] = 1
    configs.add(name="dense_copy", base_path=f"{base}/dense")
    request.metric_names.append("/tensorflow/serving/model_count")
    response = served.models.HandleReloadConfigRequest(request, 60.0)
    assert response.status.error_code == 0
    assert [m.name for m in response.metric] == ["/tensorflow/serving/model_count"]
    rows = np.ones((1, 4), "float32")
    copy = served.prediction.Predict(
        _predict_request("dense_copy", {"features": rows}), TIMEOUT
    )
    assert copy.model_spec.version.value == 2  # latest policy
    # A bad config changes nothing and is refused with TF Serving's code.
    configs.add(name="dense", base_path=f"{base}/dense")
    code, _ = _error(served.models.HandleReloadConfigRequest, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    empty = model_management_pb2.ReloadConfigRequest(
        config=model_server_config_pb2.ModelServerConfig()
    )
    assert _error(served.models.HandleReloadConfigRequest, empty) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        (
            "ServerModelConfig type not supported by HandleReloadConfigRequest. "
            "Only ModelConfigList is currently supported"
        ),
    )
    served.prediction.Predict(
        _predict_request("dense_copy", {"features": rows}), TIMEOUT
    )


# --- flags ----------------------------------------------------------------------------


def test_grpc_flags():
    parser = serve_cli.add_serve_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--model_base_path=/m"])
    assert args.port == 8500
    assert serve_cli.grpc_options(args) == (8500, [])
    args = parser.parse_args(["--port=0", "--grpc_channel_arguments=a.b=1,c=x"])
    assert serve_cli.grpc_options(args) == (0, [("a.b", 1), ("c", "x")])
    with pytest.raises(ValueError, match="--port and --rest_api_port must differ"):
        serve_cli.grpc_options(parser.parse_args(["--port=8501"]))
    with pytest.raises(ValueError, match="key=value pairs"):
        parse_channel_arguments("grpc.max_connection_age_ms")
    assert parse_channel_arguments("k=99999999999") == [("k", "99999999999")]


def _grpc_count(served, api, code):
    text = requests.get(f"{served.url}/monitoring/prometheus/metrics").text
    prefix = "kerasdl_serving_request_count_total{"
    for line in text.splitlines():
        if (
            line.startswith(prefix)
            and f'api="{api}"' in line
            and f'code="{code}"' in line
            and 'model_name="dense"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_grpc_calls_are_counted_in_the_metrics(served):
    before_ok = _grpc_count(served, "grpc_predict", "OK")
    before_error = _grpc_count(served, "grpc_predict", "NOT_FOUND")
    rows = np.zeros((1, 4), "float32")
    for _ in range(3):
        served.prediction.Predict(
            _predict_request("dense", {"features": rows}), TIMEOUT
        )
    with pytest.raises(grpc.RpcError) as caught:
        served.prediction.Predict(
            _predict_request("dense", {"features": rows}, version=99), TIMEOUT
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert _grpc_count(served, "grpc_predict", "OK") == before_ok + 3
    assert _grpc_count(served, "grpc_predict", "NOT_FOUND") == before_error + 1
