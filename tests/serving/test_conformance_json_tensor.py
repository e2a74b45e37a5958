"""TF Serving's `util/json_tensor_test.cc` cases, ported to kerasdl's codec.

Each test is one of TF Serving's request/expected-answer cases (the inputs and
the expected tensors, JSON or error substrings are theirs); see
tests/serving/testdata/SOURCE.md for the commit they come from.
"""

import decimal
import json

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from kerasdl.serving import codec
from kerasdl.serving.codec import RequestError
from kerasdl.serving.servable import TensorInfo

# --- helpers --------------------------------------------------------------------------


class _Signature:
    """A signature with only what the codec reads: named inputs of any shape."""

    name = "serving_default"
    checks_shapes = False

    def __init__(self, **dtypes):
        self.inputs = {}
        for key, dtype in sorted(dtypes.items()):
            proto = meta_graph_pb2.TensorInfo(
                name=f"{key}:0", dtype=types_pb2.DataType.Value(dtype)
            )
            proto.tensor_shape.unknown_rank = True
            self.inputs[key] = TensorInfo(key, proto)


def decode(body, **dtypes):
    data = codec.parse_json(body.encode() if isinstance(body, str) else body)
    return codec.decode_predict(data, _Signature(**dtypes))


def refused(body, message, **dtypes):
    with pytest.raises(RequestError, match=message) as error:
        decode(body, **dtypes)
    assert error.value.status == 400
    return str(error.value)


def encode(outputs, row_format):
    return json.loads(codec.dumps(codec.encode_predict(outputs, row_format)))


def text(outputs, row_format):
    return codec.dumps(codec.encode_predict(outputs, row_format)).decode()


def assert_tensor(array, dtype, values):
    assert array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(array, np.array(values, dtype=dtype))


# --- JSON -> tensors --------------------------------------------------------------------


def test_single_unnamed_tensor():
    inputs, row = decode('{"instances": [[1,2],[3,4],[5,6]]}', default="DT_INT32")
    assert row
    assert_tensor(inputs["default"], "int32", [[1, 2], [3, 4], [5, 6]])


def test_deeply_nested_well_formed_is_refused_allow_listed():
    # Allow-listed. TF Serving answers 200: its iterative parser accepts 500,000
    # levels of unused nesting beside the instances. kerasdl refuses any document
    # nested beyond the parser's limit with a clear 400, so a small body cannot
    # make the server build (and hold) half a million nested lists.
    body = '{"instances":[1], "nested":' + "[" * 500000 + "]" * 500000 + "}"
    refused(body, "nested too deeply", default="DT_INT32")


def test_deeply_nested_malformed():
    # TF Serving: 400 "'signature_name' key must be a string value"; kerasdl: 400
    # for the depth first (see above).
    body = '{"signature_name":' + "[" * 500000 + "]" * 500000 + "}"
    refused(body, "nested too deeply", default="DT_INT32")


# TF Serving's ParseJson reads the body with rapidjson's kParseStopWhenDoneFlag and
# kParseNanAndInfFlag: the first JSON document is the request and whatever follows
# it is ignored; NaN, Inf, Infinity, -Inf, -Infinity (and -NaN) are numbers.


@pytest.mark.parametrize(
    "trailer", [" xyz", '{"instances": [2.0]}', "]", "\x00", "\n\n[1, 2]"]
)
def test_content_after_the_document_is_ignored(trailer):
    inputs, row = decode('{"instances": [1.0]}' + trailer, default="DT_FLOAT")
    assert row
    assert_tensor(inputs["default"], "float32", [1.0])


def test_a_document_cut_short_is_still_refused():
    refused('{"instances": [1.0]', "JSON Parse error: ", default="DT_FLOAT")
    refused(" xyz", "JSON Parse error: Invalid value. at offset: 1", default="DT_FLOAT")


def test_rapidjson_non_finite_spellings():
    body = '{"instances": [Inf, -Inf, Infinity, -Infinity, NaN, -NaN]} trailer'
    inputs, _ = decode(body, default="DT_FLOAT")
    values = inputs["default"]
    assert values.dtype == np.float32
    assert values[:4].tolist() == [np.inf, -np.inf, np.inf, -np.inf]
    assert np.isnan(values[4:]).all()
    # Strings that spell them are left alone.
    data = codec.parse_json(b'{"signature_name": "Inf \\" -NaN", "instances": [Inf]}')
    assert data == {"signature_name": 'Inf " -NaN', "instances": [float("inf")]}


