"""No client can starve the server: header limits, request timeout, connection cap.

Each probe runs against a real server process on 127.0.0.1 while another client
is served normally at the same time; every loop is bounded (tens of connections,
seconds).
"""

import concurrent.futures
import json
import select
import socket
import threading
import time

import psutil
import pytest
import requests
from conftest import serve_dense

from kerasdl.serving import server as server_module

TIMEOUT = 3.0  # --request_timeout_seconds
MAX_CONNECTIONS = 24
BODY = json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]]})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process, _ = serve_dense(
        tmp_path_factory.mktemp("limits"),
        "--max_header_bytes=8192",
        "--max_header_count=40",
        f"--request_timeout_seconds={TIMEOUT}",
        f"--max_connections={MAX_CONNECTIONS}",
        "--keep_alive_timeout_seconds=2",
    )
    try:
        yield process
    finally:
        process.stop()


def _connect(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_all(sock, seconds=10):
    """Everything the server sends until it closes (or `seconds` pass)."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def _error(response):
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    return json.loads(body)["error"]


class Client(threading.Thread):
    """A well-behaved client predicting in a loop until stopped; records each answer."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.url = f"{server.url}/v1/models/dense:predict"
        self.answers = []  # (status, seconds)
        self.done = threading.Event()

    def run(self):
        with requests.Session() as session:
            while not self.done.is_set() and len(self.answers) < 2000:
                started = time.perf_counter()
                reply = session.post(self.url, data=BODY, timeout=30)
                self.answers.append((reply.status_code, time.perf_counter() - started))
                time.sleep(0.01)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join(60)

    def check(self, at_least=5):
        assert len(self.answers) >= at_least, self.answers
        assert {status for status, _ in self.answers} == {200}, self.answers
        assert max(seconds for _, seconds in self.answers) < 2.0, self.answers


def test_oversized_header_is_431(server):
    with Client(server) as client:
        sock = _connect(server)
        sock.sendall(
            b"POST /v1/models/dense:predict HTTP/1.1\r\nHost: x\r\n"
            b"X-Big: " + b"a" * 10_000 + b"\r\nContent-Length: 2\r\n\r\n{}"
        )
        response = _read_all(sock)
        time.sleep(0.3)
    assert response.startswith(b"HTTP/1.1 431 "), response[:200]
    assert "over the 8192-byte limit (--max_header_bytes)" in _error(response)
    client.check(at_least=3)


def test_too_many_headers_is_431(server):
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(41))
    with Client(server) as client:
        sock = _connect(server)
        sock.sendall(
            b"GET /v1/models/dense HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
        )
        response = _read_all(sock)
        time.sleep(0.3)
    assert response.startswith(b"HTTP/1.1 431 "), response[:200]
    assert "over the limit of 40 (--max_header_count)" in _error(response)
    client.check(at_least=3)


