"""Optional inputs: a SignatureDef's `defaults` fill what a request leaves out.

TF Serving's gRPC Predict fills a left-out input from the signature's defaults
(`predict_util.cc`'s `VerifyRequestInputsSize`, then TensorFlow's
`GetInputValues`); `kerasdl serve` does the same over gRPC and, as an addition
TF Serving's REST API does not make, over REST.
"""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import predict_pb2

from kerasdl.serving import codec, grpc_codec
from kerasdl.serving.codec import RequestError
from kerasdl.serving.servable import Signature


def _signature(defaults=True):
    """`prompt` string [-1] (required), `count` int32 [] and `scale` float [] (defaults)."""
    proto = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    proto.inputs["prompt"].name = "prompt:0"
    proto.inputs["prompt"].dtype = tf.string.as_datatype_enum
    proto.inputs["prompt"].tensor_shape.dim.add(size=-1)
    for key, dtype in (("count", tf.int32), ("scale", tf.float32)):
        proto.inputs[key].name = f"{key}:0"
        proto.inputs[key].dtype = dtype.as_datatype_enum
        proto.inputs[key].tensor_shape.SetInParent()
    proto.outputs["out"].name = "out:0"
    proto.outputs["out"].dtype = tf.string.as_datatype_enum
    if defaults:
        proto.defaults["count"].CopyFrom(tf.make_tensor_proto(np.int32(7)))
        proto.defaults["scale"].CopyFrom(tf.make_tensor_proto(np.float32(0.5)))
    return Signature("serving_default", proto, None)


def test_signature_reads_its_defaults():
    signature = _signature()
    assert (
        signature.defaults["count"] == 7
        and signature.defaults["count"].dtype == np.int32
    )
    assert signature.defaults["scale"] == np.float32(0.5)
    metadata = signature.to_json()["defaults"]
    assert sorted(metadata) == ["count", "scale"]
    assert metadata["count"]["dtype"] == "DT_INT32"
    assert metadata["count"]["int_val"] == [7]
    assert _signature(defaults=False).to_json()["defaults"] == {}


def test_rest_columnar_request_fills_left_out_inputs():
    inputs, row_format = codec.decode_predict(
        {"inputs": {"prompt": ["a", "b"], "count": 3}}, _signature()
    )
    assert not row_format
    assert inputs["prompt"].tolist() == [b"a", b"b"]
    assert inputs["count"] == 3 and inputs["count"].dtype == np.int32
    assert inputs["scale"] == np.float32(0.5)


def test_rest_plain_list_goes_to_the_only_input_without_a_default():
    inputs, row_format = codec.decode_predict({"instances": ["a", "b"]}, _signature())
    assert row_format
    assert inputs["prompt"].tolist() == [b"a", b"b"]
    assert (inputs["count"], inputs["scale"]) == (7, np.float32(0.5))
    inputs, _ = codec.decode_predict({"inputs": ["a"]}, _signature())
    assert inputs["prompt"].tolist() == [b"a"] and inputs["count"] == 7


def test_rest_row_objects_may_leave_out_inputs_with_defaults():
    inputs, _ = codec.decode_predict(
        {"instances": [{"prompt": "a"}, {"prompt": "b"}]}, _signature()
    )
    assert inputs["prompt"].tolist() == [b"a", b"b"] and inputs["count"] == 7


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {"inputs": {"count": 3}},
            (
                "Missing named input: prompt in 'inputs' object. (missing input(s) "
                "['prompt']; signature 'serving_default' takes ['count', 'prompt', "
                "'scale']; optional: ['count', 'scale'])"
            ),
        ),
        (
            {"instances": [{"count": 3}]},
            (
                "keys must be equal to: count,prompt,scale (missing input(s) ['prompt']; "
                "optional: ['count', 'scale'])"
            ),
        ),
        (
            {"instances": [{"prompt": "a"}, {"prompt": "b", "count": 2}]},
            "keys must be equal to element 0's: prompt",
        ),
    ],
)
def test_rest_refuses_a_left_out_input_without_a_default(body, message):
    with pytest.raises(RequestError) as caught:
        codec.decode_predict(body, _signature())
    assert message in str(caught.value)


def test_rest_without_defaults_keeps_tf_servings_rules():
    signature = _signature(defaults=False)
    with pytest.raises(RequestError, match="instances is a plain list"):
        codec.decode_predict({"instances": ["a"]}, signature)
    with pytest.raises(RequestError, match="Missing named input: count"):
        codec.decode_predict({"inputs": {"prompt": ["a"]}}, signature)


def _request(**inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def test_grpc_request_fills_left_out_inputs():
    arrays = grpc_codec.predict_inputs(
        _request(prompt=np.array([b"a"], object), scale=np.float32(2.0)),
        _signature(),
        1 << 20,
    )
    assert arrays["prompt"].tolist() == [b"a"]
    assert arrays["scale"] == np.float32(2.0) and arrays["count"] == 7


@pytest.mark.parametrize(
    "inputs, message",
    [
        (
            {"count": np.int32(1)},
            (
                "Signature input alias: prompt(feed name: prompt:0) not found in request "
                "and no default value provided. Inputs expected to be in the request "
                "{count}, or default input alias set: {count,scale}"
            ),
        ),
        (
            {
                "prompt": np.array([b"a"], object),
                "count": np.int32(1),
                "typo": np.int32(1),
            },
            (
                "Inputs contains invalid name. Used request inputs: count,prompt, "
                "request input: count,prompt,typo"
            ),
        ),
        (
            {"prompt": np.array([b"a"], object), "typo": np.int32(1)},
            (
                "Inputs contains invalid name. Used request inputs: prompt, request "
                "input: prompt,typo"
            ),
        ),
    ],
)
def test_grpc_errors_are_tensorflows(inputs, message):
    with pytest.raises(grpc_codec.StatusError) as caught:
        grpc_codec.predict_inputs(_request(**inputs), _signature(), 1 << 20)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(caught.value) == message


def test_grpc_without_defaults_needs_every_input():
    with pytest.raises(grpc_codec.StatusError, match="input size does not match"):
        grpc_codec.predict_inputs(
            _request(prompt=np.array([b"a"], object)), _signature(False), 1 << 20
        )


def test_grpc_metadata_signature_def_carries_the_defaults():
    proto = grpc_codec.signature_def(_signature())
    assert sorted(proto.defaults) == ["count", "scale"]
    assert tf.make_ndarray(proto.defaults["count"]) == 7
