"""The HTTP layer: TF Serving's REST API as one ASGI application.

One routing path. `ServingApp.__call__` is the whole app; it answers the ASGI
lifespan (starting and stopping the model manager) and every HTTP request:

- `/v1/...` (any letter case, as TF Serving): `_v1` matches TF Serving's own URL
  patterns, `PREDICTION_URL` for POST and `STATUS_URL` for GET (from
  tensorflow_serving/model_servers/http_rest_api_util.cc), and calls `infer`,
  `_status` or `_metadata`. Any other method or path under `/v1/` gets TF
  Serving's 400 `Malformed request: <METHOD> <path>`.
- `/monitoring/prometheus/metrics`: the metrics page (`Metrics.render`).
- `/openapi.json` and `/docs`: the OpenAPI document (`openapi_document`, written
  for the same patterns; a test checks every documented path is routed) and
  FastAPI's Swagger UI page for it.
- anything else: a JSON 404.

To add an endpoint: a branch in `__call__` (or `_v1`), a handler returning
`(status, body bytes)`, and its entry in `openapi_document`.

Why one hand-written router rather than FastAPI or Starlette routes:
TF Serving's URL grammar does not fit path templates (a case-insensitive match,
model name and method in one segment, `name:predict`, and a 400 with TF
Serving's message rather than 404/405 for everything else under `/v1/`); and
FastAPI's per-request machinery (middleware stack, request object, parameter
binding) took an in-process dense-model predict from 250 to 415 µs, a sixth of
the server's whole CPU time per LeNet request. FastAPI is still used for what it
does well here: the Swagger UI page.

A request's body is read under a byte limit, parsed (orjson when installed, the
standard library for what orjson refuses, such as NaN), validated against the
signature, run, and encoded. Small bodies for signatures whose calls are fast run
on the event loop; everything else runs in a thread pool, so a big request never
blocks the loop. Every error is a JSON `{"error": "..."}` with a 4xx status;
anything unexpected gets a sanitized 500 and its traceback is logged.
"""

import asyncio
import contextlib
import logging
import re
import time
import urllib.parse
import zlib

from starlette.requests import ClientDisconnect

from kerasdl.serving import codec
from kerasdl.serving.codec import RequestError
from kerasdl.serving.model_manager import NotFoundError, UnknownLabelError
from kerasdl.serving.servable import (
    DEFAULT_SIGNATURE,
    INLINE_PARSE_BYTES,
    INLINE_RUN_SECONDS,
)

logger = logging.getLogger("kerasdl.serving")

# Bodies below this are parsed on the event loop; bigger ones in the thread pool.

# TF Serving's URL grammar (http_rest_api_util.cc): RE2 `(?i)` patterns, matched
# in full against the raw (still percent-encoded) path.
V1_URL = re.compile(r"/v1/.*", re.IGNORECASE | re.ASCII | re.DOTALL)
PREDICTION_URL = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?"
    r":(classify|regress|predict)",
    re.IGNORECASE | re.ASCII,
)
STATUS_URL = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?",
    re.IGNORECASE | re.ASCII,
)
METRICS_PATH = "/monitoring/prometheus/metrics"
_INT64_MAX = 2**63 - 1

_JSON = b"application/json"
_HTML = b"text/html; charset=utf-8"


def _tf_message(error):
    """A TF op error's message without graph internals, at most 500 characters."""
    return codec.tf_message(error)[:500]


def _error_json(message):
    return codec.dumps({"error": message})


async def _receive_chunks(receive):
    """An ASGI request's body chunks, as they arrive."""
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
    """The request headers as {lower-case name: first value}."""
    headers = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


def _raw_path(scope):
    """The request path as sent (percent-encoded, no query), as TF Serving matches it."""
    raw = scope.get("raw_path")
    if raw is None:
        return scope["path"]
    return raw.partition(b"?")[0].decode("latin-1")


def _unquote(text):
    return None if text is None else urllib.parse.unquote(text)


