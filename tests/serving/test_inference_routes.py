"""In-process: the ASGI front answers inference URLs exactly as the FastAPI routes do."""

import asyncio
import concurrent.futures
import gzip
import json

import httpx
import numpy as np
import pytest
from conftest import export_dense, publish

from kerasdl.serving.app import ServingApp
from kerasdl.serving.config import ModelConfig
from kerasdl.serving.metrics import Metrics
from kerasdl.serving.model_manager import ModelManager

FEATURES = np.arange(8, dtype="float32").reshape(2, 4) / 10


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """(ASGI front, the FastAPI app behind it, the ServingApp, its Metrics)."""
    base = str(tmp_path_factory.mktemp("front") / "dense")
    publish(export_dense, base, 1)
    manager = ModelManager([ModelConfig("dense", base)], poll_wait_seconds=0)
    manager.poll()
    executor = concurrent.futures.ThreadPoolExecutor(2)
    metrics = Metrics(["dense"])
    serving = ServingApp(manager, executor, metrics, max_body_bytes=1_000_000)
    front = serving.build()
    yield front, front.app, serving, metrics
    executor.shutdown()


def _post(app, path, body, headers=None):
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.post(path, content=body, headers=headers or {})

    return asyncio.run(go())


CASES = [
    ("/v1/models/dense:predict", json.dumps({"instances": FEATURES.tolist()}), {}),
    ("/v1/models/dense/versions/1:predict", '{"inputs": [[1, 2, 3, 4]]}', {}),
    ("/v1/models/dense:predict", '{"instances": [[NaN, 1, 2, 3]]}', {}),
    ("/v1/models/dense:predict", '{"instances": [[1, 2, 3]]}', {}),
    ("/v1/models/dense:predict", "{not json", {}),
    ("/v1/models/dense:classify", '{"examples": [{"x": 1}]}', {}),
    ("/v1/models/dense:explain", "{}", {}),
    ("/v1/models/dense/versions/x:predict", "{}", {}),
    ("/v1/models/dense/labels/nope:predict", "{}", {}),
    ("/v1/models/nope:predict", "{}", {}),
    ("/v1/models/dense:predict", "[" + "1," * 60_000 + "1]", {}),  # thread pool
    ("/v1/models/dense:predict", "[" + "1," * 600_000 + "1]", {}),  # 413
    ("/v1/models/dense:predict", "{}", {"Content-Encoding": "br"}),
    (
        "/v1/models/dense:predict",
        gzip.compress(json.dumps({"instances": FEATURES.tolist()}).encode()),
        {"Content-Encoding": "gzip"},
    ),
]


@pytest.mark.parametrize("path, body, headers", CASES, ids=range(len(CASES)))
def test_front_answers_like_fastapi(apps, path, body, headers):
    front, fastapi_app, _, _ = apps
    fast = _post(front, path, body, headers)
    reference = _post(fastapi_app, path, body, headers)
    assert fast.status_code == reference.status_code, fast.text
    assert fast.headers["content-type"] == reference.headers["content-type"]
    assert fast.content == reference.content


@pytest.mark.parametrize("inline_run_seconds", [0.0, 10.0])
def test_inline_and_thread_pool_give_the_same_predictions(apps, inline_run_seconds):
    front, _, serving, _ = apps
    serving.inline_run_seconds = inline_run_seconds
    try:
        body = json.dumps({"instances": FEATURES.tolist()})
        replies = [_post(front, "/v1/models/dense:predict", body) for _ in range(3)]
    finally:
        serving.inline_run_seconds = 0.002
    signature = serving.manager.servable("dense").signatures["serving_default"]
    expected = signature.run_signature({"features": FEATURES})["output_0"]
    for reply in replies:
        assert reply.status_code == 200
        np.testing.assert_allclose(reply.json()["predictions"], expected, rtol=1e-6)
    assert signature.seconds is not None and signature.seconds > 0


def test_front_counts_requests_in_metrics(apps):
    front, _, _, metrics = apps
    _post(front, "/v1/models/dense:predict", '{"instances": [[1, 2, 3, 4]]}')
    assert metrics.requests[("dense", "predict", "200")] >= 1
    assert set(metrics.in_flight.values()) == {0}


def test_in_flight_gauge_counts_requests_until_answered():
    metrics = Metrics(["dense"])
    metrics.request_started("dense")
    metrics.request_started("dense")
    metrics.request_finished("dense")
    assert (
        'kerasdl_serving_requests_in_flight{model_name="dense"} 1' in metrics.render()
    )


def test_front_passes_other_routes_to_fastapi(apps):
    front, _, _, _ = apps

    async def go():
        transport = httpx.ASGITransport(app=front)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.get("/v1/models/dense"), await c.get("/openapi.json")

    status, schema = asyncio.run(go())
    assert status.json()["model_version_status"][0]["state"] == "AVAILABLE"
    assert "/v1/models/{model_name}:{method}" in schema.json()["paths"]
