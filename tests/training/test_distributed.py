"""Data parallelism: MirroredStrategy over 2 logical CPUs, 2-worker MultiWorkerMirrored."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from kerasdl.training import multiworker_compat

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "fault_injection.py")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
SMOKE = ["--limit", "64", "--epochs", "1", "--batch-size", "16"]
FULL = ["--epochs", "15", "--batch-size", "64"]  # lenet's default recipe on digits.


def card_of(output):
    (path,) = [os.path.join(output, "lenet", v) for v in os.listdir(output / "lenet")]
    with open(os.path.join(path, "assets.extra", "model_card.json")) as f:
        return json.load(f)


def run_mirrored(tmp_path, flags):
    result = subprocess.run(  # noqa: PLW1510 -- the status is asserted
        [
            sys.executable,
            SCRIPT,
            "mirrored-cpus:2",
            "--strategy",
            "mirrored",
            "--normalization",
            "batch",
            "--sync-batchnorm",
            "--verbose",
            "0",
            *flags,
            "--workdir",
            str(tmp_path / "work"),
            "--output",
            str(tmp_path / "models"),
        ],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    card = card_of(tmp_path / "models")
    assert card["training"]["strategy"] == {"name": "MirroredStrategy", "replicas": 2}
    return card


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_two_workers(tmp_path, flags, timeout):
    """Trains lenet with 2 worker processes on localhost; kills both on `timeout`."""
    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {
            "cluster": {"worker": workers},
            "task": {"type": "worker", "index": index},
        }
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    SCRIPT,
                    "none",
                    "--strategy",
                    "multiworker",
                    "--verbose",
                    "0",
                    *flags,
                    "--workdir",
                    str(tmp_path / "work"),
                    "--output",
                    str(tmp_path / "models"),
                ],
                env={**ENV, "TF_CONFIG": json.dumps(tf_config)},
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + timeout
    try:
        outputs = [
            p.communicate(timeout=max(1, deadline - time.monotonic()))
            for p in processes
        ]
    finally:  # A worker whose peer died waits for it forever: never leave one.
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    assert "Model exported to:" in outputs[0][0]  # The chief exports,
    assert "Model exported to:" not in outputs[1][0]  # the other worker does not.
    # Metrics are all-reduced, so both workers report the same test accuracy.
    chief_result, other_result = (
        re.search(r"Test accuracy: \S+ \(loss \S+", out).group() for out, _ in outputs
    )
    assert chief_result == other_result
    card = card_of(tmp_path / "models")
    assert card["training"]["strategy"] == {
        "name": "MultiWorkerMirroredStrategy",
        "replicas": 2,
    }
    return card


def test_mirrored_two_cpus_smoke(tmp_path):
    run_mirrored(tmp_path, SMOKE)


def test_multiworker_two_processes_smoke(tmp_path):
    run_two_workers(tmp_path, SMOKE, timeout=120)


@pytest.mark.parametrize(
    "version, expected", [("3.15.1", True), ("3.0.0", True), ("3.16.0", False)]
)
def test_multiworker_fix_applies_to_checked_keras_versions(version, expected):
    assert multiworker_compat.keras_needs_fix(version) is expected


def test_multiworker_fix_rejects_malformed_version():
    with pytest.raises(ValueError, match="Received: version='three'"):
        multiworker_compat.keras_needs_fix("three")


@pytest.mark.large
def test_mirrored_reaches_single_device_accuracy(tmp_path):
    card = run_mirrored(tmp_path, FULL)
    assert card["metrics"]["test_accuracy"] >= 0.93


@pytest.mark.large
def test_multiworker_reaches_single_device_accuracy(tmp_path):
    card = run_two_workers(tmp_path, FULL, timeout=600)
    assert card["metrics"]["test_accuracy"] >= 0.93
