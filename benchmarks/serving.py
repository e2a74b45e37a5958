"""Serving benchmark: `kerasdl serve` over REST and gRPC vs in-process calls to the export.

    python benchmarks/serving.py                       # LeNet and ResNet-50, 2,000 requests per level
    python benchmarks/serving.py --models lenet --requests 5000 --concurrency 1 8
    python benchmarks/serving.py --baseline /path/to/other/checkout --rounds 3
    python benchmarks/serving.py --workers 2 --modes off   # `kerasdl serve --workers 2`

Exports each model with the recipes' export code (`kerasdl.export.export_saved_model`
on `kerasdl.models.get_model`, random weights): LeNet at 28x28x1 and ResNet-50 at the
resnet50 recipe's 8x8x1 digits shape, both 10 classes, input `images`, outputs
`probabilities` and `class_id`. Starts `kerasdl serve` (REST, and gRPC on `--port`
when `kerasdl/serving/grpc_server.py` exists) in a subprocess for each batching
mode (off / on) and worker count, and drives it from a second process with
batch-1 requests: REST over keep-alive HTTP/1.1 connections (one blocking socket
at concurrency 1, asyncio connections above), gRPC `PredictionService/Predict`
on one HTTP/2 channel (a `PredictRequest` built with `tf.make_tensor_proto`, as
the official client does, serialized once and sent as bytes on the stub's method,
so the client process needs no TensorFlow). Client and server share the
machine's cores; the CPU time each spends per request is printed too, which other
jobs disturb much less than latency or throughput. Prints p50/p99 latency,
requests/s and errors per level, beside in-process
`signatures["serving_default"]` calls at batch 1 and batch 32 (rows/s), and at
batch 1 with 0.5 ms of idle time between calls (a server's model call at
concurrency 1 follows such a pause: what waking up costs the machine shows
there), measured before and after the server runs.

`--baseline DIR` also serves from another checkout (its `kerasdl/` first on
PYTHONPATH; REST only) and alternates the two servers level by level and round
by round, so both sides see the same machine load.
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
# (input shape) per benchmarked model; ResNet-50 at the resnet50 recipe's digits shape.
MODELS = {"lenet": (28, 28, 1), "resnet50": (8, 8, 1)}
GRPC_PREDICT = "/tensorflow.serving.PredictionService/Predict"


def export(name, base):
    """`base/1`: the recipes' export of `kerasdl.models.get_model(name)`, random weights."""
    import keras

    from kerasdl.export import export_saved_model
    from kerasdl.models import get_model

    keras.utils.set_random_seed(0)
    input_shape = MODELS[name]
    model = get_model(name, input_shape, 10)
    return export_saved_model(
        model, base, input_shape=input_shape, input_dtype="float32"
    ).path


def percentiles(seconds):
    ms = np.array(seconds) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


# Idle time between the calls of the third in-process row: about a served
# request's time outside the model, as a server at concurrency 1 sees it.
IDLE_SECONDS = 0.0005


def in_process(path, image, count):
    """`{label: (p50 ms, p99 ms, rows/s)}` for signature calls at batch 1 and 32,
    back to back, and at batch 1 with `IDLE_SECONDS` of sleep between calls (the
    machine's cost of waking up shows there, as it does in a server)."""
    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures["serving_default"]
    rows = {}
    for batch, idle in ((1, 0.0), (32, 0.0), (1, IDLE_SECONDS)):
        images = tf.constant(np.repeat(image, batch, axis=0))

        def call(images=images):
            return {k: v.numpy() for k, v in signature(images=images).items()}

        for _ in range(20):
            call()
        calls = max(20, count // batch)
        timings = []
        started = time.perf_counter()
        for _ in range(calls):
            if idle:
                time.sleep(idle)
            t = time.perf_counter()
            call()
            timings.append(time.perf_counter() - t)
        rate = calls * batch / (time.perf_counter() - started)
        label = f'in-process signatures["serving_default"], batch {batch}'
        if idle:
            label += f", {idle * 1e3:g} ms idle between calls"
        rows[label] = (*percentiles(timings), rate)
    return rows


def in_process_with_serve_config(path, name, count, server_flags=()):
    """`in_process` rows from a fresh process that first applies `kerasdl serve`'s
    TensorFlow session config (its default, or this run's --server_flag ones), so
    the server's model call is compared with the same call in-process too."""
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--in-process",
            path,
            name,
            str(count),
            *(f"--server_flag={flag}" for flag in server_flags),
        ],
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONPATH": REPO},
    ).stdout
    rows = json.loads(output.decode().strip().splitlines()[-1])
    return {f"{label} + serve's session config": row for label, row in rows.items()}


