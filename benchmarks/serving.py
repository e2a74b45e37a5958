"""Serving benchmark: `kerasdl serve` over loopback vs in-process calls to the export.

    python benchmarks/serving.py                       # 5,000 requests per level
    python benchmarks/serving.py --requests 1000 --concurrency 1 8
    python benchmarks/serving.py --baseline /path/to/other/checkout --rounds 3
    python benchmarks/serving.py --workers 2 --modes off   # `kerasdl serve --workers 2`

Exports a LeNet (kerasdl.models' builder when present, else an equivalent Keras
LeNet), starts the server in a subprocess for each mode (batching off / on) and
worker count (`--workers`, default 1 and 2 server processes), and
drives it from a second, TensorFlow-free client process: keep-alive HTTP/1.1
connections sending batch-1 `:predict` requests, one blocking socket at
concurrency 1 and asyncio connections above it (so the client is not the
bottleneck). Client and server share the machine's cores; the CPU time each
spends per request is printed too, a figure that other jobs on a shared machine
disturb much less than latency or throughput. Prints p50/p99 latency, requests/s and errors for each level,
next to in-process `tf.saved_model.load(...).serve` and
`signatures["serving_default"]` calls, measured before and after the HTTP runs.

`--baseline DIR` also serves from another checkout (its `kerasdl/` first on
PYTHONPATH) and alternates the two servers level by level and round by round,
so both sides see the same machine load. Every level stops after `--requests`
requests per round; errors are counted.
"""

import argparse
import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = "/v1/models/lenet:predict"


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


# --- the client (a separate process, no TensorFlow) -----------------------------------


def _request_bytes(body):
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _content_length(head):
    match = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
    return None if match is None else int(match.group(1))


