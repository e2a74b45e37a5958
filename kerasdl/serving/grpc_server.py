"""TF Serving's gRPC API: `PredictionService` and `ModelService` on `grpc.aio`.

The servicers implement the generated `tensorflow_serving.apis` servicer classes
over the same `ModelManager` (and so the same loaded servables) as the REST API,
in the same process and event loop. Requests are answered as TensorFlow Serving
answers them: the same response fields, and errors as gRPC status codes with TF
Serving's messages (NOT_FOUND for an unknown model or version, INVALID_ARGUMENT
for a bad request or an unknown version label, FAILED_PRECONDITION for an unknown
predict signature, ...). Model calls run in the inference thread pool, except
small requests for signatures whose calls have been quick (under
`inline_run_seconds`), which run on the event loop as REST's do.

Example, with the official client:

```python
import grpc, tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

stub = prediction_service_pb2_grpc.PredictionServiceStub(
    grpc.insecure_channel("127.0.0.1:8500"))
request = predict_pb2.PredictRequest()
request.model_spec.name = "lenet"
request.inputs["image"].CopyFrom(tf.make_tensor_proto(images))
scores = tf.make_ndarray(stub.Predict(request, 10.0).outputs["output_0"])
```
"""

import asyncio
import logging
import os
import time

import grpc
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from kerasdl.serving import grpc_codec
from kerasdl.serving.codec import RequestError, tf_message
from kerasdl.serving.grpc_codec import StatusError, invalid_argument
from kerasdl.serving.model_manager import NotFoundError, UnknownLabelError
from kerasdl.serving.servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    INLINE_PARSE_BYTES,
    INLINE_RUN_SECONDS,
    REGRESS_METHOD,
)

logger = logging.getLogger("kerasdl.serving")

