"""The concurrency-1 floor of serving on this machine: servers that do no model work.

    python benchmarks/serving_floor.py                  # 3 rounds of 2,000 requests
    python benchmarks/serving_floor.py --rounds 5 --requests 3000

Sends LeNet's batch-1 request (the same REST body and gRPC `PredictRequest` as
`benchmarks/serving.py`, with its clients: one blocking keep-alive socket for REST,
the sync stub's channel for gRPC) one at a time to

- a bare ASGI app on uvicorn (httptools, uvloop, as `kerasdl serve` runs) that
  parses the JSON body into a float32 array and answers a fixed ten-number JSON;
- a bare `grpc.aio` server that answers every call with a fixed
  `PredictResponse` of ten floats;
- `kerasdl serve` with the LeNet export (batching off),

alternating the three round by round, and prints p50/p99 latency and the CPU the
client and the server spend per request. What `kerasdl serve` adds to the bare
servers is its own work (parsing, validation, the model call, encoding); the bare
rows are what any Python server with these libraries pays on this machine.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serving

BARE_REST = """
import sys
import numpy as np
import orjson
import uvicorn

ANSWER = orjson.dumps({"predictions": [[0.1] * 10]})
HEADERS = [(b"content-type", b"application/json"),
           (b"content-length", str(len(ANSWER)).encode())]

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    np.asarray(orjson.loads(body)["instances"], dtype=np.float32)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop",
            http="httptools", log_level="warning", access_log=False)
"""

BARE_GRPC = """
import asyncio, sys
import grpc

ANSWER = bytes.fromhex(sys.argv[2])

async def predict(request, context):
    return ANSWER

async def main():
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "tensorflow.serving.PredictionService",
        {"Predict": grpc.unary_unary_rpc_method_handler(predict)},
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()

import uvloop
uvloop.install()
asyncio.run(main())
"""


def _answer_bytes():
    """A `PredictResponse` as LeNet's: ten float32 probabilities and a class id."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.model_spec.name = "lenet"
    response.model_spec.version.value = 1
    response.model_spec.signature_name = "serving_default"
    response.outputs["probabilities"].CopyFrom(
        tf.make_tensor_proto(np.full((1, 10), 0.1, np.float32))
    )
    response.outputs["class_id"].CopyFrom(tf.make_tensor_proto(np.array([3])))
    return response.SerializeToString()


def _start_bare(code, args, log):
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=log, stderr=subprocess.STDOUT
    )
    time.sleep(3)  # both bind within a second; no readiness API on the bare servers
    if process.poll() is not None:
        raise RuntimeError(f"bare server failed to start (log: {log.name})")
    return process


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per row and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.requests < 1 or args.rounds < 1:
        parser.error("--requests and --rounds must be >= 1")

    with tempfile.TemporaryDirectory() as workdir:
        base = os.path.join(workdir, "lenet")
        serving.export("lenet", base)
        image = np.random.default_rng(0).random((1, 28, 28, 1), dtype="float32")
        bodies = {
            "rest": json.dumps({"instances": image.round(4).tolist()}).encode(),
            "grpc": serving.grpc_request("lenet", image),
        }
        paths = {}
        for protocol, body in bodies.items():
            paths[protocol] = os.path.join(workdir, f"{protocol}.bin")
            with open(paths[protocol], "wb") as file:
                file.write(body)
        log = open(os.path.join(workdir, "servers.log"), "w")  # noqa: SIM115 - closed below
        rest_port, grpc_port = serving.free_port(), serving.free_port()
        bare = [
            _start_bare(BARE_REST, [str(rest_port)], log),
            _start_bare(BARE_GRPC, [str(grpc_port), _answer_bytes().hex()], log),
        ]
        kerasdl, k_rest, k_grpc = serving.start_server("lenet", base, False, log)
        rows = {
            "bare uvicorn app, REST": ("rest", rest_port, bare[0].pid),
            "bare grpc.aio server, gRPC": ("grpc", grpc_port, bare[1].pid),
            "kerasdl serve LeNet, REST": ("rest", k_rest, kerasdl.pid),
            "kerasdl serve LeNet, gRPC": ("grpc", k_grpc, kerasdl.pid),
        }
        results = {name: [] for name in rows}
        try:
            for name, (protocol, port, pid) in rows.items():  # warm every path up
                serving.load(
                    protocol,
                    port,
                    paths[protocol],
                    200,
                    1,
                    pid,
                    "/v1/models/lenet:predict",
                )
            for _ in range(args.rounds):
                for name, (protocol, port, pid) in rows.items():
                    results[name].append(
                        serving.load(
                            protocol,
                            port,
                            paths[protocol],
                            args.requests,
                            1,
                            pid,
                            "/v1/models/lenet:predict",
                        )
                    )
        finally:
            for process in (*bare, kerasdl):
                process.terminate()
                process.wait()
            log.close()
        version = os.path.join(base, "1")
        in_process = {
            **serving.in_process(version, image, args.requests),
            **serving.in_process_with_serve_config(version, "lenet", args.requests),
        }

    print(
        f"\nconcurrency 1, LeNet's batch-1 request, {args.requests} requests per row "
        f"and round, {args.rounds} rounds alternated, load average "
        f"{os.getloadavg()[0]:.2f}; figures are the rounds' range"
    )
    print(
        f"{'path':34} {'p50 ms':>14} {'p99 ms':>14} {'client us/req':>14} "
        f"{'server us/req':>14}"
    )

    def span(values, digits):
        low, high = min(values), max(values)
        return f"{low:.{digits}f}-{high:.{digits}f}"

    for name, stats in results.items():
        print(
            f"{name:34} {span([s['p50'] for s in stats], 3):>14} "
            f"{span([s['p99'] for s in stats], 3):>14} "
            f"{span([s['client_cpu_us'] for s in stats], 0):>14} "
            f"{span([s['server_cpu_us'] for s in stats], 0):>14}"
        )
    for label, (p50, p99, _) in in_process.items():
        if "batch 1" in label:
            print(f"{p50:8.3f} ms p50, {p99:8.3f} ms p99  {label}")


if __name__ == "__main__":
    main()
