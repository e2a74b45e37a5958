"""`--enable_batching`: concurrent predicts merged into model calls, answers unchanged."""

import concurrent.futures
import json

import numpy as np
import pytest
import requests
import tensorflow as tf
from conftest import serve_dense


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory):
    process, base = serve_dense(
        tmp_path_factory.mktemp("batching"),
        "--enable_batching",
        "--max_batch_size=8",
        "--batch_timeout_micros=2000",
    )
    try:
        yield process, base
    finally:
        process.stop()


def test_concurrent_requests_are_batched_and_answered_exactly(batching_server):
    server, base = batching_server
    loaded = tf.saved_model.load(f"{base}/1")
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(1 + i % 2, 4)).astype("float32") for i in range(96)]

    def client(index):
        with requests.Session() as session:
            return [
                (
                    batch,
                    session.post(
                        f"{server.url}/v1/models/dense:predict",
                        data=json.dumps({"instances": batch.tolist()}),
                    ),
                )
                for batch in batches[index::16]
            ]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = [r for rs in pool.map(client, range(16)) for r in rs]
    assert len(results) == len(batches)
    for batch, reply in results:
        assert reply.status_code == 200, reply.text
        expected = loaded.serve(tf.constant(batch)).numpy()
        np.testing.assert_allclose(
            reply.json()["predictions"], expected, rtol=1e-5, atol=1e-7
        )
    metrics = requests.get(f"{server.url}/monitoring/prometheus/metrics").text
    count = next(
        line
        for line in metrics.splitlines()
        if line.startswith("kerasdl_serving_batch_size_count")
    )
    calls = int(float(count.rsplit(" ", 1)[1]))
    rows = sum(len(b) for b in batches)
    assert calls < rows, f"{calls} model calls for {rows} rows: nothing was merged"


def test_batching_keeps_validation_errors(batching_server):
    server, _ = batching_server
    reply = requests.post(
        f"{server.url}/v1/models/dense:predict", data='{"instances": [[1, 2, 3]]}'
    )
    assert reply.status_code == 400
    assert "Input 'features'" in reply.json()["error"]