def _in_process_entry(path, name, count, server_flags):
    from kerasdl.serving import server

    parser = argparse.ArgumentParser()
    server.add_serve_arguments(parser)
    args = parser.parse_args(["--model_base_path=/unused", *server_flags])
    server._configure_tensorflow(args)
    image = np.random.default_rng(0).random((1, *MODELS[name]), dtype="float32")
    print(json.dumps(in_process(path, image, count)), flush=True)


# --- the client (a separate process, no TensorFlow) -----------------------------------


def _request_bytes(path, body):
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
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

    return await _gather(connection, total, concurrency)


async def _gather(worker, total, concurrency):
    shares = [
        total // concurrency + (i < total % concurrency) for i in range(concurrency)
    ]
    results = await asyncio.gather(*(worker(n) for n in shares))
    return [t for ts, _ in results for t in ts], sum(e for _, e in results)


def _drive_grpc(port, request, total, concurrency):
    """`PredictionService/Predict` with a serialized `PredictRequest`, on one channel."""
    import grpc

    target = f"127.0.0.1:{port}"
    if concurrency == 1:
        with grpc.insecure_channel(target) as channel:
            predict = channel.unary_unary(GRPC_PREDICT)
            timings, errors = [], 0
            for _ in range(total):
                started = time.perf_counter()
                try:
                    predict(request, timeout=60)
                except grpc.RpcError:
                    errors += 1
                timings.append(time.perf_counter() - started)
            return timings, errors

    async def run():
        async with grpc.aio.insecure_channel(target) as channel:
            predict = channel.unary_unary(GRPC_PREDICT)

            async def worker(count):
                timings, errors = [], 0
                for _ in range(count):
                    started = time.perf_counter()
                    try:
                        await predict(request, timeout=60)
                    except grpc.RpcError:
                        errors += 1
                    timings.append(time.perf_counter() - started)
                return timings, errors

            return await _gather(worker, total, concurrency)

    return asyncio.run(run())


def drive(protocol, port, body_path, total, concurrency):
    """Client process entry: prints one JSON line of stats."""
    with open(body_path, "rb") as file:
        body = file.read()
    cpu, started = time.process_time(), time.perf_counter()
    if protocol == "grpc":
        timings, errors = _drive_grpc(port, body, total, concurrency)
    else:
        request = _request_bytes(os.environ["BENCH_PATH"], body)
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


def load(protocol, port, body_path, total, concurrency, pid=None, path=""):
    """Runs the client process for one level; returns its stats."""
    server_cpu = cpu_seconds(pid) if pid else 0.0
    output = subprocess.run(
        [sys.executable, __file__, "--drive", protocol, str(port), body_path],
        capture_output=True,
        check=True,
        env={
            **os.environ,
            "BENCH_TOTAL": str(total),
            "BENCH_CONC": str(concurrency),
            "BENCH_PATH": path,
        },
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


def has_grpc(checkout):
    return os.path.exists(
        os.path.join(checkout, "kerasdl", "serving", "grpc_server.py")
    )


# `kerasdl serve` from the checkout given as first argument. An editable install of
# kerasdl puts an import hook ahead of PYTHONPATH, which would load this checkout
# whatever `--baseline` names: drop it, and check where kerasdl came from.
_SERVE_FROM = """
import os, runpy, sys
checkout = os.path.realpath(sys.argv.pop(1))
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path.insert(0, checkout)
import kerasdl
if not os.path.realpath(kerasdl.__file__).startswith(checkout + os.sep):
    sys.exit(f"kerasdl imported from {kerasdl.__file__}, not from {checkout}")
runpy.run_module("kerasdl.serving", run_name="__main__", alter_sys=True)
"""


def start_server(name, base, batching, log, checkout=REPO, extra_flags=(), workers=1):
    """`(process, REST port, gRPC port or None)` once `name` is AVAILABLE."""
    port = free_port()
    grpc_port = free_port() if has_grpc(checkout) and workers == 1 else None
    flags = [
        f"--rest_api_port={port}",
        f"--model_name={name}",
        f"--model_base_path={base}",
    ]
    if has_grpc(checkout):
        flags.append(f"--port={grpc_port or 0}")
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
        [sys.executable, "-c", _SERVE_FROM, checkout, *flags, "--log_level=WARNING"],
        cwd=checkout,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", f"/v1/models/{name}")
            if b"AVAILABLE" in connection.getresponse().read():
                return process, port, grpc_port
        except OSError:
            time.sleep(0.2)
        if process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"server did not start (log: {log.name})")


