"""JSON <-> tensors for TF Serving's REST API, validated against a signature.

Every problem with a request raises `RequestError`, whose message names the input,
what the signature expects and what was received; nothing reaches TensorFlow
before it passes these checks.
"""

import base64
import binascii
import json
import math

import numpy as np

try:  # optional: about 5x faster parsing; the standard library handles the rest
    import orjson
except ImportError:
    orjson = None

from kerasdl.serving.servable import CLASSIFY_METHOD, REGRESS_METHOD

_MAX_DIMS = 32
# orjson turns integers beyond 64 bits into floats. A body with a run of 19 or
# more digits that is not a fraction goes to the standard library, which keeps
# such integers exact (and so refusable). Found by mapping digits to "d", "." to
# itself and every other byte to " ", then looking for " " + 19 "d"s.
_DIGIT_CLASSES = bytes(
    ord("d") if chr(i).isdigit() and i < 128 else i if i == ord(".") else ord(" ")
    for i in range(256)
)
_LONG_INTEGER = b" " + b"d" * 19


def _may_have_long_integers(body):
    return _LONG_INTEGER in body.translate(_DIGIT_CLASSES)


class RequestError(Exception):
    """A request the server refuses; `status` is the HTTP status to answer."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def parse_json(body):
    """Parses a request body into a JSON object (NaN and Infinity allowed, as TF Serving).

    orjson, when installed, parses what it accepts; everything else (NaN and
    Infinity, 19-digit and longer numbers, lone surrogates, very deep nesting,
    every malformed body) goes to the standard library, whose results and error
    messages are the reference.
    """
    if not body:
        raise RequestError("JSON Parse error: the request body is empty")
    if orjson is not None and not _may_have_long_integers(body):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None  # NaN, Infinity, big integers, deep nesting: see below
        if isinstance(data, dict):
            return data
    try:
        data = json.loads(body)
    except UnicodeDecodeError as error:
        raise RequestError(
            f"JSON Parse error: the body is not valid UTF-8 ({error.reason})"
        )
    except RecursionError:
        raise RequestError("JSON Parse error: the document is nested too deeply")
    except ValueError as error:  # JSONDecodeError, and ints over Python's digit limit
        raise RequestError(f"JSON Parse error: {error}")
    if not isinstance(data, dict):
        raise RequestError("JSON Value: the request body must be a JSON object")
    return data


def _describe(value):
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"[:80]


def _expected(info):
    return f"expected shape {info.shape_text} and dtype {info.dtype_name}"


def _string_leaves(value, info, depth=0):
    """Nested lists of str / {"b64": ...} -> (nested lists of bytes, shape)."""
    if depth > _MAX_DIMS:
        raise RequestError(
            f"Input '{info.key}': nested more than {_MAX_DIMS} levels deep"
        )
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass"), ()
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise RequestError(
                f"Input '{info.key}': {_expected(info)}; received an object that is not "
                '{"b64": "<base64 string>"}'
            )
        try:
            return base64.b64decode(value["b64"], validate=True), ()
        except (binascii.Error, ValueError) as error:
            raise RequestError(
                f"Input '{info.key}': invalid base64 in 'b64' value ({error})"
            )
    if isinstance(value, list):
        items = [_string_leaves(v, info, depth + 1) for v in value]
        shapes = {shape for _, shape in items}
        if len(shapes) > 1:
            raise RequestError(
                f"Input '{info.key}': {_expected(info)}; received ragged nested lists "
                "(all rows must have the same length)"
            )
        inner = shapes.pop() if shapes else ()
        return [leaf for leaf, _ in items], (len(value),) + inner
    raise RequestError(
        f"Input '{info.key}': {_expected(info)}; received {_describe(value)}"
    )


def _has_bool(value):
    if isinstance(value, list):
        return any(_has_bool(v) for v in value)
    return isinstance(value, bool)


def _numeric_array(value, info, check_bools):
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise RequestError(
            f"Input '{info.key}': {_expected(info)}; received ragged nested lists "
            "(all rows must have the same length) or mixed values"
        )
    kind = array.dtype.kind
    target = info.numpy_dtype
    received = (
        f"values of type {array.dtype}" if kind not in "OUS" else "non-numeric values"
    )
    if kind == "O":
        if any(
            isinstance(v, int) and not isinstance(v, bool) for v in array.ravel()[:1000]
        ):
            received = "integers out of the int64 range, or mixed values"
        raise RequestError(
            f"Input '{info.key}': {_expected(info)}; received {received}"
        )
    if target.kind == "b":
        if kind != "b":
            raise RequestError(
                f"Input '{info.key}': {_expected(info)}; received {received}"
            )
        return array
    if kind not in "iuf" or (check_bools and _has_bool(value)):  # numpy casts True to 1
        if kind in "iuf":
            received = "booleans"
        raise RequestError(
            f"Input '{info.key}': {_expected(info)}; received {received}"
        )
    if target.kind in "iu":
        integral = np.all(np.isfinite(array)) and np.all(array == np.floor(array))
        if kind == "f" and not integral:
            raise RequestError(
                f"Input '{info.key}': {_expected(info)}; received non-integer numbers"
            )
        limits = np.iinfo(target)
        if array.size and (array.min() < limits.min or array.max() > limits.max):
            raise RequestError(
                f"Input '{info.key}': {_expected(info)}; received values outside "
                f"[{limits.min}, {limits.max}]"
            )
    with np.errstate(over="ignore", invalid="ignore"):
        return array.astype(target, copy=False)


def to_array(value, info, check_bools=True):
    """Converts one input's JSON value to a numpy array checked against `info`.

    `check_bools=False` skips the scan for `true`/`false` among numbers (numpy would
    silently make them 1/0); callers pass it when the raw body has no such token.
    """
    if info.numpy_dtype == object:
        leaves, shape = _string_leaves(value, info)
        array = _fill_object(leaves, shape)
    else:
        array = _numeric_array(value, info, check_bools)
    if info.shape is not None:
        matches = len(array.shape) == len(info.shape) and all(
            want is None or want == got for want, got in zip(info.shape, array.shape)
        )
        if not matches:
            received = "[" + ",".join(str(d) for d in array.shape) + "]"
            raise RequestError(
                f"Input '{info.key}': {_expected(info)}; received shape {received}"
            )
    return array


def _fill_object(leaves, shape):
    array = np.empty(shape, dtype=object)
    flat = array.reshape(-1)

    def walk(node, depth):
        if depth == len(shape):
            flat[walk.index] = node
            walk.index += 1
        else:
            for child in node:
                walk(child, depth + 1)

    walk.index = 0
    walk(leaves, 0)
    return array


def _is_named(value, signature):
    """True for {"input_name": ...} objects (but not a bare {"b64": ...} value)."""
    if not isinstance(value, dict):
        return False
    return not (set(value) == {"b64"} and "b64" not in signature.inputs)


def _check_names(received, signature, where):
    expected = set(signature.inputs)
    missing = sorted(expected - set(received))
    extra = sorted(set(received) - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing input(s) {missing}")
        if extra:
            parts.append(f"unknown input(s) {extra}")
        raise RequestError(
            f"{where}: {' and '.join(parts)}; signature '{signature.name}' takes "
            f"{sorted(expected)}"
        )


def decode_predict(request, signature, check_bools=True):
    """A predict request body -> ({input: array}, row_format)."""
    has_instances, has_inputs = "instances" in request, "inputs" in request
    if has_instances == has_inputs:
        raise RequestError(
            "Missing 'instances' or 'inputs' key"
            if not has_instances
            else "Request must contain 'instances' or 'inputs', but not both"
        )
    if has_instances:
        instances = request["instances"]
        if not isinstance(instances, list):
            raise RequestError("'instances' must be a list (one item per instance)")
        if not instances:
            raise RequestError("'instances' is empty: send at least one instance")
        if all(_is_named(item, signature) for item in instances):
            for index, item in enumerate(instances):
                _check_names(item, signature, f"instances[{index}]")
            columns = {k: [item[k] for item in instances] for k in signature.inputs}
        elif any(_is_named(item, signature) for item in instances):
            raise RequestError("'instances' mixes named objects and plain values")
        elif len(signature.inputs) != 1:
            raise RequestError(
                f"Signature '{signature.name}' takes {len(signature.inputs)} inputs "
                f"{sorted(signature.inputs)}: each instance must be an object naming them"
            )
        else:
            columns = {next(iter(signature.inputs)): instances}
        return {
            k: to_array(v, signature.inputs[k], check_bools) for k, v in columns.items()
        }, True
    inputs = request["inputs"]
    if _is_named(inputs, signature):
        _check_names(inputs, signature, "inputs")
        columns = inputs
    elif len(signature.inputs) != 1:
        raise RequestError(
            f"Signature '{signature.name}' takes {len(signature.inputs)} inputs "
            f"{sorted(signature.inputs)}: 'inputs' must be an object naming them"
        )
    else:
        columns = {next(iter(signature.inputs)): inputs}
    return {
        k: to_array(columns[k], signature.inputs[k], check_bools)
        for k in signature.inputs
    }, False


def _json_ready(array, key):
    """An output array as JSON-able lists; strings as text or {"b64": ...}."""
    if array.dtype != object and array.dtype.kind != "S":
        return array.tolist()
    binary = key.endswith("_bytes")

    def convert(value):
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, bytes):
            if not binary:
                try:
                    return value.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return {"b64": base64.b64encode(value).decode("ascii")}
        return value

    return convert(array.tolist())


def encode_predict(outputs, row_format):
    """Named output arrays -> the predict response object."""
    if not row_format:
        if len(outputs) == 1:
            ((key, value),) = outputs.items()
            return {"outputs": _json_ready(value, key)}
        return {"outputs": {k: _json_ready(v, k) for k, v in outputs.items()}}
    if len(outputs) == 1:
        ((key, value),) = outputs.items()
        if value.ndim == 0:
            raise RequestError(
                f"Output '{key}' is a scalar; use the columnar 'inputs' format"
            )
        return {"predictions": _json_ready(value, key)}
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in outputs.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise RequestError(
            f"Outputs have different batch sizes {sizes}; use the columnar 'inputs' format"
        )
    columns = {k: _json_ready(v, k) for k, v in outputs.items()}
    count = next(iter(sizes.values()))
    return {"predictions": [{k: columns[k][i] for k in columns} for i in range(count)]}


def dumps(data):
    """Compact JSON; NaN/Infinity written as TF Serving does."""
    return json.dumps(data, separators=(",", ":"), allow_nan=True).encode("utf-8")


# --- classify / regress -------------------------------------------------------------


def _feature(name, value):
    import tensorflow as tf

    values = value if isinstance(value, list) else [value]
    if not values:
        return tf.train.Feature()
    if all(isinstance(v, bool) for v in values):
        raise RequestError(f"Feature '{name}': booleans are not supported, use 0/1")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if any(not -(2**63) <= v < 2**63 for v in values):
            raise RequestError(f"Feature '{name}': integer out of the int64 range")
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        floats = [float(v) for v in values]
        if any(abs(v) > 3.4028235e38 and math.isfinite(v) for v in floats):
            raise RequestError(f"Feature '{name}': number out of the float32 range")
        return tf.train.Feature(float_list=tf.train.FloatList(value=floats))
    if all(isinstance(v, (str, dict)) for v in values):
        info = type(
            "Info", (), {"key": name, "shape_text": "[-1]", "dtype_name": "DT_STRING"}
        )
        leaves = [_string_leaves(v, info)[0] for v in values]
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=leaves))
    raise RequestError(
        f"Feature '{name}': values must be all numbers or all strings/b64 objects, "
        f"received {_describe(values)}"
    )


def decode_examples(request, signature, method):
    """A classify/regress body -> ({input: serialized tf.Example array}, count)."""
    import tensorflow as tf

    wanted = {"classify": CLASSIFY_METHOD, "regress": REGRESS_METHOD}[method]
    if signature.method_name != wanted:
        raise RequestError(
            f"Signature '{signature.name}' has method_name '{signature.method_name}'; "
            f":{method} needs a signature with method_name '{wanted}'"
        )
    if len(signature.inputs) != 1:
        raise RequestError(f"Signature '{signature.name}' must take exactly one input")
    examples = request.get("examples")
    if not isinstance(examples, list) or not examples:
        raise RequestError("'examples' must be a non-empty list of objects")
    context = request.get("context", {})
    if not isinstance(context, dict):
        raise RequestError("'context' must be an object")
    serialized = []
    for index, example in enumerate(examples):
        if not isinstance(example, dict):
            raise RequestError(f"examples[{index}] must be an object of features")
        clash = sorted(set(example) & set(context))
        if clash:
            raise RequestError(
                f"examples[{index}]: features {clash} also appear in 'context'"
            )
        features = {k: _feature(k, v) for k, v in {**context, **example}.items()}
        proto = tf.train.Example(features=tf.train.Features(feature=features))
        serialized.append(proto.SerializeToString())
    key = next(iter(signature.inputs))
    array = np.empty((len(serialized),), dtype=object)
    array[:] = serialized
    return {key: array}, len(serialized)


def encode_classify(outputs, count):
    classes, scores = outputs.get("classes"), outputs.get("scores")
    if classes is None and scores is None:
        raise RequestError(
            "The classify signature has neither 'classes' nor 'scores' outputs"
        )
    reference = scores if scores is not None else classes
    reference = reference.reshape(count, -1)
    results = []
    for row in range(count):
        pairs = []
        for column in range(reference.shape[1]):
            label = "" if classes is None else classes.reshape(count, -1)[row, column]
            if isinstance(label, bytes):
                label = label.decode("utf-8", "replace")
            score = (
                0.0 if scores is None else float(scores.reshape(count, -1)[row, column])
            )
            pairs.append([label, score])
        results.append(pairs)
    return {"result": results}


def encode_regress(outputs, count):
    if len(outputs) != 1:
        raise RequestError("The regress signature must have exactly one output")
    values = next(iter(outputs.values())).reshape(count, -1)
    if values.shape[1] != 1:
        raise RequestError("The regress signature must give one value per example")
    return {"result": [float(v) for v in values[:, 0]]}