@pytest.mark.parametrize("token", ["Infinit", "Infx", "-Nan", "nan", "inf"])
def test_misspelled_non_finite_values_are_refused(token):
    refused(f'{{"instances": [{token}]}}', "JSON Parse error: ", default="DT_FLOAT")


def test_allow_listed_invalid_utf8_is_refused():
    # Allow-listed. TF Serving's rapidjson does not validate the encoding, so raw
    # non-UTF-8 bytes inside a string reach a DT_STRING input as they are; kerasdl
    # answers 400 (api_rest.md: JSON is UTF-8, binary values travel as b64).
    refused(
        b'{"instances": ["caf\xe9"]}',
        "JSON Parse error: Invalid encoding in string. at offset: 19",
        default="DT_STRING",
    )


def test_allow_listed_a_repeated_key_takes_the_last_value():
    # Allow-listed. rapidjson's FindMember takes the first of repeated keys;
    # Python's JSON parsers (and so kerasdl) the last.
    inputs, _ = decode('{"instances": [1.0], "instances": [2.0, 3.0]}', x="DT_FLOAT")
    assert_tensor(inputs["x"], "float32", [2.0, 3.0])


def test_mixed_input_for_float_tensor():
    inputs, _ = decode(
        '{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}', default="DT_FLOAT"
    )
    assert_tensor(inputs["default"], "float32", [1, 2, 3, 4, 5.003, 0.007, 0])


def test_mixed_input_for_double_tensor():
    inputs, _ = decode(
        '{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}', default="DT_DOUBLE"
    )
    assert_tensor(inputs["default"], "float64", [1, 2, 3, 4, 0.662, 0, 0])


@pytest.mark.parametrize("number", ["1435774380", "1435774380.0"])
def test_float_tensor_with_precision_loss(number):
    inputs, _ = decode(f'{{"instances": [{number}]}}', default="DT_FLOAT")
    assert_tensor(inputs["default"], "float32", [1435774380])


@pytest.mark.parametrize("sign", [1, -1])
def test_float_tensor_that_exceeds_max_returns_inf(sign):
    body = json.dumps({"instances": [sign * np.finfo(np.float64).max]})
    inputs, _ = decode(body, default="DT_FLOAT")
    assert_tensor(inputs["default"], "float32", [sign * np.inf])


@pytest.mark.parametrize("sign", [1, -1])
def test_float_tensor_that_exceeds_min_returns_zero(sign):
    body = json.dumps({"instances": [sign * np.finfo(np.float64).tiny]})
    inputs, _ = decode(body, default="DT_FLOAT")
    assert_tensor(inputs["default"], "float32", [0.0])
    assert np.signbit(inputs["default"][0]) == (sign < 0)


def test_single_unnamed_tensor_with_signature():
    data = codec.parse_json(
        b'{"signature_name": "predict_images", "instances": [[1,2]]}'
    )
    assert data["signature_name"] == "predict_images"
    inputs, _ = codec.decode_predict(data, _Signature(default="DT_INT32"))
    assert_tensor(inputs["default"], "int32", [[1, 2]])


def test_tensor_from_non_null_terminated_buffer():
    body = b'{"instances": [[1,2],[3,4],[5,6]]}X'
    inputs, _ = decode(body[:-1], default="DT_INT32")
    assert_tensor(inputs["default"], "int32", [[1, 2], [3, 4], [5, 6]])


def test_single_unnamed_tensor_base64_scalars():
    inputs, _ = decode(
        '{"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}', default="DT_STRING"
    )
    assert inputs["default"].tolist() == [b"hello", b"world"]


def test_single_unnamed_tensor_base64_lists():
    inputs, _ = decode(
        '{"instances": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}',
        default="DT_STRING",
    )
    assert inputs["default"].tolist() == [[b"hello"], [b"world"]]


