"""Protobuf <-> numpy for TF Serving's gRPC API, with TF Serving's checks and messages.

Tensors arrive as `TensorProto`s and are read with `tf.make_ndarray`; outputs are
written the way TF Serving writes them by default (`Tensor::AsProtoField`: the
typed repeated field such as `float_val`, not `tensor_content`), so clients that
read `response.outputs["scores"].float_val` work as they do against TF Serving,
and `tf.make_ndarray` reads them too. Classify and regress inputs (`Input`:
`ExampleList` or `ExampleListWithContext`) become a vector of serialized
`tf.Example`s, and the signature's outputs are checked and turned into
`ClassificationResult` / `RegressionResult` as TF Serving's `classifier.cc` and
`regressor.cc` do, with their messages. Every problem raises `StatusError`
carrying the gRPC status code TF Serving answers with.
"""

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import classification_pb2, regression_pb2

CLASSIFY_INPUTS = "inputs"
CLASSIFY_CLASSES = "classes"
CLASSIFY_SCORES = "scores"
REGRESS_INPUTS = "inputs"
REGRESS_OUTPUTS = "outputs"

# numpy dtype -> the TensorProto field TF Serving's AsProtoField fills.
_VALUE_FIELDS = {
    np.dtype(np.float32): "float_val",
    np.dtype(np.float64): "double_val",
    np.dtype(np.int32): "int_val",
    np.dtype(np.int16): "int_val",
    np.dtype(np.int8): "int_val",
    np.dtype(np.uint8): "int_val",
    np.dtype(np.uint16): "int_val",
    np.dtype(np.int64): "int64_val",
    np.dtype(np.uint32): "uint32_val",
    np.dtype(np.uint64): "uint64_val",
    np.dtype(np.bool_): "bool_val",
}


