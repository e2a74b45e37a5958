"""`kerasdl serve`: command-line flags (TF Serving's names) and the server's main loop."""

import argparse
import concurrent.futures
import contextlib
import logging
import math
import os
import socket
import sys

logger = logging.getLogger("kerasdl.serving")

DEFAULT_MAX_BODY_BYTES = 32 << 20


def add_serve_arguments(parser):
    """Adds TF Serving's flags (and kerasdl's few extras) to an argparse parser."""
    models = parser.add_argument_group("models (as tensorflow_model_server)")
    models.add_argument(
        "--model_name",
        default="default",
        help="Name of the model (default: %(default)s).",
    )
    models.add_argument(
        "--model_base_path", help="Folder of numbered SavedModel versions."
    )
    models.add_argument(
        "--model_config_file",
        help="TF Serving model_config_list file (text proto), or the same as .json/.yaml.",
    )
    models.add_argument(
        "--model_config_file_poll_wait_seconds",
        type=float,
        default=0.0,
        help="Seconds between re-reads of --model_config_file, applying a changed "
        "config live; 0 reads it once (default: %(default)s).",
    )
    models.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="Seconds between scans for new versions; 0 scans once (default: %(default)s).",
    )
    http = parser.add_argument_group("HTTP")
    http.add_argument(
        "--rest_api_port", type=int, default=8501, help="Port (default: %(default)s)."
    )
    http.add_argument(
        "--host",
        default="127.0.0.1",
        help="Address to bind (default: %(default)s, loopback only; there is no authentication).",
    )
    http.add_argument(
        "--max_body_bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="Largest request body, after gzip inflation; larger ones get 413 (default: %(default)s).",
    )
    http.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Server processes sharing the port, each with its own copy of the models "
        "(more throughput across cores; memory and version polling are per "
        "process, metrics are summed over them) (default: %(default)s).",
    )
    http.add_argument(
        "--num_inference_threads",
        type=int,
        default=0,
        help="Threads for parsing and model calls; 0 means 2 per CPU, at most 8 (default: %(default)s).",
    )
    http.add_argument(
        "--tensorflow_intra_op_parallelism",
        type=int,
        default=0,
        help="Threads one TensorFlow op may use; 0 lets TensorFlow pick (default: %(default)s).",
    )
    http.add_argument(
        "--tensorflow_inter_op_parallelism",
        type=int,
        default=0,
        help="TensorFlow ops run at once; 0 lets TensorFlow pick (default: %(default)s).",
    )
    http.add_argument(
        "--tensorflow_session_config_file",
        default="",
        help="A TensorFlow ConfigProto in text format for the models' runtime, as "
        "in TF Serving (the parallelism flags override its thread counts). "
        "Without one, kerasdl serve turns TensorFlow's thread spinning off "
        "(`experimental { disable_thread_spinning: true }`): spinning pool threads "
        "take the cores the server's event loop needs (default: none).",
    )
    http.add_argument(
        "--graceful_shutdown_seconds",
        type=float,
        default=30.0,
        help="On SIGTERM, how long in-flight requests may take to finish (default: %(default)s).",
    )
    _add_limit_arguments(parser)
    _add_grpc_arguments(parser)
    batching = parser.add_argument_group("batching")
    batching.add_argument(
        "--enable_batching",
        action="store_true",
        help="Merge concurrent predict requests into one model call.",
    )
    batching.add_argument(
        "--max_batch_size",
        type=int,
        default=32,
        help="Rows per batch (default: %(default)s).",
    )
    batching.add_argument(
        "--batch_timeout_micros",
        type=int,
        default=1000,
        help="Longest wait to fill a batch while others run (default: %(default)s).",
    )
    batching.add_argument(
        "--num_batch_threads",
        type=int,
        default=1,
        help="Batches running at once (default: %(default)s: on a CPU one batch "
        "already uses every core).",
    )
    parser.add_argument(
        "--log_level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Logging level (default: %(default)s).",
    )
    return parser