def test_single_named_tensor_base64():
    inputs, _ = decode(
        '{"instances": [{"default": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}]}',
        default="DT_STRING",
    )
    assert inputs["default"].shape == (1, 2, 1)
    assert inputs["default"].tolist() == [[[b"hello"], [b"world"]]]


def test_multiple_named_tensor():
    inputs, row = decode(
        """{"instances": [
            {"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"],
             "float_tensor": [1.0, NaN], "dbl_tensor": [NaN]},
            {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"],
             "float_tensor": [2.0, Infinity], "dbl_tensor": [2.0]}]}""",
        int_tensor="DT_INT32",
        str_tensor="DT_STRING",
        float_tensor="DT_FLOAT",
        dbl_tensor="DT_DOUBLE",
    )
    assert row
    assert_tensor(
        inputs["int_tensor"],
        "int32",
        [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]],
    )
    assert inputs["str_tensor"].tolist() == [[b"foo", b"bar"], [b"baz", b"bat"]]
    assert_tensor(inputs["float_tensor"], "float32", [[1.0, np.nan], [2.0, np.inf]])
    assert_tensor(inputs["dbl_tensor"], "float64", [[np.nan], [2.0]])


def test_single_unnamed_tensor_columnar_format():
    for body in (
        '{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]]}}',
        '{"inputs": [[[1,2],[3,4],[5,6]]]}',
    ):
        inputs, row = decode(body, int_tensor="DT_INT32")
        assert not row
        assert_tensor(inputs["int_tensor"], "int32", [[[1, 2], [3, 4], [5, 6]]])


def test_multiple_named_tensor_columnar_format():
    inputs, row = decode(
        """{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]], "str_tensor": ["foo", "bar"],
                       "bin_tensor": {"b64": "aGVsbG8="}}}""",
        int_tensor="DT_INT32",
        str_tensor="DT_STRING",
        bin_tensor="DT_STRING",
    )
    assert not row
    assert_tensor(inputs["int_tensor"], "int32", [[[1, 2], [3, 4], [5, 6]]])
    assert inputs["str_tensor"].tolist() == [b"foo", b"bar"]
    assert inputs["bin_tensor"].shape == ()
    assert inputs["bin_tensor"].item() == b"hello"


@pytest.mark.parametrize(
    "body, message",
    [
        ("", "document is empty"),
        (
            '{"signature_name": 5, "instances": [[1,2],[3,4],[5,6,7]]}',
            "must be a string value",
        ),
        (
            '{"instances": [[1,2],[3,4],[5,6,7]], "inputs": [[1,2],[3,4],[5,6,7]]}',
            "Not formatted correctly",
        ),
        ('{"instances": [[1,2],[3,4],[5,6,7]]}', "Expecting tensor size"),
        ('{"instances": [[1,2],[3,4],[[5,6]]]}', "Expecting shape"),
        ('{"instances": [1, [1]]}', "Expecting shape"),
        ('{"instances": [[1,2],["a", "b"]]}', "not of expected type"),
    ],
)
def test_single_unnamed_tensor_errors(body, message):
    refused(body, message, default="DT_INT32")


@pytest.mark.parametrize(
    "instances, message",
    [
        (
            (
                '[{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]},'
                ' {"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["baz", "bat"]}]'
            ),
            "Expecting shape",
        ),
        (
            (
                '[{"int_tensor": [[1,2],[3,4],[5,6],[7,8]], "str_tensor": ["foo", "bar"]},'
                ' {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"]}]'
            ),
            "Expecting tensor size",
        ),
        (
            (
                '[{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]},'
                " [1, 20, 30],"
                ' {"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["baz", "bat"]}]'
            ),
            "Expecting object but got list",
        ),
    ],
)
def test_multiple_named_tensor_errors(instances, message):
    refused(
        f'{{"instances": {instances}}}',
        message,
        int_tensor="DT_INT32",
        str_tensor="DT_STRING",
    )


def test_multiple_named_tensor_errors_value_after_list():
    refused(
        '{"instances": [["baz", "bar"], {"str_tensor": ["baz", "bat"]}]}',
        "Expecting value/list but got object",
        str_tensor="DT_STRING",
    )


