"""`--workers N`: N server processes on one port (SO_REUSEPORT), stopped together."""

import concurrent.futures
import json
import os
import signal
import socket
import time

import numpy as np
import pytest
import requests
import tensorflow as tf
from conftest import serve_dense

from kerasdl.serving import server as server_module

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/task"), reason="reads worker processes from /proc"
)


def children(pid):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as file:
            found += [int(child) for child in file.read().split()]
    return found


def workers(pid):
    """The server's worker processes (multiprocessing's spawned children)."""
    found = []
    for child in children(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as file:
                if b"spawn_main" in file.read():
                    found.append(child)
        except OSError:
            pass
    return found


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(condition, server, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.1)


def test_workers_share_the_port_and_stop_on_sigterm(tmp_path):
    server, base = serve_dense(tmp_path, "--workers=2")
    try:
        pids = workers(server.process.pid)
        assert len(pids) == 2, server.log_text()
        # every worker loads before it is measured
        wait_for(
            lambda: server.log_text().count("dense version 1 is AVAILABLE") >= 2, server
        )
        rows = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
        loaded = tf.saved_model.load(f"{base}/1")
        expected = loaded.serve(rows).numpy()
        before = {pid: cpu_seconds(pid) for pid in pids}

        def client(index):
            # One connection per client: the kernel spreads connections, not requests.
            with requests.Session() as session:
                for _ in range(25):
                    reply = session.post(
                        f"{server.url}/v1/models/dense:predict",
                        data=json.dumps(
                            {"instances": rows[index : index + 2].tolist()}
                        ),
                        timeout=30,
                    )
                    assert reply.status_code == 200, reply.text
                    np.testing.assert_allclose(
                        reply.json()["predictions"],
                        expected[index : index + 2],
                        rtol=1e-5,
                        atol=1e-6,
                    )

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(client, range(16)))
        used = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
        # Whichever worker answers the scrape reports every worker's requests.
        for _ in range(4):  # new connections, spread over the workers
            text = requests.get(f"{server.url}/monitoring/prometheus/metrics").text
            assert (
                'kerasdl_serving_request_count_total{api="predict",code="200",'
                'model_name="dense"} 400.0'
            ) in text, text[:2000]
        # 16 connections hashed over 2 sockets: both workers answer a share.
        assert all(seconds > 0.1 * sum(used.values()) for seconds in used.values()), (
            used
        )
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log_text()
    for pid in pids:  # gone (a zombie's cmdline is empty)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                assert not file.read()
        except FileNotFoundError:
            pass
    assert server.log_text().count("in-flight requests have finished") == 2


def test_a_worker_that_dies_while_serving_is_replaced(tmp_path):
    server, _ = serve_dense(tmp_path, "--workers=2")
    try:
        wait_for(lambda: len(workers(server.process.pid)) == 2, server)
        wait_for(
            lambda: server.log_text().count("dense version 1 is AVAILABLE") == 2, server
        )
        first, second = workers(server.process.pid)
        os.kill(first, signal.SIGKILL)
        wait_for(
            lambda: f"worker {first} died (exit code -9)" in server.log_text(), server
        )
        wait_for(
            lambda: (
                len(workers(server.process.pid)) == 2
                and first not in workers(server.process.pid)
            ),
            server,
        )
        assert second in workers(server.process.pid)  # the other one kept serving
        wait_for(
            lambda: server.log_text().count("dense version 1 is AVAILABLE") == 3, server
        )
        for _ in range(8):  # new connections reach both workers again
            reply = requests.post(
                f"{server.url}/v1/models/dense:predict",
                data=json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]]}),
                timeout=30,
            )
            assert reply.status_code == 200, reply.text
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log_text()


def test_workers_must_be_positive(capsys, tmp_path):
    code = server_module.main(["--model_base_path", str(tmp_path), "--workers=0"])
    assert code == 2
    assert "--workers must be >= 1. Received: workers=0" in capsys.readouterr().err


def test_workers_report_a_busy_port(capsys, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = server_module.main(
            [
                "--model_base_path",
                str(tmp_path),
                "--workers=2",
                f"--rest_api_port={port}",
            ]
        )
    assert code == 2
    assert f"cannot bind 127.0.0.1:{port}" in capsys.readouterr().err
