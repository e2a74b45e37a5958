"""Version hot-loading, corrupt versions and unloading, with a real server polling."""

import os
import shutil
import threading
import time

import numpy as np
import pytest
import requests
import tensorflow as tf
from conftest import ServerProcess, export_dense, predict, publish

FEATURES = [[1.0, 2.0, 3.0, 4.0]]


@pytest.fixture(scope="module")
def versions_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("versions")
    base = str(folder / "models" / "dense")
    publish(export_dense, base, 1, seed=1)
    process = ServerProcess(
        "--model_name=dense",
        f"--model_base_path={base}",
        "--file_system_poll_wait_seconds=0.2",
        log_path=folder / "server.log",
    )
    try:
        yield process.wait_available(["dense"]), base
    finally:
        process.stop()


def _states(url):
    reply = requests.get(f"{url}/v1/models/dense", timeout=5).json()
    return {int(v["version"]): v for v in reply["model_version_status"]}


def _wait(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


def _expected(path):
    signature = tf.saved_model.load(path).signatures["serving_default"]
    return signature(features=tf.constant(FEATURES))["output_0"].numpy()


def _served(url):
    return np.array(
        predict(f"{url}/v1/models/dense:predict", {"instances": FEATURES}).json()[
            "predictions"
        ]
    )


def test_hot_load_new_version_without_failed_requests(versions_server):
    server, base = versions_server
    failures, count, stop = [], [0], threading.Event()

    def client():
        with requests.Session() as session:
            while not stop.is_set():
                reply = session.post(
                    f"{server.url}/v1/models/dense:predict",
                    json={"instances": FEATURES},
                )
                count[0] += 1
                if reply.status_code != 200:
                    failures.append(reply.text)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        path = publish(
            export_dense, base, 2, seed=2
        )  # temp dir, then rename into place
        _wait(lambda: _states(server.url).get(2, {}).get("state") == "AVAILABLE")
        _wait(
            lambda: _states(server.url)[1]["state"] == "END"
        )  # latest policy retires v1
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert failures == [] and count[0] > 10
    np.testing.assert_allclose(_served(server.url), _expected(path), rtol=1e-6)


def _corrupt(base, version, damage):
    temporary = os.path.join(base, f"tmp-corrupt-{version}")
    shutil.copytree(os.path.join(base, "2"), temporary)
    damage(temporary)
    os.rename(temporary, os.path.join(base, str(version)))


def _truncate(path):
    pb = os.path.join(path, "saved_model.pb")
    with open(pb, "rb") as file:
        data = file.read()
    with open(pb, "wb") as file:
        file.write(data[: len(data) // 2])


def _flip(name):
    def damage(path):
        target = os.path.join(path, name)
        with open(target, "rb") as file:
            data = bytearray(file.read())
        for index in range(len(data) // 3, len(data) // 3 + 8):
            data[index] ^= 0xFF
        with open(target, "wb") as file:
            file.write(bytes(data))

    return damage


@pytest.mark.parametrize(
    "version, damage, names",
    [
        (3, _truncate, "saved_model.pb"),
        (4, lambda p: shutil.rmtree(os.path.join(p, "variables")), "variables"),
        (5, _flip("saved_model.pb"), "saved_model.pb"),
        (6, _flip("variables/variables.data-00000-of-00001"), "variables"),
    ],
    ids=["truncated-pb", "missing-variables", "flipped-pb", "flipped-variables"],
)
def test_corrupt_version_never_available(versions_server, version, damage, names):
    server, base = versions_server
    _wait(lambda: _states(server.url).get(2, {}).get("state") == "AVAILABLE")
    before = _served(server.url)
    _corrupt(base, version, damage)
    status = _wait(
        lambda: (
            _states(server.url).get(version)
            if _states(server.url)
            .get(version, {})
            .get("status", {})
            .get("error_message")
            else None
        )
    )
    assert status["state"] != "AVAILABLE"
    assert status["status"]["error_code"] != "OK"
    message = status["status"]["error_message"]
    assert os.path.join(base, str(version)) in message and names in message, message
    time.sleep(0.5)  # more polls: still not retried into service, v2 still serves
    assert _states(server.url)[version]["state"] != "AVAILABLE"
    assert _states(server.url)[2]["state"] == "AVAILABLE"
    np.testing.assert_allclose(_served(server.url), before)
    meta = requests.get(f"{server.url}/v1/models/dense/metadata").json()
    assert meta["model_spec"]["version"] == "2"


def test_work_directories_are_ignored(versions_server):
    server, base = versions_server
    for name in ("tmp-9", ".8", "abc", "7x"):
        os.makedirs(os.path.join(base, name), exist_ok=True)
    time.sleep(0.6)
    assert all(v in (1, 2, 3, 4, 5, 6) for v in _states(server.url))


def test_removed_version_is_unloaded(versions_server):
    server, base = versions_server
    for version in (3, 4, 5, 6):
        shutil.rmtree(os.path.join(base, str(version)), ignore_errors=True)
    shutil.rmtree(os.path.join(base, "2"))
    _wait(lambda: _states(server.url)[2]["state"] == "END")
    _wait(
        lambda: _states(server.url)[1]["state"] == "AVAILABLE"
    )  # the older one stands in
    reply = predict(
        f"{server.url}/v1/models/dense/versions/2:predict", {"instances": FEATURES}
    )
    assert reply.status_code == 404
    np.testing.assert_allclose(
        _served(server.url), _expected(os.path.join(base, "1")), rtol=1e-6
    )
