"""End to end: a recipe trains and exports, `kerasdl serve` serves the export, and
a plain HTTP client gets the same answers as the SavedModel loaded in-process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
import tensorflow as tf

from kerasdl.export.evaluate import load_test_split

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lenet_export(tmp_path_factory):
    import kerasdl.recipes.lenet

    tmp = tmp_path_factory.mktemp("lenet")
    argv = ["--epochs", "1", "--limit", "120", "--verbose", "0"]
    argv += ["--workdir", str(tmp / "run"), "--output", str(tmp / "models")]
    assert kerasdl.recipes.lenet.main(argv) == 0
    return tmp / "models" / "lenet"


@pytest.fixture(scope="module")
def server(lenet_export, tmp_path_factory):
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in the finalizer
    process = subprocess.Popen(
        [sys.executable, "-m", "kerasdl", "serve", f"--rest_api_port={port}"]
        + ["--model_name=lenet", f"--model_base_path={lenet_export}"],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1/models/lenet"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()
            try:
                status = requests.get(url, timeout=2).json()
                if status["model_version_status"][0]["state"] == "AVAILABLE":
                    break
            except (requests.ConnectionError, requests.Timeout, ValueError, KeyError):
                pass
            time.sleep(0.2)
        else:
            pytest.fail(f"lenet never became AVAILABLE:\n{log_path.read_text()}")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()


def test_status_and_metadata_describe_the_recipe_signature(server):
    status = requests.get(server, timeout=10).json()
    assert status["model_version_status"][0]["version"] == "1"
    metadata = requests.get(f"{server}/metadata", timeout=10).json()
    signature = metadata["metadata"]["signature_def"]["signature_def"]
    serving_default = signature["serving_default"]
    assert set(serving_default["inputs"]) == {"images"}
    assert set(serving_default["outputs"]) == {"probabilities", "class_id"}
    assert serving_default["inputs"]["images"]["dtype"] == "DT_FLOAT"


def test_rest_predictions_match_the_saved_model_in_process(server, lenet_export):
    export = lenet_export / "1"
    card = json.loads((export / "assets.extra" / "model_card.json").read_text())
    images, _ = load_test_split(card)
    images = images[:16]
    expected = tf.saved_model.load(str(export)).signatures["serving_default"](
        images=tf.constant(images)
    )

    rows = requests.post(
        f"{server}:predict", json={"instances": images.tolist()}, timeout=30
    )
    assert rows.status_code == 200, rows.text
    predictions = rows.json()["predictions"]
    np.testing.assert_allclose(
        [p["probabilities"] for p in predictions],
        expected["probabilities"].numpy(),
        atol=1e-5,
    )
    assert [p["class_id"] for p in predictions] == expected["class_id"].numpy().tolist()

    columns = requests.post(
        f"{server}:predict", json={"inputs": {"images": images.tolist()}}, timeout=30
    )
    assert columns.status_code == 200, columns.text
    assert (
        columns.json()["outputs"]["class_id"] == expected["class_id"].numpy().tolist()
    )


def test_wrong_image_shape_is_a_400_naming_the_input(server):
    reply = requests.post(
        f"{server}:predict", json={"instances": [[[0.0] * 28] * 28]}, timeout=30
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert "images" in error and "8" in error