SIGNATURE_DEF_FIELD = "signature_def"
# Requests up to this size may run on the event loop (see `inline_run_seconds`).
# TF Serving's ToGRPCStatus cuts messages at 1024 characters.
_MESSAGE_LIMIT = 1024
_CODES = {code.value[0]: code for code in grpc.StatusCode}
_HTTP_CODES = {
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def parse_channel_arguments(text):
    """TF Serving's `--grpc_channel_arguments`: `"key=value,key=value"` as gRPC options.

    Values that read as 32-bit integers are passed as integers, the rest as
    strings, as TF Serving does. Raises ValueError for an entry without `=`.
    """
    options = []
    for entry in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise ValueError(
                "--grpc_channel_arguments takes comma-separated key=value pairs "
                f"(e.g. grpc.max_connection_age_ms=2000). Received: {entry!r}"
            )
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is not None and -(2**31) <= number < 2**31:
            options.append((key, number))
        else:
            options.append((key, value))
    return options


def _raised_by_tensorflow(error):
    """True when TensorFlow raised `error` (its own class, or a builtin from its code)."""
    if "tensorflow" in type(error).__module__:
        return True
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and (
        f"{os.sep}tensorflow{os.sep}" in frame.tb_frame.f_code.co_filename
    )


def status_of(error):
    """An exception as `(grpc.StatusCode, message)`; logs unexpected ones."""
    import tensorflow as tf

    if isinstance(error, StatusError):
        code, message = error.code, str(error)
    elif isinstance(error, NotFoundError):
        code, message = grpc.StatusCode.NOT_FOUND, str(error)
    elif isinstance(error, UnknownLabelError):
        code, message = grpc.StatusCode.INVALID_ARGUMENT, str(error)
    elif isinstance(error, RequestError):  # the servable's checks, in REST's terms
        code = _HTTP_CODES.get(error.status, grpc.StatusCode.INVALID_ARGUMENT)
        if error.status >= 500 and error.status != 503:
            code = grpc.StatusCode.INTERNAL
        message = tf_message(error)
    elif isinstance(error, tf.errors.OpError):
        code = _CODES.get(error.error_code, grpc.StatusCode.UNKNOWN)
        message = tf_message(error)
    elif isinstance(error, (ValueError, TypeError)) and _raised_by_tensorflow(error):
        code, message = grpc.StatusCode.INVALID_ARGUMENT, tf_message(error)
    else:
        logger.error("gRPC request failed", exc_info=error)
        code = grpc.StatusCode.INTERNAL
        message = "Internal error while serving the request (see the server log)"
    if len(message) > _MESSAGE_LIMIT:
        message = message[:_MESSAGE_LIMIT] + "...TRUNCATED"
    return code, message


def _model_name(request):
    """The model a request names, for the metrics' `model_name` label."""
    if hasattr(request, "model_spec"):
        return request.model_spec.name
    tasks = getattr(request, "tasks", None)  # MultiInferenceRequest
    return tasks[0].model_spec.name if tasks else ""


def _model_spec(name, signature_name, version):
    """TF Serving's MakeModelSpec: an empty signature name reads `serving_default`."""
    spec = model_pb2.ModelSpec(name=name)
    if signature_name is not None:
        spec.signature_name = signature_name or DEFAULT_SIGNATURE
    spec.version.value = version
    return spec


class _Service:
    """What both services share: the manager, the thread pool, servable lookup."""

    def __init__(self, manager, executor, metrics=None):
        self.manager = manager
        self.executor = executor
        self.metrics = metrics

    async def answer(self, context, request, api, work):
        """Awaits `work()`; an exception becomes the call's gRPC status.

        Counted in `metrics` (when given) like REST requests, with `api`
        (`grpc_predict`, ...) and the gRPC status name as `code`.
        """
        model = _model_name(request)
        metrics = self.metrics
        if metrics is not None:
            metrics.request_started(model)
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await work()
        except Exception as error:  # noqa: BLE001 - every error becomes a status
            code, message = status_of(error)
        finally:
            if metrics is not None:
                metrics.request_finished(model)
                metrics.observe_request(
                    model, api, code.name, time.perf_counter() - started
                )
        await context.abort(code, message)

    def servable(self, spec):
        """The servable a `ModelSpec` names, as TF Serving's ServerCore resolves it."""
        if not spec.name:
            raise invalid_argument("ModelSpec has no name specified.")
        choice = spec.WhichOneof("version_choice")
        version = spec.version.value if choice == "version" else None
        if choice == "version_label":
            version = self.manager.resolve_version(spec.name, label=spec.version_label)
        return self.manager.servable(spec.name, version)

    async def in_pool(self, function, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, function, *args)


class PredictionServicer(
    prediction_service_pb2_grpc.PredictionServiceServicer, _Service
):
    """`tensorflow.serving.PredictionService` over a `ModelManager`.

    Args:
        manager: the `ModelManager` the REST API also serves from.
        executor: the thread pool that runs models.
        max_tensor_bytes: largest decoded size of one request's input tensors
            (a tensor proto may give a few values and a huge shape). Defaults to
            32 MiB.
        batcher: optional `Batcher` shared with REST predict calls. Defaults to
            None (no batching).
        inline_run_seconds: a request of at most 64 KiB runs on the event loop when
            its signature's recent calls took less than this; 0 always uses the
            thread pool. Defaults to 0.002.
        metrics: optional `Metrics` counting the calls. Defaults to None.
    """

    def __init__(
        self,
        manager,
        executor,
        max_tensor_bytes=32 << 20,
        batcher=None,
        inline_run_seconds=INLINE_RUN_SECONDS,
        metrics=None,
    ):
        _Service.__init__(self, manager, executor, metrics)
        self.max_tensor_bytes = max_tensor_bytes
        self.batcher = batcher
        self.inline_run_seconds = inline_run_seconds

    def _quick(self, signature, request):
        return (
            signature.is_quick(self.inline_run_seconds)
            and request.ByteSize() <= INLINE_PARSE_BYTES
        )

    async def _run(self, signature, request, function, *args):
        """`function(*args)` on the loop for quick small requests, else in the pool."""
        if self._quick(signature, request):
            return function(*args)
        return await self.in_pool(function, *args)

    # --- Predict --------------------------------------------------------------------

    @staticmethod
    def _predict_signature(servable, name):
        name = name or DEFAULT_SIGNATURE
        signature = servable.signatures.get(name)
        if signature is None:
            raise StatusError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{name}" not found.',
            )
        if not signature.supported:
            raise invalid_argument(
                f"Signature '{name}' uses sparse or ragged tensors, not served"
            )
        return signature

    def _predict(self, servable, signature, request):
        inputs = grpc_codec.predict_inputs(request, signature, self.max_tensor_bytes)
        keys = grpc_codec.output_keys(request, signature)
        return self._predict_response(servable, signature, request, keys, inputs)

    @staticmethod
    def _predict_response(servable, signature, request, keys, inputs, outputs=None):
        if outputs is None:
            outputs = signature.run(inputs)
        response = predict_pb2.PredictResponse(
            model_spec=_model_spec(
                request.model_spec.name,
                request.model_spec.signature_name,
                servable.version,
            )
        )
        for key in keys:
            response.outputs[key].CopyFrom(grpc_codec.to_proto(outputs[key]))
        return response

    async def _batched(self, servable, signature, request):
        inputs = grpc_codec.predict_inputs(request, signature, self.max_tensor_bytes)
        keys = grpc_codec.output_keys(request, signature)
        rows = {v.shape[0] for v in inputs.values() if v.ndim}
        batchable = len(rows) == 1 and all(
            value.ndim >= 1
            and (
                signature.inputs[key].shape is None
                or signature.inputs[key].shape[0] is None
            )
            for key, value in inputs.items()
        )
        if not batchable:
            return await self.in_pool(
                self._predict_response, servable, signature, request, keys, inputs
            )
        outputs = await self.batcher.submit(servable, signature.name, inputs)
        return self._predict_response(
            servable, signature, request, keys, inputs, outputs
        )

    async def Predict(self, request, context):
        async def work():
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            servable = self.servable(request.model_spec)
            signature = self._predict_signature(
                servable, request.model_spec.signature_name
            )
            if self.batcher is not None:
                return await self._batched(servable, signature, request)
            return await self._run(
                signature, request, self._predict, servable, signature, request
            )

        return await self.answer(context, request, "grpc_predict", work)

    # --- Classify / Regress -------------------------------------------------------------

    @staticmethod
    def _examples_signature(servable, name, check):
        name = name or DEFAULT_SIGNATURE
        signature = servable.signatures.get(name)
        if signature is None:
            raise invalid_argument(f"No signature was found with the name: {name}")
        check(signature)
        return signature

    @staticmethod
    def _infer(signature, request, to_result):
        examples = grpc_codec.serialized_examples(request.input)
        outputs = signature.run({next(iter(signature.inputs)): examples})
        return to_result(outputs, len(examples))

    async def _examples_call(self, request, check, to_result, response_type):
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        servable = self.servable(request.model_spec)
        signature = self._examples_signature(
            servable, request.model_spec.signature_name, check
        )
        result = await self._run(
            signature, request, self._infer, signature, request, to_result
        )
        response = response_type(
            model_spec=_model_spec(
                request.model_spec.name,
                request.model_spec.signature_name,
                servable.version,
            )
        )
        response.result.CopyFrom(result)
        return response

    async def Classify(self, request, context):
        return await self.answer(
            context,
            request,
            "grpc_classify",
            lambda: self._examples_call(
                request,
                grpc_codec.check_classification,
                grpc_codec.classification_result,
                classification_pb2.ClassificationResponse,
            ),
        )

    async def Regress(self, request, context):
        return await self.answer(
            context,
            request,
            "grpc_regress",
            lambda: self._examples_call(
                request,
                grpc_codec.check_regression,
                grpc_codec.regression_result,
                regression_pb2.RegressionResponse,
            ),
        )

    # --- MultiInference --------------------------------------------------------------

    def _multi_inference(self, request):
        tasks = request.tasks
        servable = self.servable(
            tasks[0].model_spec if tasks else model_pb2.ModelSpec()
        )
        model_name = tasks[0].model_spec.name
        plan, seen = [], set()
        for task in tasks:
            if not task.model_spec.name:
                raise invalid_argument("Found ModelSpec with an empty model name.")
            if task.model_spec.name != model_name:
                raise invalid_argument(
                    "All ModelSpecs in a MultiInferenceRequest must access the same "
                    "model name."
                )
            name = task.model_spec.signature_name or DEFAULT_SIGNATURE
            if name in seen:
                raise invalid_argument(f"Duplicate evaluation of signature: {name}")
            seen.add(name)
            signature = servable.signatures.get(name)
            if signature is None:
                raise invalid_argument(
                    f"Requested signature not found in model graph: {name}"
                )
            if task.method_name == CLASSIFY_METHOD:
                grpc_codec.check_classification(signature)
                plan.append((task, signature, grpc_codec.classification_result))
            elif task.method_name == REGRESS_METHOD:
                grpc_codec.check_regression(signature)
                plan.append((task, signature, grpc_codec.regression_result))
            else:
                raise StatusError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"Unsupported signature method_name: {task.method_name}",
                )
        examples = grpc_codec.serialized_examples(request.input)
        response = inference_pb2.MultiInferenceResponse()
        for task, signature, to_result in plan:
            outputs = signature.run({next(iter(signature.inputs)): examples})
            result = to_result(outputs, len(examples))
            entry = response.results.add(
                model_spec=_model_spec(
                    task.model_spec.name,
                    task.model_spec.signature_name,
                    servable.version,
                )
            )
            if task.method_name == CLASSIFY_METHOD:
                entry.classification_result.CopyFrom(result)
            else:
                entry.regression_result.CopyFrom(result)
        return response

    async def MultiInference(self, request, context):
        return await self.answer(
            context,
            request,
            "grpc_multi_inference",
            lambda: self.in_pool(self._multi_inference, request),
        )

    # --- GetModelMetadata ------------------------------------------------------------

    def _metadata(self, request):
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        if not request.metadata_field:
            raise invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise invalid_argument(f"Metadata field {field} is not supported")
        servable = self.servable(request.model_spec)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in servable.signatures.items():
            signatures.signature_def[name].CopyFrom(grpc_codec.signature_def(signature))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signatures)
        return response

    async def GetModelMetadata(self, request, context):
        async def work():
            return self._metadata(request)

        return await self.answer(context, request, "grpc_metadata", work)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer, _Service):
    """`tensorflow.serving.ModelService`: version status and live config reloads.

    Args:
        manager: the `ModelManager` whose versions are reported and reconfigured.
        executor: unused by status calls; kept for symmetry. Defaults to None.
        metrics: optional `Metrics` counting the calls. Defaults to None.
    """

    def __init__(self, manager, executor=None, metrics=None):
        _Service.__init__(self, manager, executor, metrics)

    def _status(self, request):
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        response = get_model_status_pb2.GetModelStatusResponse()
        for entry in self.manager.status(spec.name, version):
            status = response.model_version_status.add()
            try:
                json_format.ParseDict(entry, status)
            except json_format.ParseError:  # an error code name outside the enum
                entry = {
                    **entry,
                    "status": {**entry["status"], "error_code": "UNKNOWN"},
                }
                json_format.ParseDict(entry, status)
        return response

    async def GetModelStatus(self, request, context):
        async def work():
            return self._status(request)

        return await self.answer(context, request, "grpc_status", work)

    async def HandleReloadConfigRequest(self, request, context):
        response = model_management_pb2.ReloadConfigResponse()
        code, message = grpc.StatusCode.OK, ""
        if request.config.WhichOneof("config") != "model_config_list":
            code = grpc.StatusCode.INVALID_ARGUMENT
            message = (
                "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                "Only ModelConfigList is currently supported"
            )
        else:
            from kerasdl.serving.config import model_configs_from_proto

            try:
                configs = model_configs_from_proto(request.config)
                await asyncio.to_thread(self.manager.reload_config, configs)
            except Exception as error:  # noqa: BLE001 - reported as the status
                # ConfigError and ReloadError name TF Serving's code in `code`.
                name = getattr(error, "code", None)
                if isinstance(name, str) and name in grpc.StatusCode.__members__:
                    code, message = grpc.StatusCode[name], str(error)
                else:
                    code, message = status_of(error)
        if code != grpc.StatusCode.OK:
            logger.error("ReloadConfig failed: %s", message)
            await context.abort(code, message)
        response.status.error_code = code.value[0]
        for name in request.metric_names:
            # TF Serving reports how its own monitoring counters grew; kerasdl
            # keeps none under those names, so each reads as unchanged.
            response.metric.add(name=name, int64_value_increase=0)
        return response