def _drive_blocking(port, request, total):
    """One keep-alive connection, one request at a time: the latency floor."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    timings, errors, buffer = [], 0, b""
    for _ in range(total):
        started = time.perf_counter()
        sock.sendall(request)
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        length = _content_length(head) or 0
        while len(buffer) < length:
            buffer += sock.recv(65536)
        buffer = buffer[length:]
        timings.append(time.perf_counter() - started)
        errors += head[9:12] != b"200"
    sock.close()
    return timings, errors


async def _drive_async(port, request, total, concurrency):
    async def connection(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        timings, errors = [], 0
        for _ in range(count):
            started = time.perf_counter()
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(_content_length(head) or 0)
                errors += head[9:12] != b"200"
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            timings.append(time.perf_counter() - started)
        writer.close()
        return timings, errors

    shares = [
        total // concurrency + (i < total % concurrency) for i in range(concurrency)
    ]
    results = await asyncio.gather(*(connection(n) for n in shares))
    return [t for ts, _ in results for t in ts], sum(e for _, e in results)


def drive(port, body_path, total, concurrency):
    """Client process entry: prints one JSON line of stats."""
    with open(body_path, "rb") as file:
        request = _request_bytes(file.read())
    cpu, started = time.process_time(), time.perf_counter()
    if concurrency == 1:
        timings, errors = _drive_blocking(port, request, total)
    else:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        timings, errors = runner(_drive_async(port, request, total, concurrency))
    elapsed = time.perf_counter() - started
    p50, p99 = percentiles(timings)
    stats = {
        "p50": p50,
        "p99": p99,
        "rate": total / elapsed,
        "errors": errors,
        "client_cpu_us": (time.process_time() - cpu) / total * 1e6,
    }
    print(json.dumps(stats), flush=True)


def cpu_seconds(pid):
    """User + system CPU seconds of a process, its threads and its child processes
    (Linux; `--workers` servers run in children), else 0."""
    total = 0.0
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rpartition(")")[2].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as file:
                total += sum(cpu_seconds(int(child)) for child in file.read().split())
    except OSError:
        pass
    return total


def load(port, body_path, total, concurrency, pid=None):
    """Runs the client process for one level; returns its stats."""
    server_cpu = cpu_seconds(pid) if pid else 0.0
    output = subprocess.run(
        [sys.executable, __file__, "--drive", str(port), body_path],
        input=None,
        capture_output=True,
        check=True,
        env={**os.environ, "BENCH_TOTAL": str(total), "BENCH_CONC": str(concurrency)},
    ).stdout
    stats = json.loads(output.decode().strip().splitlines()[-1])
    stats["server_cpu_us"] = (
        (cpu_seconds(pid) - server_cpu) / total * 1e6 if pid else 0.0
    )
    return stats


# --- servers ------------------------------------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(base, batching, log, checkout=REPO, extra_flags=(), workers=1):
    port = free_port()
    flags = [
        f"--rest_api_port={port}",
        "--model_name=lenet",
        f"--model_base_path={base}",
    ]
    if workers > 1:
        flags.append(f"--workers={workers}")
    if batching:
        flags += [
            "--enable_batching",
            "--max_batch_size=32",
            "--batch_timeout_micros=1000",
        ]
    flags += list(extra_flags)
    env = {**os.environ, "PYTHONPATH": checkout}
    process = subprocess.Popen(
        [sys.executable, "-m", "kerasdl.serving", *flags, "--log_level=WARNING"],
        cwd=checkout,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--modes", nargs="+", default=["off", "on"], help="batching modes"
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="server processes (`kerasdl serve --workers`) to measure, per mode",
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds per level")
    parser.add_argument(
        "--baseline", help="another checkout to serve from, alternated with this one"
    )
    parser.add_argument(
        "--server_flag",
        action="append",
        default=[],
        help="extra flag for this checkout's server (repeatable), e.g. "
        "--server_flag=--tensorflow_intra_op_parallelism=1",
    )
    parser.add_argument("--drive", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        port, body_path = args.drive
        drive(
            int(port),
            body_path,
            int(os.environ["BENCH_TOTAL"]),
            int(os.environ["BENCH_CONC"]),
        )
        return 0

    workdir = tempfile.mkdtemp(prefix="kerasdl-serving-bench-")
    base = os.path.join(workdir, "lenet")
    export_lenet(os.path.join(base, "1"))
    image = np.random.default_rng(0).random((1, 28, 28, 1), dtype="float32")
    body = json.dumps({"instances": image.round(4).tolist()}).encode()
    body_path = os.path.join(workdir, "body.json")
    with open(body_path, "wb") as file:
        file.write(body)
    sides = {"this": REPO}
    if args.baseline:
        sides = {"baseline": os.path.abspath(args.baseline), "this": REPO}

    print(
        f"LeNet, batch 1 ({len(body)} byte request), {os.cpu_count()} CPUs, "
        f"{args.requests} requests per level and round, {args.rounds} round(s), "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    header = f"{'path':45s} {'conc':>4s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>8s} {'errors':>6s} {'client us/req':>13s} {'server us/req':>13s}"
    print(header)

    def baseline_rows(when):
        rows = in_process(os.path.join(base, "1"), image, 2000)
        for label, (p50, p99, rate) in rows.items():
            print(
                f"{label + ' (' + when + ')':45s} {1:4d} {p50:8.3f} {p99:8.3f} {rate:8.0f} {'-':>6s}",
                flush=True,
            )

    baseline_rows("before")
    for mode, workers in [(m, w) for m in args.modes for w in args.workers]:
        servers = {}
        logs = []
        try:
            for side, checkout in sides.items():
                name = f"server-{side}-{mode}-{workers}.log"
                log = open(os.path.join(workdir, name), "wb")  # noqa: SIM115
                logs.append(log)
                extra = args.server_flag if side == "this" else ()
                servers[side] = start_server(
                    base, mode == "on", log, checkout, extra, workers
                )
                load(servers[side][1], body_path, 200, 8)  # warm-up
            for concurrency in args.concurrency:
                results = {side: [] for side in sides}
                for round_index in range(args.rounds):
                    order = list(sides) if round_index % 2 == 0 else list(sides)[::-1]
                    for side in order:
                        process, port = servers[side]
                        results[side].append(
                            load(
                                port, body_path, args.requests, concurrency, process.pid
                            )
                        )
                for side in sides:
                    stats = results[side]
                    p50 = float(np.median([s["p50"] for s in stats]))
                    p99 = float(np.median([s["p99"] for s in stats]))
                    rate = float(np.median([s["rate"] for s in stats]))
                    errors = sum(s["errors"] for s in stats)
                    cpu = float(np.median([s["client_cpu_us"] for s in stats]))
                    server_cpu = float(np.median([s["server_cpu_us"] for s in stats]))
                    label = f"HTTP {side}, batching {mode}, {workers} worker{'s' * (workers > 1)}"
                    print(
                        f"{label:45s} {concurrency:4d} {p50:8.3f} {p99:8.3f} {rate:8.0f} {errors:6d} {cpu:13.0f} {server_cpu:13.0f}",
                        flush=True,
                    )
        finally:
            for process, _ in servers.values():
                process.send_signal(signal.SIGTERM)
                process.wait(60)
            for log in logs:
                log.close()
    baseline_rows("after")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
