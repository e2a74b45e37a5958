"""float16 / bfloat16 / uint16 tensors through a real `kerasdl serve`, REST and gRPC.

TF Serving's REST API cannot carry them (json_tensor.cc: 501 "Conversion of JSON
Value: ... to type: half" for inputs, 400 "Failed to write JSON value for tensor
type: half" for outputs); kerasdl reads and writes them, floats with the fewest
digits that read back as the same value of their dtype (allow-listed in
docs/serving.md). Its gRPC API answers as TF Serving's does: `Tensor.AsProtoField`
puts DT_HALF and DT_BFLOAT16 values, as their 16 bits, in `half_val`.
"""

import grpc
import ml_dtypes
import numpy as np
import pytest
import requests
import tensorflow as tf
from conftest import ServerProcess, free_port, publish
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from kerasdl.serving import grpc_codec


class _Half(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float16, name="x")])
    def serve(self, x):
        return {
            "half": x + x,
            "bfloat": tf.cast(x, tf.bfloat16),
            "whole": tf.cast(x, tf.uint16),
        }


def _export(path):
    module = _Half()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


X = [0.1, 1 / 3, 2.05]
HALF = np.float16(X) + np.float16(X)
BFLOAT = np.float16(X).astype(np.float32).astype(ml_dtypes.bfloat16)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("half_precision")
    publish(_export, str(folder / "h"), 1)
    process = ServerProcess(
        "--model_name=h",
        f"--model_base_path={folder / 'h'}",
        f"--port={free_port()}",
        log_path=folder / "server.log",
    )
    try:
        yield process.wait_available(["h"])
    finally:
        process.stop()


def _grpc_port(server):
    flag = next(a for a in server.process.args if a.startswith("--port="))
    return int(flag.split("=")[1])


def test_rest_writes_half_precision_with_their_own_shortest_digits(server):
    reply = requests.post(
        f"{server.url}/v1/models/h:predict", json={"inputs": X}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "outputs": {
            "half": [0.2, 0.6665, 4.1],
            "bfloat": [0.1, 0.334, 2.05],
            "whole": [0, 0, 2],
        }
    }
    outputs = reply.json()["outputs"]
    assert np.float16(outputs["half"]).tobytes() == HALF.tobytes()
    bfloat = np.array(outputs["bfloat"]).astype(ml_dtypes.bfloat16)
    assert bfloat.tobytes() == BFLOAT.tobytes()


def test_grpc_answers_half_val_as_tf_serving(server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{_grpc_port(server)}")
    )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "h"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.float16(X)))
    response = stub.Predict(request, 30.0)
    half, bfloat = response.outputs["half"], response.outputs["bfloat"]
    assert half.dtype == types_pb2.DT_HALF
    assert bfloat.dtype == types_pb2.DT_BFLOAT16
    for proto, values in ((half, HALF), (bfloat, BFLOAT)):
        assert not proto.tensor_content
        assert [d.size for d in proto.tensor_shape.dim] == [3]
        assert list(proto.half_val) == values.view(np.uint16).tolist()
        assert tf.make_ndarray(proto).tobytes() == values.tobytes()
    whole = response.outputs["whole"]
    assert whole.dtype == types_pb2.DT_UINT16
    assert list(whole.int_val) == [0, 0, 2]


def test_to_proto_matches_tensorflow_as_proto_field():
    # TensorFlow's AsProtoField: DT_HALF and DT_BFLOAT16 as 16-bit patterns in
    # half_val (no tensor_content), which tf.make_ndarray reads back exactly.
    values = np.float16([0.1, -0.0, np.inf, 65504])
    ours = grpc_codec.to_proto(values)
    assert ours.dtype == types_pb2.DT_HALF and not ours.tensor_content
    assert list(ours.half_val) == values.view(np.uint16).tolist()
    assert tf.make_ndarray(ours).tobytes() == values.tobytes()
    bfloat = values.astype(np.float32).astype(ml_dtypes.bfloat16)
    ours = grpc_codec.to_proto(bfloat)
    assert ours.dtype == types_pb2.DT_BFLOAT16
    assert list(ours.half_val) == bfloat.view(np.uint16).tolist()
    assert tf.make_ndarray(ours).tobytes() == bfloat.tobytes()