# --- tensors -> JSON --------------------------------------------------------------------

INT_2x3x2 = np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32)
WORDS = np.array([[b"hello", b"world"], [b"tf", b"serving"]], dtype=object)


def test_from_json_single_tensor():
    expected = [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]
    assert encode({"int_tensor": INT_2x3x2}, True) == {"predictions": expected}
    assert encode({"int_tensor": INT_2x3x2}, False) == {"outputs": expected}


def test_from_json_single_scalar_tensor():
    values = np.array([1, 2, 3, 4, 5], np.int32)
    assert encode({"int_tensor": values}, True) == {"predictions": [1, 2, 3, 4, 5]}
    assert encode({"int_tensor": values}, False) == {"outputs": [1, 2, 3, 4, 5]}


def test_from_json_single_bytes_tensor():
    assert encode({"str_tensor_bytes": WORDS}, True) == {
        "predictions": [
            [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
            [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}],
        ]
    }


def test_from_json_single_float_tensor_six_digit_precision():
    values = np.array([[9000000, 999999, 0.5], [0.0003, 0.00003, 555557.5]], np.float32)
    written = text({"float_tensor": values}, True)
    # TF Serving writes %g's six digits when they read back as the same float32
    # ("9e+06", "3e-05"); kerasdl writes the same numbers in Python's notation.
    assert (
        written == '{"predictions":[[9000000.0,999999.0,0.5],[0.0003,3e-05,555557.5]]}'
    )
    parsed = json.loads(written)["predictions"]
    np.testing.assert_array_equal(np.float32(parsed), values)


def test_float32_outputs_are_written_with_float32_digits():
    assert text({"y": np.float32([2.05, 0.1, 1 / 3])}, True) == (
        '{"predictions":[2.05,0.1,0.333333343]}'
    )


def test_float64_outputs_are_written_as_float64():
    assert text({"y": np.float64([2.05, 0.1, 1 / 3])}, True) == (
        '{"predictions":[2.05,0.1,0.3333333333333333]}'
    )


def test_float16_outputs_are_written_with_float16_digits_allow_listed():
    # Allow-listed. TF Serving answers 400 "Failed to write JSON value for tensor
    # type: half" (json_tensor.cc writes no DT_HALF); kerasdl writes the values
    # with the fewest digits that read back as the same float16 (0.1, not
    # float16's exact 0.0999755859375 or float32's 0.0999755859).
    values = np.float16([[0.1, 1 / 3, 2.05], [65504, 6e-8, -1000.5], [0, -0.0, 1]])
    assert text({"y": values}, False) == (
        '{"outputs":[[0.1,0.3333,2.05],[65500.0,6e-08,-1000.5],[0.0,-0.0,1.0]]}'
    )
    parsed = json.loads(text({"y": values}, True))["predictions"]
    assert np.float16(parsed).tobytes() == values.tobytes()
    assert text({"y": np.float16([np.nan, np.inf, -np.inf])}, True) == (
        '{"predictions":[NaN,Infinity,-Infinity]}'
    )


def test_bfloat16_outputs_are_written_with_bfloat16_digits_allow_listed():
    # Allow-listed, as float16: TF Serving answers 400 "... tensor type: bfloat16".
    import ml_dtypes

    values = np.array(
        [0.1, 1 / 3, 2.05, 65536, 6e-8, -1000, np.nan, -np.inf], ml_dtypes.bfloat16
    )
    written = text({"y": values}, True)
    assert written == (
        '{"predictions":[0.1,0.334,2.05,65500.0,6e-08,-1000.0,NaN,-Infinity]}'
    )
    every = np.arange(2**16, dtype=np.uint16).view(ml_dtypes.bfloat16)
    finite = every[np.isfinite(every.astype(np.float32))]
    parsed = json.loads(text({"y": finite}, True))["predictions"]
    assert np.array(parsed).astype(ml_dtypes.bfloat16).tobytes() == finite.tobytes()
    digits = {
        len(decimal.Decimal(repr(v)).normalize().as_tuple().digits) for v in parsed
    }
    assert max(digits) == 4  # bfloat16's max_digits10


