"""Fuzzing (large): schemathesis against /openapi.json, then hand-made hostile bodies.

    python -m pytest -m large tests/serving/test_fuzz.py -s

Counts every answer by status class; the last test asserts no 5xx, no crash, and
that the server's RSS came back near its baseline. Run with `-s` to see the counts.
"""

import gzip
import json

import psutil
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

pytestmark = pytest.mark.large

COUNTS = {"2xx": 0, "4xx": 0, "5xx": 0, "errors": 0}
FIVE_XX = []
BASELINE = {}


@pytest.fixture(scope="module")
def api_schema(server):
    rss = psutil.Process(server.process.pid).memory_info().rss
    BASELINE["rss"] = rss
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def _record(status, what):
    COUNTS[f"{status // 100}xx" if status // 100 in (2, 4, 5) else "errors"] += 1
    if status >= 500:
        FIVE_XX.append((status, what))


def test_schemathesis(api_schema, server):
    """Every operation in /openapi.json, a bounded number of generated cases each.

    Driven through hypothesis directly: schemathesis' pytest plugin does not run
    under pytest 9.
    """
    from hypothesis import given

    for result in api_schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case):
            try:
                response = case.call(base_url=server.url, timeout=30)
            except requests.RequestException as error:
                COUNTS["errors"] += 1
                FIVE_XX.append(("connection", repr(error)[:200]))
                return
            _record(response.status_code, f"{case.method} {case.formatted_path}")

        check()
    assert FIVE_XX == [], FIVE_XX[:5]


def _hostile_bodies():
    deep = 100_000
    yield "invalid utf-8", b'{"instances": ["\xff\xfe"]}', {}
    yield "deep nesting 100k", b'{"instances": ' + b"[" * deep + b"]" * deep + b"}", {}
    yield "deep objects 100k", b'{"a":' * deep + b"1" + b"}" * deep, {}
    yield "1e400", b'{"instances": [[1e400, -1e400, 1, 2]]}', {}
    yield "huge int", b'{"instances": [[' + b"9" * 4000 + b", 1, 2, 3]]}", {}
    yield "huger int", b'{"instances": [[' + b"9" * 100_000 + b", 1, 2, 3]]}", {}
    yield "NaN", b'{"instances": [[NaN, NaN, NaN, NaN]]}', {}
    yield "bad base64", b'{"instances": [{"b64": "a===="}]}', {}
    yield "b64 not string", b'{"instances": [{"b64": [1]}]}', {}
    yield "null", b"null", {}
    yield "huge list", b'{"instances": [' + b"0," * 400_000 + b"0]}", {}
    yield "gzip garbage", b"\x1f\x8b\x08\x00garbage", {"Content-Encoding": "gzip"}
    yield "gzip bomb", gzip.compress(b"[" * 50_000_000), {"Content-Encoding": "gzip"}
    yield "brotli", b"{}", {"Content-Encoding": "br"}
    yield "bad content-length", b"{}", {"Content-Length": "abc"}
    yield "lone surrogate", b'{"instances": ["\\ud800"]}', {}
    yield "control chars", b'{"instances": ["\x00\x01"]}', {}
    yield "wrong types", b'{"instances": {"features": 1}, "signature_name": null}', {}
    yield "examples garbage", b'{"examples": [[1], {"x": {"y": 1}}, {"x": true}]}', {}


HOSTILE = list(_hostile_bodies())
TARGETS = [
    f"/v1/models/{m}:{verb}"
    for m in (
        "dense",
        "text",
        "recipe",
        "half",
        "dense/versions/1",
        "dense/labels/stable",
    )
    for verb in ("predict", "classify", "regress")
]


@pytest.mark.parametrize("name, body, headers", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bodies(server, name, body, headers):
    for target in TARGETS:
        try:
            response = requests.post(
                server.url + target, data=body, headers=headers, timeout=60
            )
        except requests.RequestException as error:
            COUNTS["errors"] += 1
            FIVE_XX.append((name, repr(error)[:200]))
            continue
        _record(response.status_code, f"{name} {target}")
        assert response.status_code < 500, (target, response.text)
        assert "Traceback" not in response.text


def test_summary_no_5xx_and_memory_back_near_baseline(server):
    process = psutil.Process(server.process.pid)
    rss = process.memory_info().rss
    print(
        f"\nfuzz counts: {json.dumps(COUNTS)}; RSS baseline {BASELINE.get('rss', 0) / 2**20:.0f} "
        f"MiB, after {rss / 2**20:.0f} MiB"
    )
    assert server.process.poll() is None, "the server died"
    assert FIVE_XX == [] and COUNTS["5xx"] == 0 and COUNTS["errors"] == 0
    assert rss - BASELINE["rss"] < 300 * 2**20