async def _send(send, status, body, content_type=_JSON):
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", content_type),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ServingApp:
    """The ASGI app (see the module docstring) over a `ModelManager`.

    Args:
        manager: the `ModelManager` holding the models.
        executor: thread pool for parsing big bodies and running models.
        metrics: a `Metrics` collector.
        max_body_bytes: largest request body (after gzip inflation). Defaults to 32 MiB.
        batcher: optional `Batcher` for predict calls. Defaults to None (no batching).
        inline_run_seconds: a request whose body is at most 64 KiB runs on the event
            loop when its signature's recent calls took less than this; 0 always
            uses the thread pool. Defaults to 0.002.
        lifespan: optional `app -> async context manager` entered at startup and
            left at shutdown (the server starts and stops the manager's poller
            there). Defaults to None.
    """

    def __init__(
        self,
        manager,
        executor,
        metrics,
        max_body_bytes=32 << 20,
        batcher=None,
        inline_run_seconds=INLINE_RUN_SECONDS,
        lifespan=None,
    ):
        self.manager = manager
        self.executor = executor
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.batcher = batcher
        self.inline_run_seconds = inline_run_seconds
        self.lifespan = lifespan
        self._openapi = None

    def build(self, lifespan=None):
        """Sets the lifespan (if given) and returns the ASGI app: this object."""
        if lifespan is not None:
            self.lifespan = lifespan
        return self

    # --- the router ---------------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":  # websockets: not served
            await send({"type": "websocket.close", "code": 1000})
            return
        path = _raw_path(scope)
        if V1_URL.fullmatch(path):
            await self._v1(scope, receive, send, path)
            return
        if path == METRICS_PATH:
            body, content_type = self.metrics.render(), self.metrics.content_type
            await _send(send, 200, body, content_type.encode())
        elif path == "/openapi.json":
            await _send(send, 200, self.openapi_json())
        elif path == "/docs":
            await _send(send, 200, self._swagger_page(), _HTML)
        else:
            message = (
                f"Not found: {path[:200]}; TF Serving's REST API is under /v1/models"
            )
            await _send(send, 404, _error_json(message))

    async def _v1(self, scope, receive, send, path):
        """TF Serving's `HttpRestApiHandler::ProcessRequest`, path by path."""
        method = scope["method"]
        match = None
        if method == "POST":
            match = PREDICTION_URL.fullmatch(path)
        elif method == "GET":
            match = STATUS_URL.fullmatch(path)
        if match is None:
            status, payload = self._malformed(method, path)
        else:
            name, version, label, verb = match.groups()
            try:
                name, label = _unquote(name), _unquote(label)
                if version is not None:
                    number = int(version)
                    if number > _INT64_MAX:
                        raise RequestError(
                            f"Failed to convert version: {version} to numeric."
                        )
                    version = number
            except RequestError as error:
                status, payload = self._malformed(method, path, str(error))
            else:
                if method == "POST":
                    if verb not in ("predict", "classify", "regress"):
                        # TF Serving matches `:PREDICT` but dispatches on the exact name.
                        status, payload = self._malformed(method, path)
                    else:
                        status, payload = await self.infer(
                            _asgi_headers(scope),
                            _receive_chunks(receive),
                            name,
                            version,
                            label,
                            verb,
                        )
                elif not name:
                    status, payload = self._malformed(
                        method, path, "Missing model name in request."
                    )
                elif verb == "metadata":  # exact, as TF Serving: `/METADATA` is status
                    status, payload = self._lookup(
                        name, "metadata", self._metadata, name, version, label
                    )
                else:
                    status, payload = self._lookup(
                        name, "status", self._status, name, version, label
                    )
        await _send(send, status, payload)

    def _malformed(self, method, path, message=None):
        """TF Serving's 400 for a URL or method its patterns do not accept."""
        self.metrics.observe_request("", "malformed", 400, 0.0)
        message = message or f"Malformed request: {method} {path[:200]}"
        return 400, _error_json(message)

    async def _lifespan(self, receive, send):
        """The ASGI lifespan protocol around `self.lifespan` (if any)."""
        context = self.lifespan(self) if self.lifespan else contextlib.nullcontext()
        await receive()  # lifespan.startup
        started = False
        try:
            async with context:
                started = True
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
        except BaseException as error:
            phase = "shutdown" if started else "startup"
            logger.error("%s failed", phase, exc_info=error)
            await send({"type": f"lifespan.{phase}.failed", "message": repr(error)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    # --- inference --------------------------------------------------------------------

    @staticmethod
    def _signature(servable, data):
        # `codec.parse_json` has refused a `signature_name` that is not a string;
        # an empty one means the default, as in TF Serving.
        name = data.get("signature_name") or DEFAULT_SIGNATURE
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

    def _handle_sync(self, servable, data, method, examples=None):
        """Validate, run and encode: the rest of the request in one thread.

        `examples`: a classify/regress body's `codec.examples_from_json`, read
        before the servable was looked up.
        """
        signature = self._signature(servable, data)
        if method == "predict":
            inputs, row_format = codec.decode_predict(data, signature)
            outputs = signature.run(inputs)
            return codec.dumps(codec.encode_predict(outputs, row_format))
        inputs, count = codec.decode_examples(data, signature, method, examples)
        outputs = signature.run(inputs)
        encode = codec.encode_classify if method == "classify" else codec.encode_regress
        return codec.dumps(encode(outputs, count))

    def _parse_and_handle(self, model, body, method):
        """`_handle_sync` after parsing the body (and a classify/regress body's
        examples) and looking up `model`, a `(name, version, label)`, in that
        order, as TF Serving does (a large body's one hand-off)."""
        data = codec.parse_json(body)
        examples = None if method == "predict" else codec.examples_from_json(data)
        servable = self.manager.servable(*model)
        return self._handle_sync(servable, data, method, examples)

    async def _batched(self, servable, data):
        signature = self._signature(servable, data)
        inputs, row_format = codec.decode_predict(data, signature)
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
        name = data.get("signature_name") or DEFAULT_SIGNATURE
        signature = servable.signatures.get(name)
        return signature is not None and signature.is_quick(self.inline_run_seconds)

    async def infer(self, headers, chunks, name, version, label, method):
        """Answers one inference request: `(HTTP status, JSON payload bytes)`.

        Args:
            headers: the request headers, `{lower-case name: value}`.
            chunks: async iterator over the raw request body.
            name: the model name from the URL.
            version: the version from the URL (an int), or None.
            label: the version label from the URL, or None.
            method: `"predict"`, `"classify"` or `"regress"`.
        """
        started = time.perf_counter()
        status = 500
        self.metrics.request_started(name)
        try:
            body = await read_body_from(headers, chunks, self.max_body_bytes)
            small = len(body) <= INLINE_PARSE_BYTES
            loop = asyncio.get_running_loop()
            # As in TF Serving, a body that does not parse (or whose examples do
            # not) is a 400 whichever model the URL names: the servable is looked
            # up after the JSON is read.
            batched = self.batcher is not None and method == "predict"
            if not small and not batched:  # parse to encode in one hand-off
                payload = await loop.run_in_executor(
                    self.executor,
                    self._parse_and_handle,
                    (name, version, label),
                    body,
                    method,
                )
            else:
                if small:
                    data = codec.parse_json(body)
                else:
                    data = await loop.run_in_executor(
                        self.executor, codec.parse_json, body
                    )
                examples = None
                if method != "predict":  # TF Serving reads them before the lookup
                    examples = codec.examples_from_json(data)
                servable = self.manager.servable(name, version, label)
                if batched:
                    payload = await self._batched(servable, data)
                elif self._runs_inline(servable, data):
                    payload = self._handle_sync(servable, data, method, examples)
                else:
                    payload = await loop.run_in_executor(
                        self.executor,
                        self._handle_sync,
                        servable,
                        data,
                        method,
                        examples,
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

    def _error_payload(self, error):
        """An exception as `(status, {"error": ...} bytes)`; logs unexpected ones."""
        import tensorflow as tf

        if isinstance(error, RequestError):
            status, message = error.status, str(error)
        elif isinstance(error, NotFoundError):
            status, message = 404, str(error)
        elif isinstance(error, UnknownLabelError):
            status, message = 400, str(error)
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
        return status, _error_json(message)

    # --- status and metadata ------------------------------------------------------------

    def _lookup(self, name, api, function, *args):
        """Runs a status or metadata lookup: `(status, JSON payload bytes)`."""
        started = time.perf_counter()
        try:
            status, payload = 200, codec.dumps(function(*args))
        except Exception as error:  # noqa: BLE001 - mapped to a status
            status, payload = self._error_payload(error)
        self.metrics.observe_request(name, api, status, time.perf_counter() - started)
        return status, payload

    def _status(self, name, version, label):
        return {"model_version_status": self.manager.status(name, version, label)}

    def _metadata(self, name, version, label):
        servable = self.manager.servable(name, version, label)
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

    # --- documentation ----------------------------------------------------------------

    def openapi_json(self):
        if self._openapi is None:
            self._openapi = codec.dumps(openapi_document())
        return self._openapi

    @staticmethod
    def _swagger_page():
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="kerasdl serve"
        ).body


# --- the OpenAPI document ---------------------------------------------------------------

_ERROR = {
    "description": "Error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}
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


def _parameter(name, pattern=None):
    schema = {"type": "string", "minLength": 1}
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "path", "required": True, "schema": schema}


def openapi_document():
    """The OpenAPI 3.1 document of every route `ServingApp` answers."""
    versions = [
        ("", []),
        ("/versions/{version}", [_parameter("version", r"^[0-9]+$")]),
        ("/labels/{label}", [_parameter("label", r"^[^/:]+$")]),
    ]
    name = _parameter("model_name", r"^[^/:]+$")
    method = {
        "name": "method",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": ["predict", "classify", "regress"]},
    }
    responses = {
        "200": {"description": "Success", "content": {"application/json": {}}},
        "400": _ERROR,
        "404": _ERROR,
    }
    paths = {}
    for suffix, parameters in versions:
        base = "/v1/models/{model_name}" + suffix
        paths[base] = {
            "get": {
                "tags": ["status"],
                "summary": "Version status",
                "parameters": [name, *parameters],
                "responses": responses,
            }
        }
        paths[base + "/metadata"] = {
            "get": {
                "tags": ["metadata"],
                "summary": "Signatures, dtypes and shapes",
                "parameters": [name, *parameters],
                "responses": responses,
            }
        }
        paths[base + ":{method}"] = {
            "post": {
                "tags": ["inference"],
                "summary": "Predict, classify or regress",
                "parameters": [name, *parameters, method],
                "requestBody": _PREDICT_BODY,
                "responses": {**responses, "413": _ERROR, "415": _ERROR},
            }
        }
    paths[METRICS_PATH] = {
        "get": {
            "tags": ["monitoring"],
            "summary": "Prometheus metrics",
            "responses": {
                "200": {"description": "Success", "content": {"text/plain": {}}}
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kerasdl serve",
            "description": "TensorFlow Serving's REST API for SavedModels.",
            "version": "1",
        },
        "paths": paths,
    }