def test_half_precision_and_uint16_inputs_are_read_allow_listed():
    # Allow-listed. TF Serving answers 501 "Conversion of JSON Value: 1.5 to type:
    # half" (AddValueToTensor has no DT_HALF, DT_BFLOAT16 or DT_UINT16 case);
    # kerasdl reads them as it reads float32 and int32.
    import ml_dtypes

    inputs, _ = decode('{"instances": [1.5, 0.1]}', default="DT_HALF")
    assert_tensor(inputs["default"], "float16", [1.5, 0.1])
    inputs, _ = decode('{"instances": [1.5, 0.1]}', default="DT_BFLOAT16")
    assert inputs["default"].dtype == ml_dtypes.bfloat16
    assert inputs["default"].tobytes() == (
        np.array([1.5, 0.1], ml_dtypes.bfloat16).tobytes()
    )
    inputs, _ = decode('{"instances": [0, 65535]}', default="DT_UINT16")
    assert_tensor(inputs["default"], "uint16", [0, 65535])
    refused('{"instances": [65536]}', "out of its range", default="DT_UINT16")


def test_uint16_outputs_are_written_allow_listed():
    # Allow-listed. TF Serving answers 400 "... tensor type: uint16" (its writer
    # has no DT_UINT16 case); kerasdl writes the integers.
    assert text({"y": np.uint16([0, 7, 65535])}, True) == '{"predictions":[0,7,65535]}'


def test_allow_listed_non_utf8_string_outputs_are_written_as_b64():
    # Allow-listed. TF Serving writes a DT_STRING output's bytes into the JSON as
    # they are (its writer does not check the encoding), so a non-UTF-8 value makes
    # the whole answer invalid JSON; kerasdl writes that value as {"b64": ...}
    # (the other values of the tensor stay text, as without the `_bytes` suffix).
    values = np.array([b"caf\xc3\xa9", b"\xff\x00"], dtype=object)
    assert encode({"label": values}, True) == {
        "predictions": ["caf\u00e9", {"b64": "/wA="}]
    }


def test_complex_outputs_are_refused_as_tf_serving():
    for dtype in ("complex64", "complex128"):
        with pytest.raises(
            RequestError, match=f"Failed to write JSON value for tensor type: {dtype}"
        ):
            text({"y": np.zeros(2, dtype)}, True)


def test_from_json_single_float_tensor_non_finite():
    values = np.array([[np.nan, np.inf], [3, -np.inf]], np.float32)
    assert text({"float_tensor": values}, True) == (
        '{"predictions":[[NaN,Infinity],[3.0,-Infinity]]}'
    )


def test_from_json_single_tensor_errors():
    with pytest.raises(RequestError, match="empty tensor map"):
        codec.encode_predict({}, True)
    with pytest.raises(RequestError, match="tensor type: complex64"):
        codec.encode_predict({"tensor": np.complex64([1, 2])}, True)
    with pytest.raises(RequestError, match="no shape information"):
        codec.encode_predict({"tensor": np.array(1, np.int32)}, True)


def test_from_json_multiple_named_tensors():
    outputs = {
        "int_tensor": INT_2x3x2,
        "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"bat"]], dtype=object),
        "float_tensor": np.float32([[1.0], [2.0]]),
        "double_scalar_tensor": np.float64([8.0, 9.0]),
        "str_tensor_bytes": WORDS,
    }
    assert encode(outputs, True) == {
        "predictions": [
            {
                "double_scalar_tensor": 8.0,
                "float_tensor": [1.0],
                "int_tensor": [[1, 2], [3, 4], [5, 6]],
                "str_tensor": ["foo", "bar"],
                "str_tensor_bytes": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
            },
            {
                "double_scalar_tensor": 9.0,
                "float_tensor": [2.0],
                "int_tensor": [[7, 8], [9, 0], [1, 2]],
                "str_tensor": ["baz", "bat"],
                "str_tensor_bytes": [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}],
            },
        ]
    }
    assert encode(outputs, False) == {
        "outputs": {
            "double_scalar_tensor": [8.0, 9.0],
            "float_tensor": [[1.0], [2.0]],
            "int_tensor": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]],
            "str_tensor": [["foo", "bar"], ["baz", "bat"]],
            "str_tensor_bytes": [
                [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
                [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}],
            ],
        }
    }


