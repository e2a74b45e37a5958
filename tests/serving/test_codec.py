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


def test_integers_beyond_64_bits_stay_exact_and_are_refused():
    info = type(
        "Info",
        (),
        {
            "key": "features",
            "shape": (None, 4),
            "shape_text": "[-1,4]",
            "dtype_name": "DT_FLOAT",
            "numpy_dtype": np.dtype("float32"),
        },
    )
    data = codec.parse_json(b'{"instances": [[18446744073709551616, 1, 2, 3]]}')
    assert data["instances"][0][0] == 2**64
    with pytest.raises(RequestError, match="integers out of the int64 range"):
        codec.to_array(data["instances"], info)


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "JSON Parse error"),
        (b"[1, 2]", "JSON object"),
        (b"", "empty"),
        (b"\xff\xfe{", "not valid UTF-8"),
    ],
)
def test_parse_json_errors_are_the_standard_librarys(body, message):
    with pytest.raises(RequestError, match=message):
        codec.parse_json(body)
