"""Tiny real SavedModels in TF Serving's layout, and a real server process to test."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --- models ----------------------------------------------------------------------


def export_dense(path, seed=0):
    """Keras `model.export`: one input `features` (None, 4) -> softmax over 3."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(4,), name="features")
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8)(inputs))
    keras.Model(inputs, outputs).export(path, verbose=False)


class _Recipe(tf.Module):
    """Like a recipe export: named inputs, dict outputs `probabilities`, `class_id`."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(np.arange(12, dtype="float32").reshape(4, 3) / 10.0)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 2, 2], tf.float32, name="image"),
            tf.TensorSpec([None], tf.float32, name="scale"),
        ]
    )
    def serve(self, image, scale):
        flat = tf.reshape(image, [-1, 4]) * scale[:, None]
        probabilities = tf.nn.softmax(flat @ self.kernel)
        return {
            "probabilities": probabilities,
            "class_id": tf.argmax(probabilities, axis=-1),
        }


def export_recipe(path):
    module = _Recipe()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


class _Text(tf.Module):
    """A DT_STRING model: lengths, and upper-cased bytes (`_bytes` outputs are b64)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        return {
            "length": tf.strings.length(text),
            "upper_bytes": tf.strings.upper(text),
        }


def export_text(path):
    module = _Text()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


def export_half_plus_two(path):
    """A TF1-style SavedModel with predict, classify and regress signatures."""
    graph = tf.Graph()
    with graph.as_default():
        weight = tf.compat.v1.Variable(0.5, name="weight")
        bias = tf.compat.v1.Variable(2.0, name="bias")
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        y = tf.identity(weight * x + bias, name="y")
        serialized = tf.compat.v1.placeholder(tf.string, [None], name="tf_example")
        features = tf.io.parse_example(
            serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)}
        )
        regressed = weight * features["x"] + bias  # (batch, 1)
        scores = tf.concat([regressed, -regressed], axis=1)  # (batch, 2)
        classes = tf.tile(tf.constant([["big", "small"]]), [tf.shape(scores)[0], 1])
        sig = tf.compat.v1.saved_model.signature_def_utils
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(
                session,
                ["serve"],
                signature_def_map={
                    "serving_default": sig.predict_signature_def({"x": x}, {"y": y}),
                    "classify_x": sig.classification_signature_def(
                        serialized, classes, scores
                    ),
                    "tensorflow/serving/regress": sig.regression_signature_def(
                        serialized, regressed
                    ),
                },
            )
            builder.save()


def publish(export, base, version, **kwargs):
    """Exports into `base/tmp-<v>` and renames into place, as a careful exporter does."""
    os.makedirs(base, exist_ok=True)
    temporary = os.path.join(base, f"tmp-{version}-{time.monotonic_ns()}")
    export(temporary, **kwargs)
    os.rename(temporary, os.path.join(base, str(version)))
    return os.path.join(base, str(version))


# --- the server process --------------------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m kerasdl.serving ...` on a free loopback port; `url` once started."""

    def __init__(self, *flags, log_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kerasdl.serving",
                f"--rest_api_port={self.port}",
                # gRPC off unless a test asks for it with its own --port.
                *(() if any(f.startswith("--port") for f in flags) else ("--port=0",)),
                *flags,
            ],
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def wait_available(self, models, timeout=120):
        """Waits until each model in `models` has an AVAILABLE version."""
        deadline = time.monotonic() + timeout
        pending = set(models)
        while pending and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_text()}")
            for name in list(pending):
                try:
                    reply = requests.get(f"{self.url}/v1/models/{name}", timeout=2)
                    states = [
                        v["state"] for v in reply.json().get("model_version_status", [])
                    ]
                    if "AVAILABLE" in states:
                        pending.discard(name)
                except (requests.ConnectionError, requests.Timeout, ValueError):
                    pass
            time.sleep(0.1)
        if pending:
            raise RuntimeError(f"models {pending} not AVAILABLE:\n{self.log_text()}")
        return self

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as file:
            return file.read().decode("utf-8", "replace")[-5000:]

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def serve_dense(folder, *flags):
    """Publishes the dense test model as `folder/dense/1` and serves it with `flags`.

    Returns `(server, base_path)` once the model is AVAILABLE; the caller stops it.
    """
    base = str(folder / "dense")
    publish(export_dense, base, 1)
    server = ServerProcess(
        "--model_name=dense",
        f"--model_base_path={base}",
        *flags,
        log_path=folder / "server.log",
    )
    try:
        return server.wait_available(["dense"]), base
    except Exception:
        server.stop()
        raise


CONFIG = """
# TF Serving's model_config_list text format
model_config_list {{
  config {{
    name: 'dense'
    base_path: '{base}/dense'
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
    version_labels {{ key: 'stable' value: 1 }}
    version_labels {{ key: 'canary' value: 2 }}
  }}
  config {{ name: 'recipe' base_path: '{base}/recipe' }}
  config {{ name: 'text' base_path: '{base}/text' }}
  config {{ name: 'half' base_path: '{base}/half' }}
}}
"""


@pytest.fixture(scope="session")
def model_base(tmp_path_factory):
    """Every test model, exported once per session."""
    base = str(tmp_path_factory.mktemp("models"))
    publish(export_dense, f"{base}/dense", 1, seed=1)
    publish(export_dense, f"{base}/dense", 2, seed=2)
    publish(export_recipe, f"{base}/recipe", 1)
    publish(export_text, f"{base}/text", 1)
    publish(export_half_plus_two, f"{base}/half", 123)
    return base


@pytest.fixture(scope="session")
def loaded(model_base):
    """In-process references: `loaded[(name, version)]` from tf.saved_model.load."""
    cache = {}

    def get(name, version):
        if (name, version) not in cache:
            cache[(name, version)] = tf.saved_model.load(
                f"{model_base}/{name}/{version}"
            )
        return cache[(name, version)]

    return get


@pytest.fixture(scope="module")
def server(model_base, tmp_path_factory):
    """One server for a whole test module, serving every test model."""
    folder = tmp_path_factory.mktemp("server")
    config = folder / "models.config"
    config.write_text(CONFIG.format(base=model_base))
    process = ServerProcess(
        f"--model_config_file={config}",
        "--file_system_poll_wait_seconds=0.5",
        "--max_body_bytes=1000000",
        log_path=folder / "server.log",
    )
    try:
        yield process.wait_available(["dense", "recipe", "text", "half"])
    finally:
        process.stop()


def copy_version(source, base, version):
    shutil.copytree(source, os.path.join(base, str(version)))
    return os.path.join(base, str(version))


def predict(url, body, **kwargs):
    return requests.post(url, data=json.dumps(body), timeout=30, **kwargs)