class StatusError(Exception):
    """A request refused with a gRPC status code (`grpc.StatusCode`) and message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def invalid_argument(message):
    return StatusError(grpc.StatusCode.INVALID_ARGUMENT, message)


def dtype_name(enum_value):
    """`DT_FLOAT` for 1; the number itself for values this TensorFlow does not know."""
    try:
        return types_pb2.DataType.Name(enum_value)
    except ValueError:
        return str(enum_value)


def _shape_text(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


# --- tensors ---------------------------------------------------------------------


def to_array(key, proto, info, max_bytes):
    """One request `TensorProto` as a numpy array for the input `info` (a `TensorInfo`).

    The dtype must be the signature's (TF Serving's session refuses any other);
    the shape is left to the graph, as in TF Serving. A tensor whose shape would
    expand to more than `max_bytes` (a few values and a huge shape: the proto
    format repeats the last value) is refused before anything is allocated.
    """
    if proto.dtype != info.proto.dtype:
        raise invalid_argument(
            f"Input '{key}': expected dtype {info.dtype_name}; received "
            f"{dtype_name(proto.dtype)}"
        )
    shape = proto.tensor_shape
    if shape.unknown_rank or any(d.size < 0 for d in shape.dim):
        raise invalid_argument(f"tensor parsing error: {key}")
    elements = 1
    for d in shape.dim:
        elements *= d.size
    itemsize = 8 if info.numpy_dtype == object else info.numpy_dtype.itemsize
    if elements * itemsize > max_bytes:
        raise StatusError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"Input '{key}': shape {_shape_text(d.size for d in shape.dim)} holds "
            f"{elements * itemsize} bytes, over the {max_bytes}-byte limit",
        )
    try:
        return tf.make_ndarray(proto)
    except (ValueError, TypeError):
        raise invalid_argument(f"tensor parsing error: {key}")


def to_proto(array):
    """A numpy output as a `TensorProto` with typed value fields (TF Serving's default)."""
    proto = tensor_pb2.TensorProto()
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    flat = array.reshape(-1)
    field = _VALUE_FIELDS.get(array.dtype)
    if field is not None:
        proto.dtype = tf.as_dtype(array.dtype).as_datatype_enum
        getattr(proto, field).extend(flat.tolist())
    elif array.dtype == object or array.dtype.kind == "S":
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(
            v if isinstance(v, bytes) else str(v).encode("utf-8") for v in flat
        )
    elif array.dtype in (np.dtype(np.float16), tf.bfloat16.as_numpy_dtype):
        proto.dtype = tf.as_dtype(array.dtype).as_datatype_enum
        proto.half_val.extend(flat.view(np.uint16).tolist())
    elif array.dtype == np.complex64:
        proto.dtype = types_pb2.DT_COMPLEX64
        proto.scomplex_val.extend(flat.view(np.float32).tolist())
    elif array.dtype == np.complex128:
        proto.dtype = types_pb2.DT_COMPLEX128
        proto.dcomplex_val.extend(flat.view(np.float64).tolist())
    else:  # anything rarer: tensor_content, which tf.make_ndarray reads as well
        proto.CopyFrom(tf.make_tensor_proto(array))
    return proto


# --- signatures -----------------------------------------------------------------------


def signature_def(signature):
    """The `SignatureDef` proto of a `Signature` (for metadata and error messages)."""
    return meta_graph_pb2.SignatureDef(
        inputs={key: info.proto for key, info in signature.inputs.items()},
        outputs={key: info.proto for key, info in signature.outputs.items()},
        method_name=signature.method_name,
        defaults=getattr(signature, "default_protos", None) or {},
    )


def _debug_string(signature):
    return text_format.MessageToString(signature_def(signature))


def predict_inputs(request, signature, max_bytes):
    """A `PredictRequest`'s inputs as `{key: array}`, checked as TF Serving's predict_util.

    An input the signature has a default for (`SignatureDef.defaults`) may be
    left out and takes the default, as TensorFlow's `GetInputValues` fills it.
    """
    received = set(request.inputs)
    expected = set(signature.inputs)
    defaults = getattr(signature, "defaults", None) or {}
    # With defaults, fewer inputs than the signature's may come; the loop below
    # then names what is missing or unknown, with `GetInputValues`' messages.
    if not (defaults and len(received) <= len(expected)):
        if len(received) != len(expected):
            raise invalid_argument(
                f"input size does not match signature: {len(received)}!="
                f"{len(expected)} len({{{','.join(sorted(received))}}}) != "
                f"len({{{','.join(sorted(expected))}}}). "
                f"Sent extra: {{{','.join(sorted(received - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - received))}}}."
            )
        extra = sorted(received - expected)
        if extra:
            raise invalid_argument(
                f"input tensor alias not found in signature: {extra[0]}. "
                f"Inputs expected to be in the set {{{','.join(sorted(expected))}}}."
            )
    budget = max_bytes
    arrays = {}
    for key, info in signature.inputs.items():
        if key in request.inputs:
            array = to_array(key, request.inputs[key], info, budget)
            budget -= array.size * (8 if array.dtype == object else array.itemsize)
        elif key in defaults:
            array = defaults[key]
        else:
            raise invalid_argument(
                f"Signature input alias: {key}(feed name: {info.proto.name}) not "
                "found in request and no default value provided. Inputs expected to "
                f"be in the request {{{','.join(sorted(request.inputs))}}}, or default "
                f"input alias set: {{{','.join(sorted(defaults))}}}"
            )
        arrays[key] = array
    if received - expected:
        raise invalid_argument(
            "Inputs contains invalid name. Used request inputs: "
            f"{','.join(sorted(received & expected))}, "
            f"request input: {','.join(sorted(received))}"
        )
    return arrays


def output_keys(request, signature):
    """The outputs a `PredictRequest` asks for (`output_filter`, else all)."""
    keys = []
    for alias in request.output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs "
                f"expected to be in the set {{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in keys:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        keys.append(alias)
    return keys or list(signature.outputs)


def check_classification(signature):
    """TF Serving's PreProcessClassification: one input `inputs`; `classes` and/or `scores`."""
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(
            f"Expected one or two output Tensors, found {len(signature.outputs)}"
        )
    if CLASSIFY_INPUTS not in signature.inputs:
        raise invalid_argument(
            "No classification inputs found in SignatureDef: "
            + _debug_string(signature)
        )
    if (
        CLASSIFY_CLASSES not in signature.outputs
        and CLASSIFY_SCORES not in signature.outputs
    ):
        raise invalid_argument(
            'Expected classification signature outputs to contain at least one of "'
            f'{CLASSIFY_CLASSES}" or "{CLASSIFY_SCORES}". Signature was: '
            + _debug_string(signature)
        )


def check_regression(signature):
    """TF Serving's PreProcessRegression: one input `inputs`, one output `outputs`."""
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if REGRESS_INPUTS not in signature.inputs:
        raise invalid_argument(
            "No regression inputs found in SignatureDef: " + _debug_string(signature)
        )
    if REGRESS_OUTPUTS not in signature.outputs:
        raise invalid_argument(
            "No regression outputs found in SignatureDef: " + _debug_string(signature)
        )


# --- classify / regress ------------------------------------------------------------


def serialized_examples(input_proto):
    """An `Input` as a vector of serialized `tf.Example`s (object array of bytes).

    With `ExampleListWithContext`, each example is the serialized context followed
    by the serialized example, as TF Serving builds it: parsing that merges the two,
    and a feature in both takes the example's value.
    """
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        items = [e.SerializeToString() for e in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        listed = input_proto.example_list_with_context
        context = listed.context.SerializeToString()
        items = [context + e.SerializeToString() for e in listed.examples]
    else:
        items = []
    if not items:
        raise invalid_argument("Input is empty.")
    array = np.empty((len(items),), dtype=object)
    array[:] = items
    return array


def _check_matrix(name, array, dtype, want_dtype, count):
    if array.ndim != 2:
        raise invalid_argument(
            "Expected Tensor shape: [batch_size num_classes] but got "
            + _shape_text(array.shape)
        )
    if dtype != want_dtype:
        raise invalid_argument(f"Expected {name} Tensor of {want_dtype}. Got: {dtype}")
    if array.shape[0] != count:
        raise invalid_argument(
            f"Expected {name} output batch size of {count}. Got: {array.shape[0]}"
        )


def _proto_dtype(array):
    if array.dtype == object or array.dtype.kind == "S":
        return "DT_STRING"
    return dtype_name(tf.as_dtype(array.dtype).as_datatype_enum)


def classification_result(outputs, count):
    """A classify signature's outputs as a `ClassificationResult` (TF Serving's checks)."""
    classes = outputs.get(CLASSIFY_CLASSES)
    scores = outputs.get(CLASSIFY_SCORES)
    if classes is not None:
        _check_matrix("classes", classes, _proto_dtype(classes), "DT_STRING", count)
    if scores is not None:
        _check_matrix("scores", scores, _proto_dtype(scores), "DT_FLOAT", count)
    if (
        classes is not None
        and scores is not None
        and classes.shape[1] != scores.shape[1]
    ):
        raise invalid_argument(
            "Tensors class and score should match in dim_size(1). Got "
            f"{classes.shape[1]} vs. {scores.shape[1]}"
        )
    result = classification_pb2.ClassificationResult()
    for row in range(count):
        classifications = result.classifications.add()
        labels = classes[row] if classes is not None else None
        values = scores[row].tolist() if scores is not None else None
        width = len(labels) if labels is not None else len(values)
        for column in range(width):
            entry = classifications.classes.add()
            if labels is not None:
                entry.label = labels[column]
            if values is not None:
                entry.score = values[column]
    return result


def regression_result(outputs, count):
    """A regress signature's output as a `RegressionResult` (TF Serving's checks)."""
    values = outputs[REGRESS_OUTPUTS]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or "
            f"[batch_size, 1] but got {_shape_text(values.shape)}"
        )
    if values.shape[0] != count:
        raise invalid_argument(
            "Input batch size did not match output batch size: "
            f"{count} vs. {values.shape[0]}"
        )
    if _proto_dtype(values) != "DT_FLOAT":
        raise invalid_argument(
            f"Expected output Tensor of DT_FLOAT.  Got: {_proto_dtype(values)}"
        )
    result = regression_pb2.RegressionResult()
    for value in values.reshape(-1).tolist():
        result.regressions.add(value=value)
    return result