def test_from_json_multiple_named_tensors_errors():
    outputs = {
        "int_tensor": np.arange(6, dtype=np.int32).reshape(2, 3),
        "str_tensor": np.array([[b"foo", b"bar", b"baz"]], dtype=object),
    }
    with pytest.raises(RequestError, match="inconsistent batch size"):
        codec.encode_predict(outputs, True)


def test_from_json_single_zero_batch_tensor():
    assert encode({"int_tensor": np.zeros((0, 2), np.int32)}, True) == {
        "predictions": []
    }


def test_from_json_multiple_zero_batch_tensors():
    outputs = {
        "str_tensor": np.empty((0, 1, 2), dtype=object),
        "float_tensor": np.zeros((0, 3, 4), np.float32),
    }
    assert encode(outputs, True) == {"predictions": []}


def test_from_json_multiple_zero_batch_tensors_errors():
    outputs = {
        "int_tensor": np.zeros((0, 2), np.int32),
        "str_tensor": np.array([[b"foo", b"bar"]], dtype=object),
    }
    with pytest.raises(RequestError, match="inconsistent batch size"):
        codec.encode_predict(outputs, True)


# --- classify / regress requests and results ----------------------------------------


class _ExampleSignature:
    name = "custom_signture"

    def __init__(self):
        self.outputs = {"scores": None, "outputs": None}
        proto = meta_graph_pb2.TensorInfo(
            name="tf_example:0", dtype=types_pb2.DT_STRING
        )
        self.inputs = {"inputs": TensorInfo("inputs", proto)}


def examples(body, method="classify"):
    import tensorflow as tf

    data = codec.parse_json(body.encode())
    inputs, count = codec.decode_examples(data, _ExampleSignature(), method)
    parsed = [tf.train.Example.FromString(s) for s in inputs["inputs"]]
    assert len(parsed) == count

    def values(feature):
        kind = feature.WhichOneof("kind")
        return kind, list(getattr(feature, kind).value) if kind else []

    return [{k: values(v) for k, v in e.features.feature.items()} for e in parsed]


@pytest.mark.parametrize("method", ["classify", "regress"])
def test_request_no_context(method):
    assert examples(
        """{"examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0], "age": 20},
                         {"names": ["baz"], "ratings": 6.0}]}""",
        method,
    ) == [
        {
            "names": ("bytes_list", [b"foo", b"bar"]),
            "ratings": ("float_list", [8.0, 9.0]),
            "age": ("int64_list", [20]),
        },
        {"names": ("bytes_list", [b"baz"]), "ratings": ("float_list", [6.0])},
    ]


@pytest.mark.parametrize("method", ["classify", "regress"])
def test_request_with_context_and_signature(method):
    # TF Serving sends the context beside the examples (ExampleListWithContext);
    # kerasdl merges it into each serialized example, which is what the graph
    # then reads.
    got = examples(
        """{"signature_name": "custom_signture",
            "context": {"query": "pizza", "location": ["sfo"]},
            "examples": [
              {"names": ["foo", "bar"], "ratings": [8.0, 9.0, NaN, Infinity], "age": 20},
              {"names": ["baz", {"b64": "aGVsbG8="}], "ratings": 6.0,
               "intboolmix": [1, true, false]},
              {"names": "bar", "ratings": -Infinity}]}""",
        method,
    )
    context = {
        "query": ("bytes_list", [b"pizza"]),
        "location": ("bytes_list", [b"sfo"]),
    }
    assert got[0]["names"] == ("bytes_list", [b"foo", b"bar"])
    kind, ratings = got[0]["ratings"]
    assert kind == "float_list" and ratings[:2] == [8.0, 9.0]
    assert np.isnan(ratings[2]) and ratings[3] == np.inf
    assert got[0]["age"] == ("int64_list", [20])
    assert got[1] == {
        **context,
        "names": ("bytes_list", [b"baz", b"hello"]),
        "ratings": ("float_list", [6.0]),
        "intboolmix": ("int64_list", [1, 1, 0]),
    }
    assert got[2] == {
        **context,
        "names": ("bytes_list", [b"bar"]),
        "ratings": ("float_list", [-np.inf]),
    }


