"""SIGTERM while requests are in flight: every accepted request is answered."""

import http.client
import json
import re
import signal
import socket
import time

import numpy as np
import requests
from conftest import serve_dense


def in_flight(server):
    text = requests.get(f"{server.url}/monitoring/prometheus/metrics", timeout=30).text
    match = re.search(
        r'kerasdl_serving_requests_in_flight\{model_name="dense"\} (\d+)', text
    )
    return int(match.group(1)) if match else 0


def test_sigterm_finishes_in_flight_requests(tmp_path):
    server, _ = serve_dense(tmp_path)
    rows = np.random.default_rng(0).normal(size=(60_000, 4)).round(3).tolist()
    body = json.dumps({"instances": rows}).encode()  # ~2 MB
    head = (
        "POST /v1/models/dense:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    half = len(body) // 2
    # Six requests whose bodies are half sent: the server has accepted each and
    # cannot answer any before the rest arrives, so all six are in flight when
    # SIGTERM comes (a connection still in the kernel's listen backlog would not
    # have been accepted; TF Serving drops those too).
    connections = [
        socket.create_connection(("127.0.0.1", server.port)) for _ in range(6)
    ]
    try:
        for connection in connections:
            connection.settimeout(60)
            connection.sendall(head + body[:half])
        deadline = time.monotonic() + 60
        while (working := in_flight(server)) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert working == 6, server.log_text()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the server is shutting down while the bodies arrive
        results = []
        for connection in connections:
            connection.sendall(body[half:])
            reply = http.client.HTTPResponse(connection)
            reply.begin()
            results.append((reply.status, len(json.loads(reply.read())["predictions"])))
    finally:
        for connection in connections:
            connection.close()
    try:
        # uvicorn re-raises SIGTERM after its graceful shutdown: -15 is a clean exit.
        assert server.process.wait(60) in (0, -signal.SIGTERM)
    finally:
        server.stop()
    assert results == [(200, 60_000)] * 6, server.log_text()
    assert "in-flight requests have finished" in server.log_text()
