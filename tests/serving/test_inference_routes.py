"""In-process: the one ASGI router answers TF Serving's URL grammar, TF Serving's way."""

import asyncio
import concurrent.futures
import json

import httpx
import numpy as np
import pytest
from conftest import export_dense, publish

from kerasdl.serving.app import PREDICTION_URL, STATUS_URL, ServingApp
from kerasdl.serving.config import ModelConfig
from kerasdl.serving.metrics import Metrics
from kerasdl.serving.model_manager import ModelManager

FEATURES = np.arange(8, dtype="float32").reshape(2, 4) / 10


@pytest.fixture(scope="module")
def serving(tmp_path_factory):
    """A `ServingApp` over the dense model (version 1), its own `Metrics`."""
    base = str(tmp_path_factory.mktemp("router") / "dense")
    publish(export_dense, base, 1)
    manager = ModelManager([ModelConfig("dense", base)], poll_wait_seconds=0)
    manager.poll()
    executor = concurrent.futures.ThreadPoolExecutor(2)
    app = ServingApp(manager, executor, Metrics(["dense"]), max_body_bytes=1_000_000)
    yield app.build()
    executor.shutdown()


def _call(app, method, path, body=b"", headers=None):
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.request(method, path, content=body, headers=headers or {})

    return asyncio.run(go())


# TF Serving's `HttpRestApiHandlerTest.UnsupportedApiCalls` (http_rest_api_handler_test.cc):
# every one is a 400 whose message contains the expected text.
UNSUPPORTED = [
    ("GET", "/v1/foo", "Malformed request: GET /v1/foo"),
    ("POST", "/v1/foo", "Malformed request: POST /v1/foo"),
    ("GET", "/v1/models", "Missing model name in request."),
    ("GET", "/v1/models/debug/model_name", "Malformed request"),
    ("POST", "/v1/models", "Malformed request"),
    ("GET", "/v1/models/foo:predict", "Malformed request"),
    ("GET", "/v1/models/foo/version/50:predict", "Malformed request"),
    ("POST", "/v1/models/foo/version/50:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/HELLO:regress", "Malformed request"),
    (
        "POST",
        "/v1/models/foo/versions/18446744073709551615:regress",
        "Failed to convert version: 18446744073709551615 to numeric.",
    ),
    ("POST", "/v1/models/foo/metadata", "Malformed request"),
    ("POST", "/v1/models/foo/label/some_label:regress", "Malformed request"),
    (
        "POST",
        "/v1/models/foo/versions/50/labels/some_label:regress",
        "Malformed request",
    ),
    ("POST", "/v1/models/foo/versions/some_label:regress", "Malformed request"),
    # The same rules for what TF Serving's test does not list:
    ("PUT", "/v1/models/dense", "Malformed request: PUT /v1/models/dense"),
    ("DELETE", "/v1/models/dense:predict", "Malformed request: DELETE"),
    ("POST", "/v1/models/dense:explain", "Malformed request"),
    (
        "POST",
        "/v1/models/dense:PREDICT",
        "Malformed request",
    ),  # matched, not dispatched
    ("POST", "/v1/models/dense/versions/x:predict", "Malformed request"),
    ("POST", "/v1/models/dense/versions/:predict", "Malformed request"),
    ("GET", "/v1/models/dense/versions/1/labels/a", "Malformed request"),
    ("GET", "/v1/models/dense/versions/9223372036854775808", "Failed to convert"),
]


@pytest.mark.parametrize("method, path, message", UNSUPPORTED)
def test_unsupported_urls_are_tf_serving_400s(serving, method, path, message):
    reply = _call(serving, method, path, b"{}")
    assert reply.status_code == 400, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert message in reply.json()["error"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/V1/MODELS/dense:predict"),  # TF Serving's patterns ignore case
        ("POST", "/v1/models/d%65nse:predict"),  # the name is percent-decoded
        ("POST", "/v1/models/dense/versions/001:predict"),
        ("GET", "/V1/Models/dense/Versions/1"),
        ("GET", "/v1/models/dense/metadata?x=1"),
    ],
)
def test_urls_tf_serving_accepts(serving, method, path):
    body = json.dumps({"instances": FEATURES.tolist()})
    reply = _call(serving, method, path, body)
    assert reply.status_code == 200, reply.text


