"""The HTTP layer: TF Serving's REST routes on FastAPI.

The inference routes (`POST ...:predict|classify|regress`) are answered by a thin
ASGI front (`InferenceRoutes`) before FastAPI's routing, middleware and dependency
machinery; FastAPI serves everything else and documents every route. A request's
body is read under a byte limit, parsed (orjson when installed, the standard
library for what orjson refuses, such as NaN), validated against the signature,
run, and encoded. Small bodies for signatures whose calls are fast run on the
event loop; everything else runs in a thread pool, so a big request never blocks
the loop. Every error is a JSON `{"error": "..."}` with a 4xx status; anything
unexpected gets a sanitized 500 and its traceback is logged.
"""

import asyncio
import logging
import re
import time
import zlib

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import compile_path

from kerasdl.serving import codec
from kerasdl.serving.codec import RequestError
from kerasdl.serving.model_manager import NotFoundError
from kerasdl.serving.servable import DEFAULT_SIGNATURE

logger = logging.getLogger("kerasdl.serving")

# Bodies below this are parsed on the event loop; bigger ones in the thread pool.
INLINE_PARSE_BYTES = 64 * 1024
# A small request runs on the event loop, without two thread hand-offs, when its
# signature's calls have been taking less than this (see `Signature.seconds`).
INLINE_RUN_SECONDS = 0.002
_JSON_HEADERS = [(b"content-type", b"application/json")]
_TF_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*")

_PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "signature_name": {"type": "string"},
                    "instances": {"type": "array", "items": {}},
                    "inputs": {},
                    "examples": {"type": "array", "items": {"type": "object"}},
                    "context": {"type": "object"},
                },
            }
        }
    },
}


def _json_response(data, status=200):
    return Response(
        codec.dumps(data), status_code=status, media_type="application/json"
    )


def _error(message, status):
    return _json_response({"error": message}, status)


def _tf_message(error):
    """A TF op error's message without graph internals."""
    message = getattr(error, "message", None) or str(error)
    lines = [
        _TF_NOISE.sub("", line).split("[[")[0].split("[Op:")[0].strip()
        for line in message.splitlines()
        if line.strip()
        and not line.startswith((" ", "\t"))
        and not line.startswith(("Graph execution error", "Detected at node"))
    ]
    lines = [line for line in lines if line]
    return (lines[-1] if lines else type(error).__name__)[:500]


def _may_have_bools(body):
    return b"true" in body or b"false" in body


async def read_body(request, limit):
    """The body of a Starlette `Request` (see `read_body_from`)."""
    return await read_body_from(request.headers, request.stream(), limit)


async def _receive_chunks(receive):
    """An ASGI request's body chunks, as `Request.stream()` gives them."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def read_body_from(headers, chunks, limit):
    """The request body, inflated if gzip, refusing (413) anything over `limit` bytes.

    `headers` maps lower-case names to values; `chunks` iterates the raw body.
    Content-Length is checked before reading; the stream is counted as it arrives;
    gzip is inflated chunk by chunk with `max_length`, so a bomb stops at the limit.
    """
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise RequestError("Invalid Content-Length header")
        if int(length) > limit:
            raise RequestError(
                f"Request body of {length} bytes is over the {limit}-byte limit", 413
            )
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise RequestError(
            f"Unsupported Content-Encoding {encoding!r}; use gzip or none", 415
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    parts, received, size = [], 0, 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise RequestError(f"Request body is over the {limit}-byte limit", 413)
            if inflater is None:
                parts.append(chunk)
                size += len(chunk)
                continue
            data = chunk
            while data and not inflater.eof:
                piece = inflater.decompress(data, limit - size + 1)
                size += len(piece)
                if size > limit:
                    raise RequestError(
                        f"Decompressed request body is over the {limit}-byte limit", 413
                    )
                parts.append(piece)
                data = inflater.unconsumed_tail
    except zlib.error as error:
        raise RequestError(f"Invalid gzip body: {error}")
    except ClientDisconnect:
        raise RequestError("Client disconnected while sending the body")
    if inflater is not None and not inflater.eof:
        raise RequestError("Invalid gzip body: truncated stream")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _asgi_headers(scope):
    """The request headers as {lower-case name: first value}, like Starlette's."""
    headers = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