def server_options(max_message_bytes, channel_arguments=()):
    """gRPC server options: the message size limit, then `channel_arguments`.

    `grpc.so_reuseport` stays on (gRPC's default, and TF Serving's), so the
    `--workers` processes can share the port.
    """
    options = {
        "grpc.max_receive_message_length": max_message_bytes,
        "grpc.max_send_message_length": max_message_bytes,
    }
    options.update(dict(channel_arguments))
    return list(options.items())


def build_server(
    manager,
    executor,
    host,
    port,
    max_message_bytes=32 << 20,
    channel_arguments=(),
    batcher=None,
    inline_run_seconds=INLINE_RUN_SECONDS,
    metrics=None,
):
    """An unstarted `grpc.aio.Server` with both services, bound to `host:port`.

    Call it in the event loop that will serve it. Returns `(server, bound_port)`;
    raises OSError when the address cannot be bound.

    Args:
        manager: the `ModelManager`.
        executor: the thread pool that runs models.
        host: address to bind (`127.0.0.1`, `0.0.0.0`, `::1`, ...).
        port: TCP port; 0 picks a free one.
        max_message_bytes: largest request or response message, and largest
            decoded size of one request's input tensors. Defaults to 32 MiB.
        channel_arguments: extra `(key, value)` gRPC options (see
            `parse_channel_arguments`). Defaults to none.
        batcher: optional `Batcher` for predict calls. Defaults to None.
        inline_run_seconds: see `PredictionServicer`. Defaults to 0.002.
        metrics: optional `kerasdl.serving.metrics.Metrics` shared with REST; gRPC
            calls count under `api="grpc_predict"`, ... Defaults to None.
    """
    server = grpc.aio.server(
        options=server_options(max_message_bytes, channel_arguments)
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(
            manager,
            executor,
            max_message_bytes,
            batcher,
            inline_run_seconds,
            metrics=metrics,
        ),
        server,
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(manager, executor, metrics=metrics), server
    )
    address = (
        f"[{host}]:{port}"
        if ":" in host and not host.startswith("[")
        else (f"{host}:{port}")
    )
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"cannot bind the gRPC port {address}: {error}") from error
    if not bound:
        raise OSError(f"cannot bind the gRPC port {address}")
    return server, bound
