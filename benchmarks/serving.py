"""Serving benchmark: `kerasdl serve` over loopback vs in-process calls to the export.

    python benchmarks/serving.py                       # 5,000 requests per level
    python benchmarks/serving.py --requests 1000 --concurrency 1 8

Exports a LeNet (kerasdl.models' builder when present, else an equivalent Keras
LeNet), starts the server in a subprocess for each mode (batching off / on), and
drives it from this process with keep-alive HTTP/1.1 clients, one thread per
connection. Prints p50/p99 latency and requests/s for each concurrency, next to
in-process `tf.saved_model.load(...).serve` and `signatures["serving_default"]`
calls. Bounded: every level stops after `--requests` requests; errors are counted.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export_lenet(path):
    import keras

    try:
        from kerasdl.models.lenet import lenet

        model = lenet((28, 28, 1), 10)
    except Exception:  # noqa: BLE001 - the builder is optional here
        inputs = keras.Input((28, 28, 1), name="image")
        x = keras.layers.Conv2D(6, 5, padding="same", activation="sigmoid")(inputs)
        x = keras.layers.AveragePooling2D()(x)
        x = keras.layers.Conv2D(16, 5, activation="sigmoid")(x)
        x = keras.layers.AveragePooling2D()(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(120, activation="sigmoid")(x)
        x = keras.layers.Dense(84, activation="sigmoid")(x)
        outputs = keras.layers.Dense(10, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
    model.export(path, verbose=False)


def percentiles(seconds):
    ms = np.array(seconds) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def in_process(path, image, count):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1]
    rows = {}
    for label, call in [
        ("in-process .serve", lambda: loaded.serve(tf.constant(image)).numpy()),
        (
            'in-process signatures["serving_default"]',
            lambda: {
                k: v.numpy()
                for k, v in signature(**{input_name: tf.constant(image)}).items()
            },
        ),
    ]:
        for _ in range(50):
            call()
        timings = []
        started = time.perf_counter()
        for _ in range(count):
            t = time.perf_counter()
            call()
            timings.append(time.perf_counter() - t)
        rows[label] = (*percentiles(timings), count / (time.perf_counter() - started))
    return rows


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(base, batching, log):
    port = free_port()
    flags = [
        f"--rest_api_port={port}",
        "--model_name=lenet",
        f"--model_base_path={base}",
    ]
    if batching:
        flags += [
            "--enable_batching",
            "--max_batch_size=32",
            "--batch_timeout_micros=1000",
        ]
    process = subprocess.Popen(
        [sys.executable, "-m", "kerasdl.serving", *flags, "--log_level=WARNING"],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/v1/models/lenet")
            if b"AVAILABLE" in connection.getresponse().read():
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


def load(port, body, total, concurrency):
    """`total` requests over `concurrency` keep-alive connections; returns stats."""
    share = [
        total // concurrency + (i < total % concurrency) for i in range(concurrency)
    ]
    headers = {"Content-Type": "application/json"}

    def client(count):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        timings, errors = [], 0
        for _ in range(count):
            t = time.perf_counter()
            try:
                connection.request(
                    "POST", "/v1/models/lenet:predict", body=body, headers=headers
                )
                reply = connection.getresponse()
                reply.read()
                errors += reply.status != 200
            except (OSError, http.client.HTTPException):
                errors += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            timings.append(time.perf_counter() - t)
        connection.close()
        return timings, errors

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(client, share))
    elapsed = time.perf_counter() - started
    timings = [t for ts, _ in results for t in ts]
    return (*percentiles(timings), total / elapsed, sum(e for _, e in results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--modes", nargs="+", default=["off", "on"], help="batching modes"
    )
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="kerasdl-serving-bench-")
    base = os.path.join(workdir, "lenet")
    export_lenet(os.path.join(base, "1"))
    image = np.random.default_rng(0).random((1, 28, 28, 1), dtype="float32")
    body = json.dumps({"instances": image.round(4).tolist()}).encode()

    print(
        f"LeNet, batch 1 ({len(body)} byte request), {os.cpu_count()} CPUs, "
        f"{args.requests} requests per level\n"
    )
    print(
        f"{'path':45s} {'conc':>4s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>8s} {'errors':>6s}"
    )
    for label, (p50, p99, rate) in in_process(
        os.path.join(base, "1"), image, 2000
    ).items():
        print(f"{label:45s} {1:4d} {p50:8.3f} {p99:8.3f} {rate:8.0f} {'-':>6s}")
    for mode in args.modes:
        with open(os.path.join(workdir, f"server-{mode}.log"), "wb") as log:
            process, port = start_server(base, mode == "on", log)
            try:
                load(port, body, 200, 1)  # warm-up
                for concurrency in args.concurrency:
                    p50, p99, rate, errors = load(
                        port, body, args.requests, concurrency
                    )
                    label = f"HTTP kerasdl serve, batching {mode}"
                    print(
                        f"{label:45s} {concurrency:4d} {p50:8.3f} {p99:8.3f} {rate:8.0f} {errors:6d}",
                        flush=True,
                    )
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