def _add_limit_arguments(parser):
    """Flags bounding what one client can hold: headers, slow requests, connections."""
    limits = parser.add_argument_group("limits (per worker process)")
    limits.add_argument(
        "--max_header_bytes",
        type=int,
        default=65536,
        help="Largest request line plus headers; larger get 431 (default: %(default)s).",
    )
    limits.add_argument(
        "--max_header_count",
        type=int,
        default=100,
        help="Most header fields in a request; more get 431 (default: %(default)s).",
    )
    limits.add_argument(
        "--request_timeout_seconds",
        type=float,
        default=60.0,
        help="Time for a request's headers and body to arrive; slower ones get 408 "
        "and are closed (the model's time is not counted) (default: %(default)s).",
    )
    limits.add_argument(
        "--keep_alive_timeout_seconds",
        type=float,
        default=5.0,
        help="An idle keep-alive connection is closed after this (default: %(default)s).",
    )
    limits.add_argument(
        "--max_connections",
        type=int,
        default=0,
        help="Most open HTTP connections; more get 503 and are closed. 0 means half "
        "the open-file limit, at most 1000 (default: %(default)s).",
    )


def _flag_error(flag, expected, value):
    """The one-line error for a flag out of range: the flag, what it takes, the value."""
    return ValueError(f"--{flag} must be {expected}. Received: {flag}={value}")


def _check_positive(args, flag, default, integer=True):
    """The flag's value; ValueError unless it is > 0 (and finite, for a float)."""
    value = getattr(args, flag, default)
    if not (value > 0 and math.isfinite(value)):
        raise _flag_error(flag, "> 0" if integer else "a finite number > 0", value)
    return value


