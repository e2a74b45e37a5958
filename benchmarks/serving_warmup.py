"""First-request latency after AVAILABLE, with and without the warm-up file.

    .venv/bin/python benchmarks/serving_warmup.py [--runs 2]

Exports LeNet (28x28x1 uint8) and ResNet-18 (32x32x3 uint8) with
`kerasdl.export.export_saved_model`, once with `assets.extra/tf_serving_warmup_requests`
(the default: requests of 1 and 8 verification images) and once with `warmup=False`.
For each export and each batch size (1, 8), a fresh `kerasdl serve` process is
started; as soon as `/v1/models/m` reports AVAILABLE, 100 `:predict` requests of
that batch size are sent one after another over one keep-alive connection. The
table gives the first request's latency, the 100th, and the median of 2..100.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {"lenet": ((28, 28, 1), {}), "resnet18": ((32, 32, 3), {})}


def export_models(folder):
    import numpy as np

    import kerasdl
    from kerasdl.export import export_saved_model

    bases = {}
    for name, (shape, kwargs) in MODELS.items():
        model = kerasdl.models.get_model(
            name, input_shape=shape, num_classes=10, rescale=1 / 255, **kwargs
        )
        images = np.random.default_rng(0).integers(0, 255, (16, *shape), "uint8")
        for warmup in (True, False):
            base = os.path.join(folder, f"{name}-{'warm' if warmup else 'cold'}")
            export_saved_model(
                model,
                base,
                input_shape=shape,
                input_dtype="uint8",
                verification_images=images,
                warmup=warmup,
            )
            bases[(name, warmup)] = base
    return bases


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(base, shape, batch, count=100):
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kerasdl.serving",
            "--model_name=m",
            f"--model_base_path={base}",
            f"--rest_api_port={port}",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/v1/models/m")
                states = json.loads(connection.getresponse().read())
                if any(
                    v["state"] == "AVAILABLE"
                    for v in states.get("model_version_status", [])
                ):
                    break
            except (OSError, ValueError):
                time.sleep(0.05)
        else:
            raise RuntimeError("server did not become AVAILABLE")
        image = [
            [[(i * 7 + j) % 255] * shape[2] for j in range(shape[1])]
            for i in range(shape[0])
        ]
        body = json.dumps({"instances": [image] * batch})
        headers = {"Content-Type": "application/json"}
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            connection.request("POST", "/v1/models/m:predict", body, headers)
            reply = connection.getresponse()
            reply.read()
            latencies.append((time.perf_counter() - started) * 1000)
            assert reply.status == 200, reply.status
        connection.close()
        return latencies
    finally:
        process.terminate()
        process.wait(60)
        log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bases = export_models(folder)
        print(
            "| model | batch | warm-up file | first ms | 100th ms | median 2..100 ms |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for name, (shape, _) in MODELS.items():
            for batch in (1, 8):
                for warmup in (True, False):
                    runs = [
                        measure(bases[(name, warmup)], shape, batch)
                        for _ in range(args.runs)
                    ]
                    first = " / ".join(f"{r[0]:.1f}" for r in runs)
                    last = " / ".join(f"{r[-1]:.1f}" for r in runs)
                    median = " / ".join(f"{statistics.median(r[1:]):.1f}" for r in runs)
                    print(
                        f"| {name} | {batch} | {'yes' if warmup else 'no'} | "
                        f"{first} | {last} | {median} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