def test_endless_header_stops_at_the_limit_without_growing_the_server(server):
    """Sends up to 64 MiB of one header; the server answers 431 after about 8 KiB."""
    process = psutil.Process(server.process.pid)
    rss = process.memory_info().rss
    with Client(server) as client:
        sock = _connect(server)
        sock.sendall(b"GET /v1/models/dense HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        sent, response = 0, b""
        try:
            while sent < 64 << 20:
                if select.select([sock], [], [], 0)[0]:
                    response = _read_all(sock)
                    break
                sock.sendall(b"a" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = response or _read_all(sock)
    assert sent < 4 << 20, f"the server read {sent} header bytes"
    assert response.startswith(b"HTTP/1.1 431 "), response[:200]
    assert process.memory_info().rss - rss < 50 << 20
    client.check(at_least=1)


@pytest.mark.parametrize(
    "start",
    [
        b"",  # connects and never sends
        b"GET /v1/models/dense HTTP/1.1\r\nHost: x\r\n",  # headers never end
        b"POST /v1/models/dense:predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
    ],
    ids=["silent", "headers", "body"],
)
def test_slow_requests_time_out_with_408(server, start):
    """Ten slowloris connections (one byte every 0.5 s, or none) are cut at the timeout."""
    with Client(server) as client:
        socks = [_connect(server) for _ in range(10)]
        for sock in socks:
            sock.sendall(start)
        started = time.monotonic()
        closed = {}
        while len(closed) < len(socks) and time.monotonic() - started < 3 * TIMEOUT:
            for index, sock in enumerate(socks):
                if index in closed:
                    continue
                if select.select([sock], [], [], 0)[0]:
                    closed[index] = (_read_all(sock, 2), time.monotonic() - started)
                    continue
                try:
                    if start:  # the silent ones stay silent
                        sock.sendall(b"X" if start.endswith(b"\r\n") else b"a")
                except OSError:
                    closed[index] = (b"", time.monotonic() - started)
            time.sleep(0.5)
    assert len(closed) == len(socks), "some slow connections were never cut"
    for response, seconds in closed.values():
        assert TIMEOUT - 0.5 < seconds < TIMEOUT + 3, seconds
        assert response.startswith(b"HTTP/1.1 408 "), response[:200]
        assert "within 3 seconds (--request_timeout_seconds)" in _error(response)
    client.check(at_least=5)


def test_slow_model_calls_are_not_cut_by_the_request_timeout(server):
    """The timeout covers receiving the request, not answering it: a keep-alive
    client sending one request every second for longer than the timeout is served."""
    with requests.Session() as session:
        started = time.monotonic()
        while time.monotonic() - started < TIMEOUT + 1:
            reply = session.post(f"{server.url}/v1/models/dense:predict", data=BODY)
            assert reply.status_code == 200
            time.sleep(1.0)


def test_connections_over_the_cap_get_503_while_open_ones_are_served(server):
    with requests.Session() as session:  # an established keep-alive client
        url = f"{server.url}/v1/models/dense:predict"
        assert session.post(url, data=BODY).status_code == 200
        idle = [_connect(server) for _ in range(MAX_CONNECTIONS - 1)]
        try:
            time.sleep(0.3)  # accepted by now
            refused = [_connect(server) for _ in range(5)]
            answers = [_read_all(sock, 5) for sock in refused]
            # the open connection keeps being served while the cap is reached
            for _ in range(3):
                assert session.post(url, data=BODY).status_code == 200
        finally:
            for sock in idle + refused:
                sock.close()
    for response in answers:
        assert response.startswith(b"HTTP/1.1 503 "), response[:200]
        assert "Too many open connections (over 24, --max_connections)" in _error(
            response
        )
    # once the idle connections are gone, new clients are served again
    deadline = time.monotonic() + 10
    while True:
        try:
            if requests.post(url, data=BODY, timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "new connections still refused"
        time.sleep(0.2)


def test_a_burst_of_clients_under_the_cap_is_served(server):
    def one(_):
        return requests.post(
            f"{server.url}/v1/models/dense:predict", data=BODY, timeout=30
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(one, range(64)))
    assert set(statuses) == {200}


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--max_header_bytes=0", "--max_header_bytes must be > 0"),
        ("--max_header_count=-1", "--max_header_count must be > 0"),
        (
            "--request_timeout_seconds=0",
            "--request_timeout_seconds must be a finite number > 0",
        ),
        (
            "--max_connections=-5",
            (
                "--max_connections must be 0 (half the open-file limit, at most 1000) "
                "or a positive number. Received: max_connections=-5"
            ),
        ),
        (
            "--keep_alive_timeout_seconds=0",
            "--keep_alive_timeout_seconds must be a finite number > 0",
        ),
    ],
)
def test_limit_flags_are_validated(capsys, tmp_path, flag, message):
    code = server_module.main(["--model_base_path", str(tmp_path), flag])
    assert code == 2
    assert message in capsys.readouterr().err