def http_limits(args):
    """The validated `HttpLimits` from the flags; ValueError if a flag is out of range."""
    from kerasdl.serving.http_protocol import HttpLimits

    connections = getattr(args, "max_connections", 0)
    if connections < 0:
        raise _flag_error(
            "max_connections",
            "0 (half the open-file limit, at most 1000) or a positive number",
            connections,
        )
    if connections == 0:
        connections = 1000
        try:
            import resource

            files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            if files != resource.RLIM_INFINITY:
                connections = max(1, min(connections, files // 2))
        except ImportError:  # not on Unix
            pass
    _check_positive(args, "keep_alive_timeout_seconds", 5.0, integer=False)
    return HttpLimits(
        max_header_bytes=_check_positive(args, "max_header_bytes", 65536),
        max_header_count=_check_positive(args, "max_header_count", 100),
        request_timeout_seconds=_check_positive(
            args, "request_timeout_seconds", 60.0, integer=False
        ),
        max_connections=connections,
    )


def _add_grpc_arguments(parser):
    """TF Serving's gRPC flags: `--port`, `--grpc_channel_arguments`, and a size limit."""
    grpc = parser.add_argument_group("gRPC")
    grpc.add_argument(
        "--port",
        type=int,
        default=8500,
        help="Port for TF Serving's gRPC API (PredictionService, ModelService) on "
        "--host; 0 turns gRPC off (default: %(default)s).",
    )
    grpc.add_argument(
        "--grpc_max_message_bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="Largest gRPC request or response message, and largest decoded size of "
        "a request's tensors; larger ones get RESOURCE_EXHAUSTED (default: %(default)s).",
    )
    grpc.add_argument(
        "--grpc_channel_arguments",
        default="",
        help="Extra gRPC server options as comma-separated key=value pairs, as TF "
        "Serving takes them (e.g. grpc.max_connection_age_ms=2000).",
    )


def grpc_options(args):
    """The validated gRPC flags: `(port, channel_arguments)`; ValueError if wrong."""
    from kerasdl.serving.grpc_server import parse_channel_arguments

    port = getattr(args, "port", 0)
    if not 0 <= port < 65536:
        raise _flag_error("port", "0 (gRPC off) or in [1, 65535]", port)
    if port and port == args.rest_api_port:
        raise ValueError(
            f"--port and --rest_api_port must differ. Received: both {port}"
        )
    size = getattr(args, "grpc_max_message_bytes", DEFAULT_MAX_BODY_BYTES)
    if not 0 < size < 2**31:
        raise _flag_error("grpc_max_message_bytes", "in [1, 2147483647]", size)
    return port, parse_channel_arguments(getattr(args, "grpc_channel_arguments", ""))


@contextlib.asynccontextmanager
async def serve_grpc(args, manager, executor, batcher=None, metrics=None):
    """Serves TF Serving's gRPC API on `--port` while the block runs (none for 0).

    Runs in uvicorn's event loop (one gRPC server per worker process, sharing the
    port like REST's); at shutdown in-flight calls get `--graceful_shutdown_seconds`.
    """
    port, channel_arguments = grpc_options(args)
    if not port:
        yield None
        return
    from kerasdl.serving.grpc_server import build_server

    server, bound = build_server(
        manager,
        executor,
        args.host,
        port,
        max_message_bytes=getattr(
            args, "grpc_max_message_bytes", DEFAULT_MAX_BODY_BYTES
        ),
        channel_arguments=channel_arguments,
        batcher=batcher,
        metrics=metrics,
    )
    await server.start()
    logger.info("gRPC API at %s:%d", args.host, bound)
    try:
        yield server
    finally:
        await server.stop(getattr(args, "graceful_shutdown_seconds", 30.0))


def model_configs_from_args(args):
    """The `ModelConfig`s the flags ask for; raises ValueError on bad flags."""
    from kerasdl.serving.config import ModelConfig, load_model_config_file

    if args.model_config_file and args.model_base_path:
        raise ValueError("Use --model_config_file or --model_base_path, not both.")
    if args.model_config_file:
        return load_model_config_file(args.model_config_file)
    if not args.model_base_path:
        raise ValueError(
            "Give --model_base_path (with --model_name) or --model_config_file."
        )
    return [
        ModelConfig(
            name=args.model_name, base_path=os.path.abspath(args.model_base_path)
        )
    ]


def _configure_logging(level):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger("kerasdl")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _tensorflow_threads(args):
    """The validated `(intra, inter)` TensorFlow thread-pool flags; ValueError if < 0."""
    intra = getattr(args, "tensorflow_intra_op_parallelism", 0)
    inter = getattr(args, "tensorflow_inter_op_parallelism", 0)
    for flag, value in (
        ("tensorflow_intra_op_parallelism", intra),
        ("tensorflow_inter_op_parallelism", inter),
    ):
        if value < 0:
            raise _flag_error(flag, "0 (TensorFlow picks) or a positive number", value)
    return intra, inter


def check_flags(args):
    """Checks the flags `http_limits`, `grpc_options` and `_tensorflow_threads` do not.

    Raises ValueError naming the first flag out of range, what it accepts and the
    value received. The batching flags are checked only with `--enable_batching`
    (TF Serving ignores them without it).
    """
    port = getattr(args, "rest_api_port", 8501)
    if not 0 <= port < 65536:
        raise _flag_error("rest_api_port", "in [0, 65535]", port)
    if getattr(args, "workers", 1) < 1:
        raise _flag_error("workers", ">= 1", args.workers)
    size = getattr(args, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    if size < 1:
        raise _flag_error("max_body_bytes", ">= 1", size)
    threads = getattr(args, "num_inference_threads", 0)
    if threads < 0:
        raise _flag_error(
            "num_inference_threads",
            "0 (2 per CPU, at most 8) or a positive number",
            threads,
        )
    grace = getattr(args, "graceful_shutdown_seconds", 30.0)
    if not (grace >= 0 and math.isfinite(grace)):
        raise _flag_error("graceful_shutdown_seconds", "a finite number >= 0", grace)
    if getattr(args, "enable_batching", False):
        for flag, least in (
            ("max_batch_size", 1),
            ("batch_timeout_micros", 0),
            ("num_batch_threads", 1),
        ):
            value = getattr(args, flag)
            if value < least:
                raise _flag_error(flag, f">= {least}", value)


# Without --tensorflow_session_config_file: TensorFlow's pool threads spin for a
# while after each op before they sleep, on the cores the event loop needs to
# parse and answer requests (benchmarks/serving.py; docs/serving.md).
DEFAULT_SESSION_CONFIG = "experimental { disable_thread_spinning: true }"


def session_config(args):
    """The `tf.compat.v1.ConfigProto` of `--tensorflow_session_config_file`.

    The file holds a ConfigProto in protobuf text format, as TF Serving reads it;
    without the flag, `DEFAULT_SESSION_CONFIG`. Raises ValueError (one line:
    the flag, the file, what is wrong) for a file that cannot be read or parsed.
    """
    import tensorflow as tf
    from google.protobuf import text_format

    path = getattr(args, "tensorflow_session_config_file", "")
    text = DEFAULT_SESSION_CONFIG
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or error
            raise ValueError(
                f"--tensorflow_session_config_file {path}: cannot be read ({reason})"
            ) from None
    try:
        return text_format.Parse(text, tf.compat.v1.ConfigProto())
    except text_format.ParseError as error:
        raise ValueError(
            f"--tensorflow_session_config_file {path}: not a TensorFlow ConfigProto "
            f"in text format ({error})"
        ) from None


def _apply_session_config(config):
    """Gives `config` to TensorFlow's eager runtime; False if it already started.

    TensorFlow 2 has no public call for a whole ConfigProto (thread spinning
    among it), so this uses `enable_eager_execution_internal`, which creates
    the eager context with it. tests/serving/test_server_flags.py pins the
    TensorFlow versions this was checked on.
    """
    from tensorflow.python.eager import context
    from tensorflow.python.framework import ops

    if context.context_safe() is not None:  # e.g. a server started inside a test
        return False
    ops.enable_eager_execution_internal(config=config)
    return True


def _configure_tensorflow(args):
    """Applies the session config and the thread-pool flags (before any model loads)."""
    import tensorflow as tf

    config = session_config(args)
    if not _apply_session_config(config):
        # Only when serving inside a process that already ran TensorFlow (a test,
        # a notebook): the command line always starts a fresh process.
        explicit = getattr(args, "tensorflow_session_config_file", "")
        log = logger.warning if explicit else logger.debug
        log(
            "TensorFlow is already running in this process: "
            "--tensorflow_session_config_file is not applied"
        )
    intra, inter = _tensorflow_threads(args)
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)


def build_app(args, configs):
    """The ASGI app and its lifespan: starts the model poller, stops it at shutdown."""
    from kerasdl.serving.app import ServingApp
    from kerasdl.serving.batcher import Batcher
    from kerasdl.serving.metrics import Metrics
    from kerasdl.serving.model_manager import ModelManager

    threads = args.num_inference_threads or min(8, 2 * (os.cpu_count() or 1))
    executor = concurrent.futures.ThreadPoolExecutor(
        threads, thread_name_prefix="kerasdl-infer"
    )
    manager = ModelManager(
        configs,
        poll_wait_seconds=args.file_system_poll_wait_seconds,
        config_file=args.model_config_file,
        config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
    )
    metrics = Metrics(manager)  # label values follow live config reloads
    batcher = None
    if args.enable_batching:
        batcher = Batcher(
            ServingApp.run_signature,
            executor,
            max_batch_size=args.max_batch_size,
            batch_timeout_micros=args.batch_timeout_micros,
            num_batch_threads=args.num_batch_threads,
            on_batch=metrics.observe_batch,
        )
    serving = ServingApp(manager, executor, metrics, args.max_body_bytes, batcher)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        manager.start()
        async with serve_grpc(args, manager, executor, batcher, metrics):
            yield
        logger.info("shutting down: in-flight requests have finished")
        manager.stop()
        executor.shutdown(wait=False, cancel_futures=True)

    return serving.build(lifespan=lifespan), manager


def _uvicorn_config(args, app, **kwargs):
    import uvicorn

    from kerasdl.serving.http_protocol import protocol_class

    return uvicorn.Config(
        app,
        host=args.host,
        port=args.rest_api_port,
        log_config=None,
        access_log=False,  # a log line per request costs more than a LeNet call
        # uvloop when installed, else asyncio; httptools (a dependency) with the
        # header, request-time and connection limits of `http_protocol`.
        loop="auto",
        http=protocol_class(http_limits(args)),
        timeout_keep_alive=getattr(args, "keep_alive_timeout_seconds", 5.0),
        timeout_graceful_shutdown=args.graceful_shutdown_seconds,
        server_header=False,
        # TF Serving reads no X-Forwarded-* headers, and nothing here uses the
        # client's address: no per-request proxy-header middleware.
        proxy_headers=False,
        **kwargs,
    )


def _listening_socket(host, port, reuse_port):
    """A TCP socket bound to host:port (SO_REUSEPORT when asked), not yet listening."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _worker_main(flags, ready):
    """One `--workers` process: its own models, app and SO_REUSEPORT socket.

    Sets the `ready` event once uvicorn has started serving on the socket.
    """
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started:
                ready.set()

    args = argparse.Namespace(**flags)
    _configure_logging(args.log_level)
    configs = model_configs_from_args(args)
    _configure_tensorflow(args)
    app, _ = build_app(args, configs)
    sock = _listening_socket(args.host, args.rest_api_port, reuse_port=True)
    logger.info("worker %d serving %s", os.getpid(), [c.name for c in configs])
    Server(_uvicorn_config(args, app)).run(sockets=[sock])


def _run_workers(args):
    """Runs `args.workers` server processes on one port; returns the exit code.

    Each worker binds the port with SO_REUSEPORT, so the kernel spreads new
    connections evenly over the workers (one shared listening socket lets the
    busiest worker accept them all). A worker that dies after it started serving
    is restarted; one that dies before (a socket it cannot bind, an import
    error) stops the server with exit code 1, rather than being restarted
    forever. SIGTERM or SIGINT is passed on to every worker, each of which
    finishes its in-flight requests before it exits.
    """
    import multiprocessing
    import signal
    import threading
    import time

    from kerasdl.serving.metrics import worker_died

    if not hasattr(socket, "SO_REUSEPORT"):
        logger.error("--workers > 1 needs SO_REUSEPORT, which this platform lacks")
        return 2
    try:  # the port must be free: a clear error now rather than in every worker
        _listening_socket(args.host, args.rest_api_port, reuse_port=False).close()
    except OSError as error:
        logger.error("cannot bind %s:%d: %s", args.host, args.rest_api_port, error)
        return 2
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def on_signal(number, frame):
        stop.set()

    previous = {
        number: signal.signal(number, on_signal)
        for number in (signal.SIGTERM, signal.SIGINT)
    }

    def spawn(index):
        ready = context.Event()
        process = context.Process(
            target=_worker_main,
            args=(vars(args), ready),
            name=f"kerasdl-serve-{index}",
        )
        process.start()
        return process, ready

    workers = [spawn(i) for i in range(args.workers)]
    logger.info(
        "REST API at http://%s:%d/v1/models/ (%d worker processes)",
        args.host,
        args.rest_api_port,
        args.workers,
    )
    code = 0
    try:
        while not stop.wait(0.5):
            for index, (process, ready) in enumerate(workers):
                if process.is_alive():
                    continue
                if not ready.is_set():
                    logger.error(
                        "worker %d exited with code %s while starting; stopping",
                        process.pid,
                        process.exitcode,
                    )
                    code = 1
                    stop.set()
                    break
                logger.warning(
                    "worker %d died (exit code %s); starting another",
                    process.pid,
                    process.exitcode,
                )
                worker_died(process.pid)
                workers[index] = spawn(index)
    finally:
        for process, _ in workers:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + args.graceful_shutdown_seconds + 10
        for process, _ in workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for number, handler in previous.items():
            signal.signal(number, handler)
    return code


def run_from_args(args):
    """Runs the server until SIGINT/SIGTERM; returns the exit code."""
    import uvicorn

    _configure_logging(args.log_level)
    try:
        configs = model_configs_from_args(args)
        check_flags(args)
        grpc_options(args)
        http_limits(args)  # checked before any model loads
        if args.workers > 1:
            _tensorflow_threads(args)  # checked here, applied by each worker
            session_config(args)
        else:
            _configure_tensorflow(args)
    except (ValueError, OSError) as error:
        logger.error("%s", error)
        return 2
    for config in configs:
        logger.info("serving model %s from %s", config.name, config.base_path)
    if args.workers > 1:
        from kerasdl.serving.metrics import multiprocess_directory

        # Workers keep their metrics in files there, so any of them can report all.
        with multiprocess_directory():
            return _run_workers(args)
    app, _ = build_app(args, configs)
    server = uvicorn.Server(_uvicorn_config(args, app))
    logger.info("REST API at http://%s:%d/v1/models/", args.host, args.rest_api_port)
    server.run()  # uvicorn traps SIGTERM/SIGINT: stop accepting, finish in-flight, exit
    return 0 if server.started else 1  # not started: e.g. the gRPC port was taken


def main(argv=None):
    """`python -m kerasdl.serving --model_base_path=... [--rest_api_port=8501]`."""
    parser = argparse.ArgumentParser(
        prog="kerasdl serve",
        description="Serve SavedModels over TensorFlow Serving's REST API.",
    )
    add_serve_arguments(parser)
    return run_from_args(parser.parse_args(argv))