def grpc_request(name, image):
    """A serialized `PredictRequest` for `image`, built as the official client does."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "serving_default"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(image))
    return request.SerializeToString()


def benchmark_model(name, args, workdir, sides):
    base = os.path.join(workdir, name)
    path = export(name, base)
    image = np.random.default_rng(0).random((1, *MODELS[name]), dtype="float32")
    bodies = {
        "rest": json.dumps({"instances": image.round(4).tolist()}).encode(),
        "grpc": grpc_request(name, image),
    }
    body_paths = {}
    for protocol, body in bodies.items():
        body_paths[protocol] = os.path.join(workdir, f"{name}-{protocol}.bin")
        with open(body_paths[protocol], "wb") as file:
            file.write(body)
    print(
        f"\n{name}, input {MODELS[name]}, batch-1 requests (REST {len(bodies['rest'])} "
        f"bytes, gRPC {len(bodies['grpc'])} bytes), {args.requests} requests per level "
        f"and round, {args.rounds} round(s), load average {os.getloadavg()[0]:.2f}"
    )
    header = f"{'path':52s} {'conc':>4s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>8s} {'errors':>6s} {'client us/req':>13s} {'server us/req':>13s}"
    print(header)

    def in_process_rows(when):
        rows = in_process(path, image, min(args.requests, 2000))
        rows.update(
            in_process_with_serve_config(
                path, name, min(args.requests, 2000), args.server_flag
            )
        )
        for label, (p50, p99, rate) in rows.items():
            print(
                f"{label + ' (' + when + ')':52s} {1:4d} {p50:8.3f} {p99:8.3f} {rate:8.0f} {'-':>6s}",
                flush=True,
            )

    in_process_rows("before")
    url = f"/v1/models/{name}:predict"
    for mode, workers in [(m, w) for m in args.modes for w in args.workers]:
        servers, logs = {}, []
        try:
            for side, checkout in sides.items():
                log = open(  # noqa: SIM115 - closed below
                    os.path.join(workdir, f"server-{name}-{side}-{mode}-{workers}.log"),
                    "wb",
                )
                logs.append(log)
                extra = args.server_flag if side == "this" else ()
                servers[side] = start_server(
                    name, base, mode == "on", log, checkout, extra, workers
                )
            runs = [(side, "rest") for side in sides]
            if servers["this"][2] is not None:
                runs.append(("this", "grpc"))
            for side, protocol in runs:  # warm-up
                process, port, grpc_port = servers[side]
                target = grpc_port if protocol == "grpc" else port
                load(protocol, target, body_paths[protocol], 200, 8, path=url)
            for concurrency in args.concurrency:
                results = {run: [] for run in runs}
                for round_index in range(args.rounds):
                    order = runs if round_index % 2 == 0 else runs[::-1]
                    for side, protocol in order:
                        process, port, grpc_port = servers[side]
                        target = grpc_port if protocol == "grpc" else port
                        results[(side, protocol)].append(
                            load(
                                protocol,
                                target,
                                body_paths[protocol],
                                args.requests,
                                concurrency,
                                process.pid,
                                url,
                            )
                        )
                for (side, protocol), stats in results.items():
                    p50 = float(np.median([s["p50"] for s in stats]))
                    p99 = float(np.median([s["p99"] for s in stats]))
                    rate = float(np.median([s["rate"] for s in stats]))
                    errors = sum(s["errors"] for s in stats)
                    cpu = float(np.median([s["client_cpu_us"] for s in stats]))
                    server_cpu = float(np.median([s["server_cpu_us"] for s in stats]))
                    who = "" if len(sides) == 1 else f" {side}"
                    label = f"{'gRPC' if protocol == 'grpc' else 'REST'}{who}, batching {mode}, {workers} worker{'s' * (workers > 1)}"
                    print(
                        f"{label:52s} {concurrency:4d} {p50:8.3f} {p99:8.3f} {rate:8.0f} {errors:6d} {cpu:13.0f} {server_cpu:13.0f}",
                        flush=True,
                    )
        finally:
            for process, _, _ in servers.values():
                process.send_signal(signal.SIGTERM)
                process.wait(60)
            for log in logs:
                log.close()
    in_process_rows("after")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--requests", type=int, default=2000, help="requests per level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--modes", nargs="+", default=["off", "on"], help="batching modes"
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="server processes (`kerasdl serve --workers`) to measure, per mode "
        "(gRPC with 1 only)",
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
    parser.add_argument("--drive", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--in-process", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process:
        path, name, count = args.in_process
        _in_process_entry(path, name, int(count), args.server_flag)
        return 0
    if args.drive:
        protocol, port, body_path = args.drive
        drive(
            protocol,
            int(port),
            body_path,
            int(os.environ["BENCH_TOTAL"]),
            int(os.environ["BENCH_CONC"]),
        )
        return 0

    if args.baseline and max(args.workers) > 1:
        # Spawned worker processes import kerasdl afresh, through the editable
        # install's hook: they would serve this checkout on both sides.
        parser.error("--baseline serves one worker only; drop --workers")
    workdir = tempfile.mkdtemp(prefix="kerasdl-serving-bench-")
    sides = {"this": REPO}
    if args.baseline:
        sides = {"baseline": os.path.abspath(args.baseline), "this": REPO}
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    for name in args.models:
        benchmark_model(name, args, workdir, sides)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