def test_metadata_in_capitals_is_a_status_request_as_in_tf_serving(serving):
    reply = _call(serving, "GET", "/v1/models/dense/METADATA")
    assert reply.status_code == 200
    assert "model_version_status" in reply.json()


@pytest.mark.parametrize("path", ["/", "/nowhere", "/v2/models/dense", "/v1"])
def test_outside_v1_is_a_json_404(serving, path):
    reply = _call(serving, "GET", path)
    assert reply.status_code == 404
    assert "error" in reply.json()


def test_every_documented_path_is_routed(serving):
    schema = _call(serving, "GET", "/openapi.json").json()
    values = {"model_name": "dense", "version": "1", "label": "x", "method": "predict"}
    assert len(schema["paths"]) == 10
    for template, operations in schema["paths"].items():
        path = template.format(**values)
        if path.startswith("/v1/"):
            pattern = PREDICTION_URL if "post" in operations else STATUS_URL
            assert pattern.fullmatch(path) is not None, path
        (http_method,) = operations
        reply = _call(serving, http_method.upper(), path, '{"instances": [[1,2,3,4]]}')
        assert reply.status_code in (200, 400), (path, reply.text)  # label x: 400
    docs = _call(serving, "GET", "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


@pytest.mark.parametrize("inline_run_seconds", [0.0, 10.0])
def test_inline_and_thread_pool_give_the_same_predictions(serving, inline_run_seconds):
    serving.inline_run_seconds = inline_run_seconds
    try:
        body = json.dumps({"instances": FEATURES.tolist()})
        replies = [
            _call(serving, "POST", "/v1/models/dense:predict", body) for _ in range(3)
        ]
    finally:
        serving.inline_run_seconds = 0.002
    signature = serving.manager.servable("dense").signatures["serving_default"]
    expected = signature.run_signature({"features": FEATURES})["output_0"]
    for reply in replies:
        assert reply.status_code == 200
        np.testing.assert_allclose(reply.json()["predictions"], expected, rtol=1e-6)
    assert signature.seconds is not None and signature.seconds > 0


def test_requests_are_counted_in_metrics(serving):
    _call(serving, "POST", "/v1/models/dense:predict", '{"instances": [[1, 2, 3, 4]]}')
    _call(serving, "GET", "/v1/models/dense")
    reply = _call(serving, "GET", "/monitoring/prometheus/metrics")
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    assert (
        'kerasdl_serving_request_count_total{api="predict",code="200",model_name="dense"}'
        in text
    )
    assert (
        'kerasdl_serving_request_count_total{api="status",code="200",model_name="dense"}'
        in text
    )
    assert 'kerasdl_serving_requests_in_flight{model_name="dense"} 0.0' in text


def test_unknown_models_and_malformed_urls_do_not_grow_the_labels(serving):
    for index in range(5):
        _call(serving, "POST", f"/v1/models/nope{index}:predict", "{}")
        _call(serving, "GET", f"/v1/nope{index}")
    text = _call(serving, "GET", "/monitoring/prometheus/metrics").text
    assert "nope" not in text
    assert 'api="malformed",code="400",model_name=""' in text


def test_in_flight_gauge_counts_requests_until_answered():
    metrics = Metrics(["dense"])
    metrics.request_started("dense")
    metrics.request_started("dense")
    metrics.request_finished("dense")
    metrics.observe_batch("dense", 3)
    text = metrics.render().decode()
    assert 'kerasdl_serving_requests_in_flight{model_name="dense"} 1.0' in text
    assert 'kerasdl_serving_batch_size_count{model_name="dense"} 1.0' in text


def test_lifespan_enters_and_leaves_the_context(serving):
    import contextlib

    events = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("start")
        yield
        events.append("stop")

    app = ServingApp(serving.manager, serving.executor, serving.metrics)
    app.build(lifespan=lifespan)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert events == ["start", "stop"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