@pytest.mark.parametrize("method", ["classify", "regress"])
@pytest.mark.parametrize(
    "body, message",
    [
        (
            '{"signature_name": ["hello"], "examples": [{"names": ["foo", "bar"]}]}',
            "'signature_name' key must be a string",
        ),
        ('{"context": [{"names": ["foo", "bar"]}]}', "Example must be JSON object"),
        ('{"examples": {"names": ["foo", "bar"]}}', "list/array"),
        ('{"examples": [[{"names": ["foo", "bar"]}]]}', "Example must be JSON object"),
        (
            '{"examples": [{"names": [10, null]}]}',
            "names has element with unexpected JSON type: Null",
        ),
        (
            '{"examples": [{"names": [10, 10.0]}]}',
            "feature: names expecting type: int64",
        ),
        (
            '{"examples": [{"names": [10, {"test": 10}]}]}',
            "names has element with unexpected JSON type: Object",
        ),
        (
            '{"examples": [{"names": [[10], 20]}]}',
            "names has element with unexpected JSON type: Array",
        ),
        (
            '{"examples": [{"names": [20, 18446744073709551603]}]}',
            "Only int64_t is supported",
        ),
    ],
)
def test_classify_regress_json_errors(method, body, message):
    with pytest.raises(RequestError, match=message):
        examples(body, method)


def test_json_from_classification_result():
    outputs = {
        "classes": np.array([[b"car", b"bike", b"bus"]] * 2, dtype=object),
        "scores": np.float32([[0.2, 0.7, 0.1], [0.7, 0.1, 0.2]]),
    }
    assert json.loads(codec.dumps(codec.encode_classify(outputs, 2))) == {
        "results": [
            [["car", 0.2], ["bike", 0.7], ["bus", 0.1]],
            [["car", 0.7], ["bike", 0.1], ["bus", 0.2]],
        ]
    }


def test_json_from_regression_result():
    outputs = {"outputs": np.float32([0.2, 0.9, 1.0])}
    assert codec.dumps(codec.encode_regress(outputs, 3)) == b'{"results":[0.2,0.9,1.0]}'


def test_json_from_regression_result_with_non_finite():
    outputs = {"outputs": np.float32([0.2, np.inf, 1.0, -np.inf, np.nan])}
    assert codec.dumps(codec.encode_regress(outputs, 5)) == (
        b'{"results":[0.2,Infinity,1.0,-Infinity,NaN]}'
    )


def test_status_error_json():
    for message in ('Bad key: "key"', "Bad key: 'key'"):
        assert json.loads(codec.dumps({"error": message})) == {"error": message}


# --- beyond TF Serving's file: the exactness the issue found broken -----------------


@pytest.mark.parametrize(
    "body, dtype, expected",
    [
        ('{"inputs": [0, 9223372036854775807]}', "DT_INT64", [0, 2**63 - 1]),
        ('{"inputs": [-1, 9223372036854775807]}', "DT_INT64", [-1, 2**63 - 1]),
        ('{"inputs": [0, 18446744073709551615]}', "DT_UINT64", [0, 2**64 - 1]),
        ('{"inputs": [[1], [18446744073709551615]]}', "DT_UINT64", [[1], [2**64 - 1]]),
    ],
)
def test_64_bit_integers_are_exact(body, dtype, expected):
    inputs, _ = decode(body, x=dtype)
    assert inputs["x"].tolist() == expected


@pytest.mark.parametrize(
    "body, dtype",
    [
        ('{"inputs": [0, 9223372036854775808]}', "DT_INT64"),
        ('{"inputs": [0, -1, 18446744073709551615]}', "DT_UINT64"),
        ('{"inputs": [-1]}', "DT_UINT64"),
        ('{"inputs": [1, 2.5]}', "DT_INT64"),
        ('{"inputs": [1, true]}', "DT_INT32"),
        ('{"inputs": [true, 1]}', "DT_BOOL"),
    ],
)
def test_integers_that_do_not_fit_are_refused(body, dtype):
    refused(body, "is not of expected type", x=dtype)
