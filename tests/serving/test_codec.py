"""JSON parsing: orjson's fast path and the standard library's reference results."""

import json

import numpy as np
import pytest

from kerasdl.serving import codec
from kerasdl.serving.codec import RequestError


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [[0.0027000000700354576, 1.5, -2, 3e-05]]}',
        b'{"instances": [[18446744073709551616, 1, 2, 3]]}',
        b'{"instances": [[-9223372036854775809, 1, 2, 3]]}',
        b'{"instances": [[9223372036854775807, 1, 2, 3]]}',
        b'{"instances": [[NaN, Infinity, -Infinity, 0]]}',
        b'{"instances": [[1e400, 1, 2, 3]]}',
        b'{"instances": ["\\ud800"]}',
        b'{"a": 1, "a": 2}',
    ],
)
def test_parse_json_matches_the_standard_library(body):
    parsed = codec.parse_json(body)
    expected = json.loads(body)
    assert repr(parsed) == repr(expected)  # repr: NaN != NaN, 1 vs 1.0 differ


def _info(dtype_name, numpy_dtype):
    return type(
        "Info",
        (),
        {
            "key": "features",
            "shape": None,
            "shape_text": "any shape",
            "dtype_name": dtype_name,
            "numpy_dtype": np.dtype(numpy_dtype),
        },
    )


def test_integers_beyond_64_bits_stay_exact_and_are_refused_for_int64():
    data = codec.parse_json(b'{"instances": [[18446744073709551616, 1, 2, 3]]}')
    assert data["instances"][0][0] == 2**64
    with pytest.raises(RequestError, match="is not of expected type: int64"):
        codec.to_array(data["instances"], _info("DT_INT64", "int64"))


def test_integers_beyond_64_bits_are_numbers_for_a_float_input():
    # TF Serving (rapidjson) reads such an integer as a double: any number fits DT_FLOAT.
    data = codec.parse_json(b'{"instances": [[18446744073709551616, 1, 2, 3]]}')
    array = codec.to_array(data["instances"], _info("DT_FLOAT", "float32"))
    np.testing.assert_array_equal(array, np.float32([[2.0**64, 1, 2, 3]]))


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "JSON Parse error"),
        (b"[1, 2]", "Is not object"),
        (b"", "The document is empty"),
        (b"\xff\xfe{", "Invalid encoding"),
    ],
)
def test_parse_json_errors_are_the_standard_librarys(body, message):
    with pytest.raises(RequestError, match=message):
        codec.parse_json(body)
