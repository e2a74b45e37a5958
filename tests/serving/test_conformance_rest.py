"""TF Serving's REST cases against a real `kerasdl serve`.

The request/expected-answer cases of TF Serving's
`model_servers/http_rest_api_handler_test.cc` and `g3doc/api_rest.md`, served from
TF Serving's own test SavedModels (tests/serving/testdata, see SOURCE.md), plus
models with the signatures those cases assume (a scalar string signature,
64-bit integers, several named inputs, TF2 classify/regress signatures). One
server for the module.
"""

import json
import os

import pytest
import requests
import tensorflow as tf
from conftest import ServerProcess, publish

TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata")
HALF_PLUS_TWO = "saved_model_half_plus_two_2_versions"


class _Cases(tf.Module):
    """Signatures the TF Serving cases assume, written by tf.saved_model.save."""

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="text")])
    def str(self, text):
        return {"output": tf.strings.upper(text)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def complex(self, x):
        return {"output": tf.complex(x, -x)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="x")])
    def int64(self, x):
        return {"output": tf.identity(x)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.uint64, name="x")])
    def uint64(self, x):
        return {"output": tf.identity(x)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="tag"),
            tf.TensorSpec([None, 5], tf.int32, name="signal"),
            tf.TensorSpec([None, 2, 2], tf.int32, name="sensor"),
        ]
    )
    def multi(self, tag, signal, sensor):
        return {
            "tag": tag,
            "signal_sum": tf.reduce_sum(signal, axis=1),
            "sensor_sum": tf.reduce_sum(sensor, axis=[1, 2]),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_objects(self, inputs):
        features = tf.io.parse_example(
            inputs,
            {
                "image": tf.io.FixedLenFeature([], tf.string),
                "caption": tf.io.FixedLenFeature([], tf.string),
            },
        )
        length = tf.cast(tf.strings.length(features["image"]), tf.float32)
        return {"classes": features["caption"][:, None], "scores": length[:, None]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress_ints(self, inputs):
        features = tf.io.parse_example(
            inputs, {"intboolmix": tf.io.VarLenFeature(tf.int64)}
        )
        total = tf.sparse.reduce_sum(features["intboolmix"], axis=1)
        return {"outputs": tf.cast(total, tf.float32)}


def export_cases(path):
    module = _Cases()
    names = ["str", "complex", "int64", "uint64", "multi"]
    names += ["classify_objects", "regress_ints"]
    tf.saved_model.save(
        module, path, signatures={name: getattr(module, name) for name in names}
    )


CONFIG = """
model_config_list {{
  config {{
    name: '{half}'
    base_path: '{testdata}/{half}'
    model_platform: 'tensorflow'
    model_version_policy {{ specific {{ versions: 123 }} }}
    version_labels {{ key: 'Version_Label' value: 123 }}
  }}
  config {{
    name: 'saved_model_half_plus_three'
    base_path: '{testdata}/saved_model_half_plus_three'
  }}
  config {{
    name: 'saved_model_half_plus_two_tf2_cpu'
    base_path: '{testdata}/saved_model_half_plus_two_tf2_cpu'
  }}
  config {{ name: 'cases' base_path: '{cases}' }}
}}
"""


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conformance")
    publish(export_cases, str(folder / "cases"), 1)
    config = folder / "models.config"
    config.write_text(
        CONFIG.format(half=HALF_PLUS_TWO, testdata=TESTDATA, cases=folder / "cases")
    )
    process = ServerProcess(
        f"--model_config_file={config}", log_path=folder / "server.log"
    )
    try:
        process.wait_available(
            [
                HALF_PLUS_TWO,
                "saved_model_half_plus_three",
                "saved_model_half_plus_two_tf2_cpu",
                "cases",
            ]
        )
        yield process.url + "/v1/models/"
    finally:
        process.stop()


def post(url, path, body):
    data = body if isinstance(body, str) else json.dumps(body)
    return requests.post(url + path, data=data, timeout=30)


def ok(reply, expected):
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == expected


def error(reply, status, message):
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert list(body) == ["error"]
    assert message in body["error"]


# --- http_rest_api_handler_test.cc ----------------------------------------------------


@pytest.mark.parametrize(
    "path, body, expected",
    [
        (
            f"{HALF_PLUS_TWO}:predict",
            {"instances": [[1.0, 2.0], [3.0, 4.0]]},
            {"predictions": [[2.5, 3.0], [3.5, 4.0]]},
        ),
        (
            f"{HALF_PLUS_TWO}/versions/123:predict",
            {"instances": [1.0, 2.0]},
            {"predictions": [2.5, 3.0]},
        ),
        (
            f"{HALF_PLUS_TWO}/labels/Version_Label:predict",
            {"instances": [1.0, 2.0]},
            {"predictions": [2.5, 3.0]},
        ),
        (
            f"{HALF_PLUS_TWO}/versions/123:predict",
            {"signature_name": "serving_default", "instances": [3.0, 4.0]},
            {"predictions": [3.5, 4.0]},
        ),
        (
            f"{HALF_PLUS_TWO}/versions/123:predict",
            {"signature_name": "serving_default", "inputs": [3.0, 4.0]},
            {"outputs": [3.5, 4.0]},
        ),
    ],
)
def test_predict(url, path, body, expected):
    ok(post(url, path, body), expected)


@pytest.mark.parametrize(
    "path", [":regress", "/versions/123:regress", "/labels/Version_Label:regress"]
)
def test_regress(url, path):
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}
    ok(post(url, HALF_PLUS_TWO + path, body), {"results": [42]})


@pytest.mark.parametrize(
    "path, x, expected",
    [(":classify", 20.0, 12), ("/labels/Version_Label:classify", 10.0, 7)],
)
def test_classify(url, path, x, expected):
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": x}]}
    ok(post(url, HALF_PLUS_TWO + path, body), {"results": [[["", expected]]]})


AVAILABLE_123 = {
    "model_version_status": [
        {
            "version": "123",
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }
    ]
}


@pytest.mark.parametrize("path", ["", "/versions/123", "/labels/Version_Label"])
def test_get_status(url, path):
    reply = requests.get(url + HALF_PLUS_TWO + path, timeout=30)
    ok(reply, AVAILABLE_123)


def test_get_model_metadata(url):
    with open(os.path.join(TESTDATA, f"{HALF_PLUS_TWO}_metadata.json")) as file:
        expected = json.load(file)
    ok(requests.get(url + HALF_PLUS_TWO + "/metadata", timeout=30), expected)


@pytest.mark.parametrize(
    "path", ["foo:predict", "foo/versions/50:predict", f"{HALF_PLUS_TWO}99:predict"]
)
def test_predict_model_name_version_errors(url, path):
    reply = post(url, path, {"instances": [1]})
    assert reply.status_code == 404, reply.text
    assert list(reply.json()) == ["error"]


@pytest.mark.parametrize(
    "body, message",
    [
        ("", "JSON Parse error: The document is empty"),
        ("instances = [1, 2]", "JSON Parse error: Invalid value"),
        ({"instances": ["x", "y"]}, "not of expected type: float"),
        ({"signature_name": 100}, "'signature_name' key must be a string value."),
    ],
)
def test_predict_request_errors(url, body, message):
    error(post(url, HALF_PLUS_TWO + ":predict", body), 400, message)


def test_predict_with_a_nonexistent_version_label(url):
    path = f"{HALF_PLUS_TWO}/labels/Version_Nonexistent:predict"
    error(
        post(url, path, {"instances": ["x", "y"]}),
        400,
        "Unrecognized servable version label",
    )


# --- g3doc/api_rest.md ----------------------------------------------------------------


def test_api_rest_status_example(url):
    reply = requests.get(url + "saved_model_half_plus_three", timeout=30)
    ok(reply, AVAILABLE_123)


def test_api_rest_predict_example(url):
    reply = post(
        url, "saved_model_half_plus_three:predict", '{"instances": [1.0,2.0,5.0]}'
    )
    ok(reply, {"predictions": [3.5, 4.0, 5.5]})


def test_api_rest_regress_example(url):
    body = {
        "signature_name": "tensorflow/serving/regress",
        "examples": [{"x": 1.0}, {"x": 2.0}],
    }
    ok(post(url, "saved_model_half_plus_three:regress", body), {"results": [3.5, 4.0]})


MULTI_ROWS = [
    {"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
    {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]},
]
MULTI_OUT = {"tag": ["foo", "bar"], "signal_sum": [15, 15], "sensor_sum": [10, 23]}


def test_api_rest_row_format_example(url):
    reply = post(
        url, "cases:predict", {"signature_name": "multi", "instances": MULTI_ROWS}
    )
    ok(
        reply,
        {
            "predictions": [
                {"tag": "foo", "signal_sum": 15, "sensor_sum": 10},
                {"tag": "bar", "signal_sum": 15, "sensor_sum": 23},
            ]
        },
    )


def test_api_rest_columnar_format_example(url):
    inputs = {key: [row[key] for row in MULTI_ROWS] for key in MULTI_ROWS[0]}
    reply = post(url, "cases:predict", {"signature_name": "multi", "inputs": inputs})
    ok(reply, {"outputs": MULTI_OUT})


def test_api_rest_binary_classify_example(url):
    body = {
        "signature_name": "classify_objects",
        "examples": [
            {"image": {"b64": "aW1hZ2UgYnl0ZXM="}, "caption": "seaside"},
            {"image": {"b64": "YXdlc29tZSBpbWFnZSBieXRlcw=="}, "caption": "mountains"},
        ],
    }
    ok(
        post(url, "cases:classify", body),
        {"results": [[["seaside", 11.0]], [["mountains", 19.0]]]},
    )


def test_api_rest_non_finite_values(url):
    reply = post(url, HALF_PLUS_TWO + ":predict", '{"instances": [1.0, NaN, Infinity]}')
    assert reply.status_code == 200
    assert reply.text.replace(" ", "") == '{"predictions":[2.5,NaN,Infinity]}'


def test_body_read_with_rapidjsons_flags(url):
    # TF Serving parses with kParseNanAndInfFlag (Inf and -Inf are numbers too) and
    # kParseStopWhenDoneFlag (what follows the first document is ignored).
    body = '{"instances": [1.0, Inf, -Inf]}\n{"instances": "ignored"'
    reply = post(url, HALF_PLUS_TWO + ":predict", body)
    assert reply.status_code == 200, reply.text
    assert reply.text.replace(" ", "") == '{"predictions":[2.5,Infinity,-Infinity]}'


def test_empty_signature_name_is_the_default(url):
    # http_rest_api_handler.cc GetInfoMap: an empty name means serving_default.
    body = {"signature_name": "", "instances": [1.0, 2.0]}
    ok(post(url, HALF_PLUS_TWO + ":predict", body), {"predictions": [2.5, 3.0]})
    ok(
        post(url, HALF_PLUS_TWO + "/versions/123:predict", body),
        {"predictions": [2.5, 3.0]},
    )


@pytest.mark.parametrize("method", ["predict", "classify", "regress"])
def test_the_body_is_parsed_before_the_model_is_looked_up(url, method):
    # TF Serving parses the JSON (and checks signature_name's type) before it looks
    # up the servable: a bad body is a 400 whichever model or version it names.
    for path in (f"nope:{method}", f"{HALF_PLUS_TWO}/versions/7:{method}"):
        for garbage in ("garbage", "x" * 70_000):  # parsed inline, and in the pool
            error(post(url, path, garbage), 400, "JSON Parse error: Invalid value.")
        error(
            post(url, path, '{"signature_name": 1, "instances": [1.0]}'),
            400,
            "'signature_name' key must be a string value.",
        )
    if method == "predict":  # the signature's inputs are looked up, then checked
        error(post(url, f"nope:{method}", "{}"), 404, "Servable not found for request")
        return
    # FillClassifyRegressRequestFromJson reads the examples before Classify or
    # Regress looks the model (then the signature) up.
    missing = "key 'examples' is expected and was not found"
    error(post(url, f"nope:{method}", "{}"), 400, missing)
    error(post(url, f"{HALF_PLUS_TWO}/versions/7:{method}", "{}"), 400, missing)
    body = {"signature_name": "serving_default", "examples": 5}  # cannot classify
    error(post(url, f"{HALF_PLUS_TWO}:{method}", body), 400, "to be an list/array")
    body = {"examples": [{"x": 1.0}]}
    error(post(url, f"nope:{method}", body), 404, "Servable not found for request")


# --- the cases: what TF Serving answers ---------------------------------------


def test_scalar_string_output(url):
    ok(
        post(url, "cases:predict", {"signature_name": "str", "inputs": "hello"}),
        {"outputs": "HELLO"},
    )


def test_b64_scalar_in_columnar_form(url):
    body = {"signature_name": "str", "inputs": {"b64": "aGVsbG8="}}
    ok(post(url, "cases:predict", body), {"outputs": "HELLO"})


def test_complex64_output_is_tf_servings_400(url):
    reply = post(url, "cases:predict", {"signature_name": "complex", "inputs": [1.0]})
    error(reply, 400, "Failed to write JSON value for tensor type: complex64")


@pytest.mark.parametrize(
    "signature, values",
    [
        ("int64", [0, 9223372036854775807, -9223372036854775808]),
        ("uint64", [0, 18446744073709551615]),
    ],
)
def test_64_bit_integers_are_exact(url, signature, values):
    body = f'{{"signature_name": "{signature}", "inputs": {json.dumps(values)}}}'
    ok(post(url, "cases:predict", body), {"outputs": values})


@pytest.mark.parametrize(
    "signature, values",
    [
        ("int64", "[0, 9223372036854775808]"),
        ("uint64", "[0, -1, 18446744073709551615]"),
    ],
)
def test_64_bit_integers_that_do_not_fit_are_400(url, signature, values):
    body = f'{{"signature_name": "{signature}", "inputs": {values}}}'
    error(
        post(url, "cases:predict", body), 400, f"is not of expected type: {signature}"
    )


def test_float32_outputs_with_float32_digits(url):
    reply = post(url, HALF_PLUS_TWO + ":predict", {"instances": [[0.1], [0.2]]})
    assert reply.text.replace(" ", "") == '{"predictions":[[2.05],[2.1]]}'


def test_classify_on_a_non_string_input_is_400(url):
    body = {"signature_name": "classify_x2_to_y3", "examples": [{"x": 1.0}]}
    error(post(url, HALF_PLUS_TWO + ":classify", body), 400, "DT_FLOAT")


def test_booleans_among_int_features(url):
    body = {
        "signature_name": "regress_ints",
        "examples": [{"intboolmix": [1, True, False]}],
    }
    ok(post(url, "cases:regress", body), {"results": [2.0]})


@pytest.mark.parametrize(
    "method, signature, expected",
    [
        ("regress", "regress_x_to_y", {"results": [42.0]}),
        ("classify", "classify_x_to_y", {"results": [[["", 42.0]]]}),
    ],
)
def test_tf2_classify_regress_without_the_method_name(url, method, signature, expected):
    body = {"signature_name": signature, "examples": [{"x": 80.0}]}
    ok(post(url, f"saved_model_half_plus_two_tf2_cpu:{method}", body), expected)


def test_tf2_model_with_its_genuine_fingerprint(url):
    reply = post(url, "saved_model_half_plus_two_tf2_cpu:predict", {"instances": [1.0]})
    ok(reply, {"predictions": [2.5]})


def test_tf2_model_takes_shapes_its_graph_takes(url):
    # The signature declares x: [1]; the graph is elementwise, and TF Serving runs it.
    reply = post(
        url, "saved_model_half_plus_two_tf2_cpu:predict", {"inputs": [[1.0, 2.0]]}
    )
    ok(reply, {"outputs": [[2.5, 3.0]]})


# --- allow-list: deliberate improvements over TF Serving ------------------------------


def test_allow_listed_shape_the_graph_refuses_is_a_clear_400(url):
    # TF Serving: 400 with TensorFlow's message from inside the graph
    # ("Incompatible shapes ..." or similar). kerasdl: the same 400, saying which
    # input had which shape against the signature's declared shape, then TF's reason.
    body = {
        "signature_name": "multi",
        "inputs": {**{k: [v] for k, v in MULTI_ROWS[0].items()}, "sensor": [[1, 2]]},
    }
    error(
        post(url, "cases:predict", body),
        400,
        "Input 'sensor': signature 'multi' declares shape [-1,2,2] and dtype "
        "DT_INT32; received shape [1,2]",
    )


def test_allow_listed_int_out_of_its_range_is_400(url):
    # TF Serving: 200 with the value wrapped to int32 (it reads any JSON int32 for
    # DT_INT8/16/UINT8 and casts). kerasdl: 400 naming the dtype's range; an int32
    # input gets the same rule at int32's bounds, as TF Serving.
    body = {
        "signature_name": "multi",
        "inputs": {
            **{k: [v] for k, v in MULTI_ROWS[0].items()},
            "signal": [[1, 2, 3, 4, 2**31]],
        },
    }
    error(post(url, "cases:predict", body), 400, "is not of expected type: int32")