class ServingApp:
    """Builds the ASGI app over a `ModelManager`.

    Args:
        manager: the `ModelManager` holding the models.
        executor: thread pool for parsing big bodies and running models.
        metrics: a `Metrics` collector.
        max_body_bytes: largest request body (after gzip inflation). Defaults to 32 MiB.
        batcher: optional `Batcher` for predict calls. Defaults to None (no batching).
        inline_run_seconds: a request whose body is at most 64 KiB runs on the event
            loop when its signature's recent calls took less than this; 0 always
            uses the thread pool. Defaults to 0.002.
    """

    def __init__(
        self,
        manager,
        executor,
        metrics,
        max_body_bytes=32 << 20,
        batcher=None,
        inline_run_seconds=INLINE_RUN_SECONDS,
    ):
        self.manager = manager
        self.executor = executor
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.batcher = batcher
        self.inline_run_seconds = inline_run_seconds

    # --- request handling -------------------------------------------------------

    @staticmethod
    def _version(version):
        if version is None:
            return None
        if not version.isdigit() or not version.isascii() or len(version) > 19:
            raise NotFoundError(
                f"Malformed version {version[:40]!r}: expected a number"
            )
        return int(version)

    @staticmethod
    def _signature(servable, data):
        name = data.get("signature_name", DEFAULT_SIGNATURE)
        if not isinstance(name, str):
            raise RequestError("'signature_name' must be a string")
        signature = servable.signatures.get(name)
        if signature is None:
            raise RequestError(
                f'Serving signature name: "{name[:100]}" not found in signature def; '
                f"available: {sorted(servable.signatures)}"
            )
        if not signature.supported:
            raise RequestError(
                f"Signature '{name}' uses sparse or ragged tensors, not served"
            )
        return signature

    @staticmethod
    def run_signature(servable, signature_name, inputs):
        return servable.signatures[signature_name].run(inputs)

    def _handle_sync(self, servable, body, data, method):
        """Parse (if needed), validate, run and encode: the whole request in one thread."""
        if data is None:
            data = codec.parse_json(body)
        signature = self._signature(servable, data)
        if method == "predict":
            inputs, row_format = codec.decode_predict(
                data, signature, _may_have_bools(body)
            )
            outputs = signature.run(inputs)
            return codec.dumps(codec.encode_predict(outputs, row_format))
        inputs, count = codec.decode_examples(data, signature, method)
        outputs = signature.run(inputs)
        encode = codec.encode_classify if method == "classify" else codec.encode_regress
        return codec.dumps(encode(outputs, count))

    async def _batched(self, servable, body, data):
        signature = self._signature(servable, data)
        inputs, row_format = codec.decode_predict(
            data, signature, _may_have_bools(body)
        )
        batchable = all(
            v.ndim >= 1 and (i.shape is None or i.shape[0] is None)
            for v, i in zip(inputs.values(), (signature.inputs[k] for k in inputs))
        )
        rows = {v.shape[0] for v in inputs.values() if v.ndim}
        if batchable and len(rows) == 1:
            outputs = await self.batcher.submit(servable, signature.name, inputs)
        else:
            loop = asyncio.get_running_loop()
            outputs = await loop.run_in_executor(self.executor, signature.run, inputs)
        return codec.dumps(codec.encode_predict(outputs, row_format))

    def _runs_inline(self, servable, data):
        """True when the signature this request names is known to be quick."""
        name = data.get("signature_name", DEFAULT_SIGNATURE)
        signature = servable.signatures.get(name) if isinstance(name, str) else None
        seconds = None if signature is None else signature.seconds
        return seconds is not None and seconds < self.inline_run_seconds

    async def infer(self, headers, chunks, name, version, label, method):
        """Answers one inference request: `(HTTP status, JSON payload bytes)`.

        Args:
            headers: the request headers, `{lower-case name: value}`.
            chunks: async iterator over the raw request body.
            name: the model name from the URL.
            version: the version from the URL, or None.
            label: the version label from the URL, or None.
            method: `"predict"`, `"classify"` or `"regress"`.
        """
        started = time.perf_counter()
        status = 500
        self.metrics.request_started(name)
        try:
            if method not in ("predict", "classify", "regress"):
                raise NotFoundError(
                    f"Unknown method ':{method[:40]}'; use :predict, :classify or :regress"
                )
            servable = self.manager.servable(name, self._version(version), label)
            body = await read_body_from(headers, chunks, self.max_body_bytes)
            small = len(body) <= INLINE_PARSE_BYTES
            loop = asyncio.get_running_loop()
            if self.batcher is not None and method == "predict":
                if small:
                    data = codec.parse_json(body)
                else:
                    data = await loop.run_in_executor(
                        self.executor, codec.parse_json, body
                    )
                payload = await self._batched(servable, body, data)
            elif small:
                data = codec.parse_json(body)
                if self._runs_inline(servable, data):
                    payload = self._handle_sync(servable, body, data, method)
                else:
                    payload = await loop.run_in_executor(
                        self.executor, self._handle_sync, servable, body, data, method
                    )
            else:
                payload = await loop.run_in_executor(
                    self.executor, self._handle_sync, servable, body, None, method
                )
            status = 200
            return status, payload
        except Exception as error:  # noqa: BLE001 - mapped to a status below
            status, payload = self._error_payload(error)
            return status, payload
        finally:
            self.metrics.request_finished(name)
            self.metrics.observe_request(
                name, method, status, time.perf_counter() - started
            )

    async def call_model(self, request, name, version, label, method):
        """`infer` for a Starlette `Request` (FastAPI's routes)."""
        status, payload = await self.infer(
            request.headers, request.stream(), name, version, label, method
        )
        return Response(payload, status_code=status, media_type="application/json")

    def _error_response(self, error):
        status, payload = self._error_payload(error)
        return Response(payload, status_code=status, media_type="application/json")

    def _error_payload(self, error):
        """An exception as `(status, {"error": ...} bytes)`; logs unexpected ones."""
        import tensorflow as tf

        if isinstance(error, RequestError):
            status, message = error.status, str(error)
        elif isinstance(error, NotFoundError):
            status, message = 404, str(error)
        elif isinstance(error, RecursionError):
            status, message = 400, "Request is nested too deeply"
        elif isinstance(
            error, (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError)
        ) or (
            isinstance(error, (ValueError, TypeError))
            and "tensorflow" in type(error).__module__
        ):
            status, message = 400, _tf_message(error)
        else:
            logger.error("request failed", exc_info=error)
            status = 500
            message = "Internal error while serving the request (see the server log)"
        return status, codec.dumps({"error": message})

    async def _lookup(self, name, api, function):
        started = time.perf_counter()
        status = 500
        try:
            result = function()
            status = 200
            return _json_response(result)
        except NotFoundError as error:
            status = 404
            return _error(str(error), 404)
        finally:
            self.metrics.observe_request(
                name, api, status, time.perf_counter() - started
            )

    def _metadata(self, name, version, label):
        servable = self.manager.servable(name, self._version(version), label)
        return {
            "model_spec": {
                "name": name,
                "signature_name": "",
                "version": str(servable.version),
            },
            "metadata": {
                "signature_def": {
                    "signature_def": {
                        k: s.to_json() for k, s in servable.signatures.items()
                    }
                }
            },
        }

    # --- the app --------------------------------------------------------------------

    def build(self, lifespan=None):
        app = FastAPI(
            title="kerasdl serve",
            description="TensorFlow Serving's REST API for SavedModels.",
            lifespan=lifespan,
        )
        manager = self.manager

        @app.get("/v1/models/{model_name}", tags=["status"])
        async def model_status(model_name: str):
            return await self._lookup(
                model_name,
                "status",
                lambda: {"model_version_status": manager.status(model_name)},
            )

        @app.get("/v1/models/{model_name}/versions/{version}", tags=["status"])
        async def version_status(model_name: str, version: str):
            return await self._lookup(
                model_name,
                "status",
                lambda: {
                    "model_version_status": manager.status(
                        model_name, self._version(version)
                    )
                },
            )

        @app.get("/v1/models/{model_name}/labels/{label}", tags=["status"])
        async def label_status(model_name: str, label: str):
            return await self._lookup(
                model_name,
                "status",
                lambda: {
                    "model_version_status": manager.status(model_name, label=label)
                },
            )

        @app.get("/v1/models/{model_name}/metadata", tags=["metadata"])
        async def metadata(model_name: str):
            return await self._lookup(
                model_name, "metadata", lambda: self._metadata(model_name, None, None)
            )

        @app.get(
            "/v1/models/{model_name}/versions/{version}/metadata", tags=["metadata"]
        )
        async def version_metadata(model_name: str, version: str):
            return await self._lookup(
                model_name,
                "metadata",
                lambda: self._metadata(model_name, version, None),
            )

        @app.get("/v1/models/{model_name}/labels/{label}/metadata", tags=["metadata"])
        async def label_metadata(model_name: str, label: str):
            return await self._lookup(
                model_name, "metadata", lambda: self._metadata(model_name, None, label)
            )

        extra = {"requestBody": _PREDICT_BODY}

        @app.post(
            "/v1/models/{model_name}:{method}", tags=["inference"], openapi_extra=extra
        )
        async def call(request: Request, model_name: str, method: str):
            return await self.call_model(request, model_name, None, None, method)

        @app.post(
            "/v1/models/{model_name}/versions/{version}:{method}",
            tags=["inference"],
            openapi_extra=extra,
        )
        async def call_version(
            request: Request, model_name: str, version: str, method: str
        ):
            return await self.call_model(request, model_name, version, None, method)

        @app.post(
            "/v1/models/{model_name}/labels/{label}:{method}",
            tags=["inference"],
            openapi_extra=extra,
        )
        async def call_label(
            request: Request, model_name: str, label: str, method: str
        ):
            return await self.call_model(request, model_name, None, label, method)

        @app.get("/monitoring/prometheus/metrics", tags=["monitoring"])
        async def prometheus_metrics():
            return Response(
                self.metrics.render(),
                media_type="text/plain; version=0.0.4; charset=utf-8",
            )

        @app.exception_handler(HTTPException)
        async def http_error(request, error):
            return _error(str(error.detail), error.status_code)

        @app.exception_handler(RequestValidationError)
        async def validation_error(request, error):
            return _error(
                "Malformed request: "
                + "; ".join(e.get("msg", "") for e in error.errors()),
                400,
            )

        @app.exception_handler(Exception)
        async def internal_error(request, error):
            logger.error("unhandled error", exc_info=error)
            return _error(
                "Internal error while serving the request (see the server log)", 500
            )

        return InferenceRoutes(self, app)


