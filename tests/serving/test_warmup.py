"""Warm-up: TF Serving's assets.extra/tf_serving_warmup_requests, replayed before AVAILABLE."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import ServerProcess, export_dense, export_half_plus_two, publish
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from kerasdl.export.warmup import write_warmup_requests
from kerasdl.serving.config import ModelConfig
from kerasdl.serving.model_manager import AVAILABLE, LOADING, ModelManager
from kerasdl.serving.servable import LoadError, Servable
from kerasdl.serving.warmup import WARMUP_PATH, run_warmup

FEATURES = np.ones((2, 4), "float32")


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("warmup") / "dense")
    export_dense(path)
    return path


@pytest.fixture(scope="module")
def half(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("warmup") / "half")
    export_half_plus_two(path)
    return path


def _copy(source, tmp_path):
    target = str(tmp_path / "version")
    shutil.copytree(source, target)
    os.makedirs(os.path.join(target, "assets.extra"), exist_ok=True)
    return target


def _write(path, logs):
    with tf.io.TFRecordWriter(os.path.join(path, WARMUP_PATH)) as writer:
        for log in logs:
            writer.write(log if isinstance(log, bytes) else log.SerializeToString())


def _predict_log(signature="serving_default", **inputs):
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name="m", signature_name=signature)
    )
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def _examples(*xs):
    examples = input_pb2.ExampleList()
    for x in xs:
        example = examples.examples.add()
        example.features.feature["x"].float_list.value.append(x)
    return input_pb2.Input(example_list=examples)


def test_no_file_no_warmup(dense, tmp_path):
    path = _copy(dense, tmp_path)
    assert run_warmup(Servable.load(path), path) == 0


def test_predict_records_are_replayed_through_the_signature(dense, tmp_path):
    path = _copy(dense, tmp_path)
    _write(path, [_predict_log(features=FEATURES[:1]), _predict_log(features=FEATURES)])
    servable = Servable.load(path)
    signature = servable.signatures["serving_default"]
    calls = len(signature._recent_seconds)
    assert run_warmup(servable, path) == 2
    assert len(signature._recent_seconds) == calls + 2


def test_export_writer_output_is_replayed(dense, tmp_path):
    path = _copy(dense, tmp_path)
    write_warmup_requests(
        path, [("serving_default", {"features": FEATURES})], model_name="dense"
    )
    assert run_warmup(Servable.load(path), path) == 1


def test_classify_regress_and_multi_inference_records(half, tmp_path):
    path = _copy(half, tmp_path)
    classify = classification_pb2.ClassificationRequest(
        model_spec=model_pb2.ModelSpec(signature_name="classify_x"),
        input=_examples(1.0, 2.0),
    )
    regress = regression_pb2.RegressionRequest(
        model_spec=model_pb2.ModelSpec(signature_name="tensorflow/serving/regress"),
        input=_examples(3.0),
    )
    context = input_pb2.Input()
    context.example_list_with_context.context.features.feature[
        "x"
    ].float_list.value.append(5.0)
    context.example_list_with_context.examples.add()
    multi = inference_pb2.MultiInferenceRequest(input=context)
    multi.tasks.add(
        model_spec=model_pb2.ModelSpec(signature_name="classify_x"),
        method_name="tensorflow/serving/classify",
    )
    _write(
        path,
        [
            prediction_log_pb2.PredictionLog(
                classify_log=prediction_log_pb2.ClassifyLog(request=classify)
            ),
            prediction_log_pb2.PredictionLog(
                regress_log=prediction_log_pb2.RegressLog(request=regress)
            ),
            prediction_log_pb2.PredictionLog(
                multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=multi)
            ),
            _predict_log(x=np.array([1.0, 2.0], "float32")),
        ],
    )
    assert run_warmup(Servable.load(path), path) == 4


def _session_run_log():
    log = prediction_log_pb2.PredictionLog()
    log.session_run_log.SetInParent()
    return log


@pytest.mark.parametrize(
    "records, code, message",
    [
        # Cases of TF Serving's saved_model_warmup_util_test.cc and warmup_test.cc.
        (
            lambda: [b"malformed_record"] * 10,
            "INVALID_ARGUMENT",
            "Failed to parse warmup record",
        ),
        (
            lambda: [_predict_log(features=FEATURES[:1])] * 1001,
            "INVALID_ARGUMENT",
            r"Number of warmup records exceeds the maximum \(1000\)",
        ),
        (
            lambda: [_session_run_log()],
            "UNIMPLEMENTED",
            "Unsupported log_type for warmup",
        ),
        (
            lambda: [_predict_log(signature="nope", features=FEATURES)],
            "INVALID_ARGUMENT",
            'names signature "nope"',
        ),
        (
            lambda: [_predict_log(wrong=FEATURES)],
            "INVALID_ARGUMENT",
            r"has inputs \['wrong'\]; expected \['features'\]",
        ),
        (
            lambda: [_predict_log(features=np.ones((1, 5), "float32"))],
            "INVALID_ARGUMENT",
            "warm-up request 1 failed",
        ),
    ],
    ids=["unparsable", "too-many", "session-run", "signature", "inputs", "shape"],
)
def test_bad_warmup_data_fails_the_load(dense, tmp_path, records, code, message):
    path = _copy(dense, tmp_path)
    _write(path, records())
    with pytest.raises(LoadError, match=message) as caught:
        run_warmup(Servable.load(path), path)
    assert caught.value.code == code
    assert WARMUP_PATH in str(caught.value)


def test_exactly_the_maximum_is_accepted(dense, tmp_path):
    path = _copy(dense, tmp_path)
    _write(path, [_predict_log(features=FEATURES[:1])] * 1000)
    assert run_warmup(Servable.load(path), path) == 1000


def test_file_that_is_not_tfrecord_is_data_loss(dense, tmp_path):
    path = _copy(dense, tmp_path)
    with open(os.path.join(path, WARMUP_PATH), "wb") as file:
        file.write(os.urandom(64))
    with pytest.raises(LoadError, match="verify your warmup data is in TFRecord"):
        run_warmup(Servable.load(path), path)


def test_truncated_file_is_data_loss(dense, tmp_path):
    path = _copy(dense, tmp_path)
    _write(path, [_predict_log(features=FEATURES)] * 3)
    target = os.path.join(path, WARMUP_PATH)
    with open(target, "rb") as file:
        data = file.read()
    with open(target, "wb") as file:
        file.write(data[: len(data) - 7])
    with pytest.raises(LoadError) as caught:
        run_warmup(Servable.load(path), path)
    assert caught.value.code == "DATA_LOSS"


def test_manager_warms_up_before_available(dense, tmp_path):
    base = tmp_path / "m"
    path = _copy(dense, base)
    os.rename(path, base / "1")
    seen = []

    def warmup(servable, path):
        seen.append(manager.status("m")[0]["state"])
        seen.append(manager.models["m"].servables.get(1))
        return run_warmup(servable, path)

    manager = ModelManager(
        [ModelConfig("m", str(base))], poll_wait_seconds=0, warmup=warmup
    )
    manager.poll()
    assert seen == [LOADING, None]  # no request could reach it during warm-up
    assert manager.status("m")[0]["state"] == AVAILABLE


def test_corrupt_warmup_never_replaces_a_working_version(dense, tmp_path):
    base = tmp_path / "m"
    base.mkdir()
    shutil.copytree(dense, base / "1")
    manager = ModelManager([ModelConfig("m", str(base))], poll_wait_seconds=0)
    manager.poll()
    path = _copy(dense, tmp_path)
    _write(path, [b"malformed_record"])
    os.rename(path, base / "2")
    manager.poll()
    status = {s["version"]: s for s in manager.status("m")}
    assert status["2"]["state"] == "END"
    assert status["2"]["status"]["error_code"] == "INVALID_ARGUMENT"
    assert "Failed to parse warmup record" in status["2"]["status"]["error_message"]
    assert manager.servable("m").version == 1


def test_server_replays_the_warmup_file(tmp_path):
    def export(path):
        export_dense(path)
        write_warmup_requests(
            path, [("serving_default", {"features": FEATURES})] * 3, "dense"
        )

    base = str(tmp_path / "dense")
    publish(export, base, 1)
    server = ServerProcess(
        "--model_name=dense",
        f"--model_base_path={base}",
        log_path=tmp_path / "server.log",
    )
    try:
        server.wait_available(["dense"])
        assert "replayed 3 warm-up records" in server.log_text()
    finally:
        server.stop()


def _export_tests():
    """tests/export/test_warmup_requests.py, for its small string-input models."""
    import importlib.util

    path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "export",
        "test_warmup_requests.py",
    )
    spec = importlib.util.spec_from_file_location("_export_warmup_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_server_replays_string_warmup_before_available(tmp_path):
    """The text classifier's and the translator's warm-up files (DT_STRING Predict
    requests, several signatures) replay in `kerasdl serve` before AVAILABLE."""
    from kerasdl import export

    builders = _export_tests()
    texts = [f"sentence number {i} about {w}" for i, w in enumerate("abcdefghij")]
    export.export_text_classifier(
        builders._text_classifier(texts),
        tmp_path / "intent",
        class_names=["a", "b", "c"],
        verification_texts=texts,
    )
    export.export_translator(
        builders._translator(), tmp_path / "translate", beam_size=2
    )
    config = tmp_path / "models.config"
    config.write_text(
        "model_config_list {\n"
        + "".join(
            f"  config {{ name: '{name}' base_path: '{tmp_path / name}' "
            "model_platform: 'tensorflow' }\n"
            for name in ("intent", "translate")
        )
        + "}\n"
    )
    server = ServerProcess(
        f"--model_config_file={config}", log_path=tmp_path / "server.log"
    )
    try:
        server.wait_available(["intent", "translate"])
        log = server.log_text()
        for name, records in (("intent", 2), ("translate", 4)):
            replayed = log.index(
                f"{name} version 1: replayed {records} warm-up records"
            )
            assert replayed < log.index(f"{name} version 1 is AVAILABLE"), log
        import requests

        reply = requests.post(
            f"{server.url}/v1/models/intent:predict",
            json={"instances": ["sentence number 3"]},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["predictions"][0]["label"] in ("a", "b", "c")
        reply = requests.post(
            f"{server.url}/v1/models/translate/versions/1:predict",
            json={"signature_name": "greedy_decode", "instances": ["Hello!"]},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        assert isinstance(reply.json()["predictions"][0], str)
    finally:
        server.stop()
