"""SavedModel warm-up, as TF Serving does it: replay recorded requests before serving.

A version may carry `assets.extra/tf_serving_warmup_requests`, a TFRecord file of
`tensorflow.serving.PredictionLog` protos (Predict, Classify, Regress or
MultiInference requests). `run_warmup` replays each record once against the
loaded servable, through the same `Signature.run` requests use, before the
version becomes AVAILABLE, so the first real request finds every lazily built
piece of the runtime (function instantiation, oneDNN primitives for that batch
size) ready. As in TF Serving (`servables/tensorflow/saved_model_warmup_util.cc`):
no file means no warm-up; more than 1000 records, a record that is not a
`PredictionLog`, a file that is not TFRecord, an unsupported log type or a
request that fails all fail the version's load.
"""

import logging
import os
import time

logger = logging.getLogger("kerasdl.serving")

WARMUP_FILE_NAME = "tf_serving_warmup_requests"
WARMUP_PATH = os.path.join("assets.extra", WARMUP_FILE_NAME)
MAX_WARMUP_RECORDS = 1000  # TF Serving's WarmupConsts::kMaxNumRecords
DEFAULT_SIGNATURE = "serving_default"


def _load_error(message, code):
    from kerasdl.serving.servable import LoadError

    return LoadError(message, code)


def _signature(servable, model_spec, path):
    name = model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signatures.get(name)
    if signature is None:
        raise _load_error(
            f'{path}: warm-up request names signature "{name}", not found in the '
            f"SavedModel; available: {sorted(servable.signatures)}",
            "INVALID_ARGUMENT",
        )
    return signature


def _run_predict(servable, request, path):
    import tensorflow as tf

    signature = _signature(servable, request.model_spec, path)
    received, expected = set(request.inputs), set(signature.inputs)
    # As TF Serving: an input the signature has a default for may be left out.
    if not received <= expected or not expected - set(signature.defaults) <= received:
        raise _load_error(
            f"{path}: warm-up Predict request for signature '{signature.name}' has "
            f"inputs {sorted(received)}; expected {sorted(expected)}"
            + (
                f" (optional: {sorted(signature.defaults)})"
                if signature.defaults
                else ""
            ),
            "INVALID_ARGUMENT",
        )
    inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
    signature.run({**signature.defaults, **inputs})


def _run_examples(servable, model_spec, request_input, path, method):
    signature = _signature(servable, model_spec, path)
    if len(signature.inputs) != 1:
        raise _load_error(
            f"{path}: warm-up {method} request for signature '{signature.name}', "
            f"which takes {len(signature.inputs)} inputs; expected one string input",
            "INVALID_ARGUMENT",
        )
    from kerasdl.serving import grpc_codec

    try:
        examples = grpc_codec.serialized_examples(request_input)
    except grpc_codec.StatusError:  # "Input is empty."
        raise _load_error(
            f"{path}: warm-up {method} request has no examples", "INVALID_ARGUMENT"
        ) from None
    signature.run({next(iter(signature.inputs)): examples})


def _replay(servable, log, path):
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        _run_predict(servable, log.predict_log.request, path)
    elif kind == "classify_log":
        request = log.classify_log.request
        _run_examples(servable, request.model_spec, request.input, path, "Classify")
    elif kind == "regress_log":
        request = log.regress_log.request
        _run_examples(servable, request.model_spec, request.input, path, "Regress")
    elif kind == "multi_inference_log":
        request = log.multi_inference_log.request
        for task in request.tasks:
            _run_examples(servable, task.model_spec, request.input, path, "Inference")
    elif kind is not None:
        raise _load_error(
            f"{path}: Unsupported log_type for warmup: {kind}", "UNIMPLEMENTED"
        )


def _records(path):
    """Yields the raw records of a TFRecord file (DataLossError when corrupt)."""
    import tensorflow as tf

    for record in tf.data.TFRecordDataset(path):
        yield record.numpy()


def run_warmup(servable, version_path):
    """Replays `<version_path>/assets.extra/tf_serving_warmup_requests`, if present.

    Args:
        servable: the loaded `Servable` (its `signatures` are run).
        version_path: the version directory the servable was loaded from.

    Returns:
        The number of records replayed (0 when there is no warm-up file).

    Raises:
        LoadError: the file is not TFRecord (`DATA_LOSS`), holds a record that
            is not a `PredictionLog` or more than 1000 records
            (`INVALID_ARGUMENT`), an unsupported log type (`UNIMPLEMENTED`), or
            a request that fails (its own error, naming the file).
    """
    import tensorflow as tf
    from google.protobuf import message as protobuf_message
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(version_path, WARMUP_PATH)
    if not os.path.exists(path):
        return 0
    started = time.perf_counter()
    count = 0
    try:
        for record in _records(path):
            log = prediction_log_pb2.PredictionLog()
            try:
                log.ParseFromString(record)
            except protobuf_message.DecodeError:
                raise _load_error(
                    f"Failed to parse warmup record {count + 1} from {path}: "
                    "expected a serialized tensorflow.serving.PredictionLog",
                    "INVALID_ARGUMENT",
                ) from None
            try:
                _replay(servable, log, path)
            except Exception as error:
                if hasattr(error, "code") and isinstance(error.code, str):
                    raise  # a LoadError of ours already says what is wrong
                detail = getattr(error, "message", None) or str(error)
                raise _load_error(
                    f"{path}: warm-up request {count + 1} failed: "
                    f"{type(error).__name__}: {detail}"[:1000],
                    "INVALID_ARGUMENT",
                ) from None
            count += 1
            if count > MAX_WARMUP_RECORDS:
                raise _load_error(
                    f"Number of warmup records exceeds the maximum "
                    f"({MAX_WARMUP_RECORDS}) at {path}",
                    "INVALID_ARGUMENT",
                )
    except tf.errors.DataLossError as error:  # from reading the TFRecord file
        raise _load_error(
            f"{path}: {error.message}. Please verify your warmup data is in "
            "TFRecord format.",
            "DATA_LOSS",
        ) from None
    except tf.errors.OpError as error:
        raise _load_error(
            f"cannot read {path}: {type(error).__name__}: {error.message}"[:1000],
            "UNKNOWN",
        ) from None
    logger.info(
        "%s version %s: replayed %d warm-up records in %.3f s",
        getattr(servable, "name", "?"),
        getattr(servable, "version", "?"),
        count,
        time.perf_counter() - started,
    )
    return count