# Starlette's patterns for the three inference routes, in FastAPI's order.
_CALL_PATTERNS = [
    compile_path(path)[0]
    for path in (
        "/v1/models/{model_name}:{method}",
        "/v1/models/{model_name}/versions/{version}:{method}",
        "/v1/models/{model_name}/labels/{label}:{method}",
    )
]


class InferenceRoutes:
    """ASGI front: answers `POST` inference URLs itself, passes the rest to `app`.

    The inference routes skip FastAPI's middleware stack, routing and parameter
    binding (the handlers need none of it); the answers are the same as the
    FastAPI routes give, which remain registered for the OpenAPI schema.

    Args:
        serving: the `ServingApp` whose `infer` answers inference requests.
        app: the FastAPI app for everything else (and the lifespan).
    """

    def __init__(self, serving, app):
        self.serving = serving
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            for pattern in _CALL_PATTERNS:
                match = pattern.match(path)
                if match is not None:
                    await self._infer(scope, receive, send, match.groupdict())
                    return
        await self.app(scope, receive, send)

    async def _infer(self, scope, receive, send, params):
        status, payload = await self.serving.infer(
            _asgi_headers(scope),
            _receive_chunks(receive),
            params["model_name"],
            params.get("version"),
            params.get("label"),
            params["method"],
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(payload)).encode())]
                + _JSON_HEADERS,
            }
        )
        await send({"type": "http.response.body", "body": payload})
