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


# `to_array`'s fast path for rectangular lists of numbers must give numpy's own
# conversion (np.asarray, then the input's dtype) and leave everything else to
# the checked path.
@pytest.mark.parametrize(
    "value, dtype",
    [
        ([[[0.1], [0.2]], [[0.3], [0.4]]], "float32"),  # trailing dimension of 1
        ([[1, 2.5, -3]], "float32"),  # ints among floats
        ([[16777217, 2]], "float32"),  # ints only: int64, then float32
        ([[2**53 + 1, 2]], "float64"),
        ([[1, -2], [3, 4]], "int32"),
        ([[2**62, 1]], "int64"),
        ([[2**63, 1]], "uint64"),  # beyond int64: the checked path
        ([0.5, 1.5], "float16"),
        (7.0, "float32"),  # a scalar
    ],
)
def test_numbers_convert_as_numpy_does(value, dtype):
    array = codec.to_array(value, _info("DT_X", dtype))
    expected = np.asarray(value).astype(dtype)
    assert array.dtype == expected.dtype
    np.testing.assert_array_equal(array, expected)


@pytest.mark.parametrize(
    "value, dtype, message",
    [
        ([[1.0, True]], "float32", "received booleans"),
        ([[[1.0], [False]]], "float32", "received booleans"),
        ([[1, True]], "int32", "received booleans"),
        ([[1.5, 2]], "int32", "is not of expected type: int32"),
        ([[1.0, "2"]], "float32", "received non-numeric values"),
        ([[1.0, 2.0], "ab"], "float32", "found at incorrect level"),
        ([[1.0, 2.0], {"a": 1, "b": 2}], "float32", "found at incorrect level"),
        ([[1.0, 2.0], [3.0]], "float32", "unexpected size: 1"),
        ([[1.0, [2.0]], [3.0, 4.0]], "float32", "unexpected level"),
        ([[300, 1]], "int8", "is not of expected type: int8"),
    ],
)
def test_non_numbers_and_ragged_lists_are_refused(value, dtype, message):
    name = "DT_" + {"float32": "FLOAT"}.get(dtype, dtype.upper())
    with pytest.raises(RequestError, match=message):
        codec.to_array(value, _info(name, dtype))
