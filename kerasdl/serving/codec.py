"""JSON <-> tensors for TF Serving's REST API, validated against a signature.

Every problem with a request raises `RequestError`, whose message names the input,
what the signature expects and what was received; nothing reaches TensorFlow
before it passes these checks.
"""

import base64
import binascii
import itertools
import json
import re

import numpy as np

try:  # optional: about 5x faster parsing; the standard library handles the rest
    import orjson
except ImportError:
    orjson = None


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


_TF_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*")


def tf_message(error):
    """A TensorFlow error's message without graph internals (node names, stacks):
    the last meaningful line, as REST's and gRPC's error answers both show it."""
    message = getattr(error, "message", None) or str(error)
    lines = [
        _TF_NOISE.sub("", line).split("[[")[0].split("[Op:")[0].strip()
        for line in message.splitlines()
        if line.strip()
        and not line.startswith((" ", "\t"))
        and not line.startswith(("Graph execution error", "Detected at node"))
    ]
    lines = [line for line in lines if line]
    return lines[-1] if lines else type(error).__name__


# Python's json error messages -> rapidjson's, which TF Serving answers with.
_PARSE_ERRORS = (
    ("Expecting value", "Invalid value."),
    ("Expecting property name", "Missing a name for object member."),
    ("Expecting ':' delimiter", "Missing a colon after a name of object member."),
    ("Expecting ',' delimiter", "Missing a comma or ']' after an array element."),
    ("Extra data", "The document root must not be followed by other values."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
    ("Invalid \\uXXXX", "Incorrect hex digit after \\u escape in string."),
    ("Invalid control character", "Invalid encoding in string."),
)


def _debug_string(value):
    """A JSON value for an error message, cut at 256 bytes as TF Serving does."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = _describe(value)
    return text[:256]


# A JSON string, or a non-finite number as rapidjson's kParseNanAndInfFlag spells it.
_NON_FINITE = re.compile(r'"(?:[^"\\]|\\.)*"|(-?)(NaN|Inf(?:inity)?)', re.DOTALL)


def _python_spelling(match):
    if match.group(2) is None:
        return match.group(0)  # a string: left alone
    return "NaN" if match.group(2) == "NaN" else match.group(1) + "Infinity"


def _parse_as_rapidjson(body):
    """The body's first JSON document, read as TF Serving's rapidjson flags read it.

    `kParseStopWhenDoneFlag`: what follows the document is ignored.
    `kParseNanAndInfFlag`: `Inf`, `-Inf` and `-NaN` are numbers too (Python reads
    only `NaN`, `Infinity` and `-Infinity`). Errors are those of the body as sent.
    """
    if isinstance(body, (bytes, bytearray, memoryview)):
        body = bytes(body).decode(json.detect_encoding(body))
    start = len(body) - len(body.lstrip(" \t\n\r"))
    decoder = json.JSONDecoder()
    try:
        return decoder.raw_decode(body, start)[0]
    except json.JSONDecodeError:
        rewritten = _NON_FINITE.sub(_python_spelling, body)
        if rewritten != body:
            try:
                return decoder.raw_decode(rewritten, start)[0]
            except json.JSONDecodeError:
                pass
        raise


def parse_json(body):
    """Parses a request body into a JSON object (NaN and Infinity allowed, as TF Serving).

    orjson, when installed, parses what it accepts; everything else (NaN and
    Infinity, 19-digit and longer numbers, lone surrogates, very deep nesting,
    every malformed body) goes to the standard library. Errors carry TF Serving's
    wording (rapidjson's): `JSON Parse error: <reason> at offset: <n>`. A
    `signature_name` that is not a string is refused here, as TF Serving does
    right after parsing.
    """
    if not body:
        raise RequestError("JSON Parse error: The document is empty")
    data = None
    if orjson is not None and not _may_have_long_integers(body):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None  # NaN, Infinity, big integers, deep nesting: see below
    if not isinstance(data, dict):
        try:
            data = _parse_as_rapidjson(body)
        except UnicodeDecodeError as error:
            raise RequestError(
                f"JSON Parse error: Invalid encoding in string. at offset: {error.start}"
            )
        except RecursionError:
            raise RequestError("JSON Parse error: the document is nested too deeply")
        except json.JSONDecodeError as error:
            reason = next(
                (
                    ours
                    for theirs, ours in _PARSE_ERRORS
                    if error.msg.startswith(theirs)
                ),
                error.msg,
            )
            if not body.strip():
                reason = "The document is empty."
            raise RequestError(f"JSON Parse error: {reason} at offset: {error.pos}")
        except ValueError as error:  # ints over Python's digit limit
            raise RequestError(f"JSON Parse error: {error}")
    if not isinstance(data, dict):
        raise RequestError(
            f"JSON Value: {_debug_string(data)} Is not object (the request body "
            "must be a JSON object)"
        )
    if "signature_name" in data and not isinstance(data["signature_name"], str):
        raise RequestError(
            f"JSON Value: {_debug_string(data)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
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


def _type_name(info):
    """TF's DataTypeString: DT_FLOAT -> "float", DT_INT64 -> "int64"."""
    return info.dtype_name[3:].lower()


def _json_type(value):
    """rapidjson's name for a JSON value's type, as TF Serving's messages use."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _type_error(value, info, detail=""):
    return RequestError(
        f"JSON Value: {_debug_string(value)} Type: {_json_type(value)} is not of "
        f"expected type: {_type_name(info)}{detail}"
    )


def _is_b64(value):
    """TF Serving's binary value: an object whose only key "b64" holds a string."""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and isinstance(value.get("b64"), str)
    )


def _dense_shape(value):
    """The shape the first elements of nested lists describe (TF Serving's rule)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _check_dense(value, shape, level=0):
    """Raises TF Serving's error when nested lists do not fill `shape` exactly."""
    if not isinstance(value, list):
        if level != len(shape):
            raise RequestError(
                f"JSON Value: {_debug_string(value)} found at incorrect level: "
                f"{level + 1} in the JSON DOM. Expected at level: {len(shape)}"
            )
        return 1
    if level >= len(shape):
        raise RequestError(
            f"Encountered list at unexpected level: {level} expected < {len(shape)}"
        )
    if len(value) != shape[level]:
        raise RequestError(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    return sum(_check_dense(item, shape, level + 1) for item in value)


def _shape_text(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def _check_instances(rows):
    """Each instance dense, all with one shape: TF Serving's errors otherwise."""
    first_shape = first_size = None
    for index, row in enumerate(rows):
        shape = _dense_shape(row)
        try:
            size = _check_dense(row, shape)
        except RequestError as error:
            raise RequestError(
                f"Failed to process element: {index} of 'instances' list. "
                f"Error: {error}"
            )
        if first_shape is None:
            first_shape, first_size = shape, size
        elif size != first_size:
            raise RequestError(
                f"Failed to process element: {index} of 'instances' list. Error: "
                f"Expecting tensor size: {first_size} but got: {size} (ragged "
                "instances: every instance must have the same shape)"
            )
        elif shape != first_shape:
            raise RequestError(
                f"Failed to process element: {index} of 'instances' list. Error: "
                f"Expecting shape {_shape_text(first_shape)} but got: "
                f"{_shape_text(shape)} (ragged instances: every instance must have "
                "the same shape)"
            )


def _leaves(value):
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _string_leaves(value, info, depth=0):
    """Nested lists of str / {"b64": ...} -> (nested lists of bytes, shape)."""
    if depth > _MAX_DIMS:
        raise RequestError(
            f"Input '{info.key}': nested more than {_MAX_DIMS} levels deep"
        )
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass"), ()
    if isinstance(value, dict):
        if not _is_b64(value):
            raise RequestError(
                f"JSON Value: {_debug_string(value)} not formatted correctly for "
                "base64 data"
            )
        try:
            return base64.b64decode(value["b64"], validate=True), ()
        except (binascii.Error, ValueError) as error:
            raise RequestError(
                f"Unable to base64 decode (invalid base64 in 'b64' value: {error})"
            )
    if isinstance(value, list):
        items = [_string_leaves(v, info, depth + 1) for v in value]
        shapes = {shape for _, shape in items}
        if len(shapes) > 1:
            _check_dense(value, _dense_shape(value))
        inner = shapes.pop() if shapes else ()
        return [leaf for leaf, _ in items], (len(value),) + inner
    raise RequestError(
        f"{_type_error(value, info)} (Input '{info.key}': {_expected(info)})"
    )


def _has_bool(value):
    if isinstance(value, list):
        return any(_has_bool(v) for v in value)
    return isinstance(value, bool)


def _leaf_error(value, info):
    """The first leaf `info`'s dtype cannot take, as TF Serving's error."""
    target = info.numpy_dtype
    for leaf in _leaves(value):
        if target.kind == "b":
            if not isinstance(leaf, bool):
                return _type_error(leaf, info)
        elif isinstance(leaf, bool) or not isinstance(leaf, (int, float)):
            return _type_error(leaf, info)
        elif target.kind in "iu":
            if not isinstance(leaf, int):
                return _type_error(leaf, info)
            limits = np.iinfo(target)
            if not limits.min <= leaf <= limits.max:
                return _type_error(
                    leaf, info, f" (out of its range [{limits.min}, {limits.max}])"
                )
    return None


def _with_input(error, value, info):
    """TF Serving's type error, then which input and what it received."""
    leaves = list(_leaves(value))
    if any(isinstance(leaf, bool) for leaf in leaves) and info.numpy_dtype.kind != "b":
        received = "booleans"
    elif all(
        isinstance(leaf, (int, float)) and not isinstance(leaf, bool) for leaf in leaves
    ):
        received = "numbers outside the dtype"
    else:
        received = "non-numeric values"
    return RequestError(
        f"{error} (Input '{info.key}': {_expected(info)}; received {received})"
    )


def _dense_numbers(value):
    """`(shape, leaves, leaf types)` of a rectangular, non-empty nested list of
    ints and floats (no bools), else None.

    Walks the lists level by level with C-level `map`/`chain`, several times
    faster than numpy's own discovery of a nested list's shape and dtype. Only
    the leaves' types are checked: a string or object where a list should be
    has a length too, but its expansion (characters, keys) is strings, which
    the leaf check refuses.
    """
    if type(value) is not list:
        return None
    shape, items = [], [value]
    while type(items[0]) is list:
        if len(shape) == _MAX_DIMS:
            return None
        try:
            lengths = set(map(len, items))
        except TypeError:  # a number beside lists
            return None
        if len(lengths) != 1 or 0 in lengths:
            return None  # ragged or empty
        shape.append(lengths.pop())
        items = list(itertools.chain.from_iterable(items))
    types = set(map(type, items))
    if types <= {float, int}:
        return shape, items, types
    return None  # bools, strings, objects or mixed depths


def _numeric_array(value, info):
    target = info.numpy_dtype
    dense = _dense_numbers(value) if target.kind in "iuf" else None
    array = None
    if dense is not None:  # the common case: numbers only, rectangular
        shape, leaves, types = dense
        if types == {int} or target.kind == "f":
            try:
                array = np.array(leaves, dtype=np.int64 if types == {int} else None)
            except OverflowError:
                array = None  # beyond int64: exactly, below
            else:
                array = array.reshape(shape)
    has_bool = False
    if array is None:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError, OverflowError):
            array = None  # ragged, or integers numpy cannot hold: checked below
        except RecursionError:
            raise RequestError(f"Input '{info.key}': nested too deeply")
        # numpy would silently read true/false among numbers as 1/0.
        has_bool = _has_bool(value)
    kind = None if array is None else array.dtype.kind
    wants = "b" if target.kind == "b" else "iu" if target.kind in "iu" else "iuf"
    if kind is None or kind not in wants or has_bool:
        if kind is None or kind == "O":
            _check_dense(value, _dense_shape(value))
        error = _leaf_error(value, info)
        if error is not None:
            raise _with_input(error, value, info)
        # Every leaf fits, only numpy's common type did not (e.g. int64 and
        # uint64 values mixed, or integers beyond 64 bits for a float): convert
        # each value on its own, exactly.
        array = np.array(value, dtype=target if target.kind in "iu" else object)
        if target.kind not in "iu":
            try:
                array = array.astype(np.float64)
            except OverflowError:
                # TF Serving's JSON parser refuses such a number outright.
                raise RequestError(
                    f"Input '{info.key}': Number too big to be stored in double "
                    f"({_expected(info)})"
                ) from None
        kind = array.dtype.kind
    if target.kind in "iu":
        limits = np.iinfo(target)
        if array.size and (array.min() < limits.min or array.max() > limits.max):
            raise _with_input(_leaf_error(value, info), value, info)
    with np.errstate(over="ignore", invalid="ignore"):
        return array.astype(target, copy=False)


def to_array(value, info, check_shape=True):
    """Converts one input's JSON value to a numpy array checked against `info`.

    `true`/`false` among numbers are refused (numpy would silently make them 1/0).
    `check_shape=False` leaves the shape to the graph (TF1 signatures run in a
    session, which takes any shape its ops accept, as in TF Serving).
    """
    if info.numpy_dtype == object:
        leaves, shape = _string_leaves(value, info)
        array = _fill_object(leaves, shape)
    else:
        array = _numeric_array(value, info)
    if check_shape and info.shape is not None:
        matches = len(array.shape) == len(info.shape) and all(
            want is None or want == got for want, got in zip(info.shape, array.shape)
        )
        if not matches:
            raise RequestError(
                f"Input '{info.key}': {_expected(info)}; received shape "
                f"{_shape_text(array.shape)}"
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


def _is_named(value):
    """True for {"input_name": ...} objects (not a {"b64": ...} value)."""
    return isinstance(value, dict) and not _is_b64(value)


def decode_predict(request, signature):
    """A predict request body -> ({input: array}, row_format).

    Follows TF Serving's rules (`util/json_tensor.cc`) and its error messages,
    with one addition: an input the signature has a default for (its
    `SignatureDef.defaults`, `signature.defaults`) may be left out, in either
    format, and gets the default, as TF Serving's gRPC Predict fills it (its
    REST API wants every input). Where all inputs but one have defaults, that
    one may be sent as a plain list (`{"instances": ["a prompt"]}`).
    """
    # The graph decides which shapes it takes, as in TF Serving; a failing run on
    # a shape the signature does not declare becomes a clear 400 (Signature.run).
    check_shape = getattr(signature, "checks_shapes", False)
    names = sorted(signature.inputs)
    defaults = getattr(signature, "defaults", None) or {}
    required = [k for k in names if k not in defaults]
    # The input a plain list or value goes to: the only input, or the only one
    # without a default.
    plain = (
        names[0] if len(names) == 1 else (required[0] if len(required) == 1 else None)
    )

    def convert(columns):
        arrays = {
            k: to_array(columns[k], signature.inputs[k], check_shape)
            for k in names
            if k in columns
        }
        for key in names:
            if key not in arrays:
                arrays[key] = defaults[key]
        return arrays

    has_instances, has_inputs = "instances" in request, "inputs" in request
    if has_instances and has_inputs:
        raise RequestError(
            f"JSON Value: {_debug_string(request)} Not formatted correctly expecting "
            "only one of 'inputs' or 'instances' keys to exist (send 'instances' or "
            "'inputs', not both)"
        )
    if has_instances:
        instances = request["instances"]
        if not isinstance(instances, list):
            raise RequestError(
                f"JSON Value: {_debug_string(request)} Expecting 'instances' to be "
                "an list/array"
            )
        if not instances:
            raise RequestError(
                f"JSON Value: {_debug_string(request)} No values in 'instances' array "
                "(it is empty: send at least one instance)"
            )
        named = _is_named(instances[0])
        if not named and plain is None:
            raise RequestError(
                "instances is a plain list, but expecting list of objects as multiple "
                "input tensors required as per tensorinfo_map (signature "
                f"'{signature.name}' takes {len(names)} inputs {names})"
            )
        for index, item in enumerate(instances):
            if named and not _is_named(item):
                raise RequestError(
                    f"Expecting object but got list at item {index} of input list"
                )
            if not named and _is_named(item):
                raise RequestError(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            if named:
                for key in item:
                    if key not in signature.inputs:
                        raise RequestError(
                            f"Failed to process element: {index} key: {key} of "
                            "'instances' list. Error: JSON object: does not have "
                            f"named input: {key}"
                        )
                missing = [k for k in required if k not in item]
                if missing:
                    optional = f"; optional: {sorted(defaults)}" if defaults else ""
                    raise RequestError(
                        f"Failed to process element: {index} of 'instances' list. "
                        f"JSON object: {_debug_string(item)} keys must be equal to: "
                        f"{','.join(names)} (missing input(s) {missing}{optional})"
                    )
                if item.keys() != instances[0].keys():  # optional inputs differ
                    raise RequestError(
                        f"Failed to process element: {index} of 'instances' list. "
                        f"JSON object: {_debug_string(item)} keys must be equal to "
                        f"element 0's: {','.join(sorted(instances[0]))}"
                    )
        if named:
            columns = {k: [item[k] for item in instances] for k in instances[0]}
        else:
            columns = {plain: instances}
        try:
            return convert(columns), True
        except RequestError:
            for key in columns:  # TF Serving's per-instance error, where there is one
                if signature.inputs[key].numpy_dtype != object:
                    _check_instances(columns[key])
            raise
    if not has_inputs:
        raise RequestError(
            "Missing 'inputs' or 'instances' key (the request needs 'instances' or "
            "'inputs')"
        )
    inputs = request["inputs"]
    if _is_named(inputs):
        for key in required:
            if key not in inputs:
                optional = f"; optional: {sorted(defaults)}" if defaults else ""
                raise RequestError(
                    f"Missing named input: {key} in 'inputs' object. (missing "
                    f"input(s) {[k for k in required if k not in inputs]}; signature "
                    f"'{signature.name}' takes {names}{optional})"
                )
        # Names the signature does not take are ignored, as TF Serving does.
        columns = {k: inputs[k] for k in names if k in inputs}
    elif plain is None:
        raise RequestError(
            "inputs is a plain value/list, but expecting an object as multiple input "
            "tensors required as per tensorinfo_map"
        )
    else:
        columns = {plain: inputs}
    return convert(columns), False


def _floats(array, digits):
    """Floats written as TF Serving writes them: printf's %g (6 digits) when that
    reads back as the same value, else `digits` digits (9 for float32).

    Returns nested lists of Python floats whose shortest form is those digits
    (`2.05` for float32 2.05, not `2.049999952316284`).
    """
    flat = array.astype(np.float32).ravel()
    values = flat.astype(np.float64).tolist()
    finite = np.isfinite(flat).tolist()
    short = [float(f"{v:.6g}") if f else v for v, f in zip(values, finite)]
    exact = np.array(short, dtype=np.float64).astype(np.float32) == flat
    for index in np.flatnonzero(~exact & np.isfinite(flat)).tolist():
        short[index] = float(f"{values[index]:.{digits}g}")
    return np.array(short, dtype=np.float64).reshape(array.shape).tolist()


def _half_floats(array):
    """float16 / bfloat16 values with the fewest digits that read back as the same
    value of that dtype (`0.1` for float16 0.0999755859375, not float32's
    `0.0999755859`): nested lists of Python floats.

    TF Serving's REST API cannot write these dtypes (400 "Failed to write JSON
    value for tensor type: half"); kerasdl writes them (docs/serving.md).
    """
    if array.dtype == np.float16:  # numpy's shortest round-trip repr, in C
        return array.astype(str).astype(np.float64).tolist()
    flat = array.ravel()
    with np.errstate(invalid="ignore"):  # bfloat16 NaN -> float64 warns
        values = flat.astype(np.float64)
    short = values.tolist()
    pending = np.flatnonzero(np.isfinite(values))
    # bfloat16's max_digits10 is 4; 9 (float32's) always reads back exactly.
    for digits in (1, 2, 3, 4, 9):
        if not pending.size:
            break
        candidates = np.array(
            [float(f"{v:.{digits}g}") for v in values[pending].tolist()]
        )
        same = candidates.astype(array.dtype) == flat[pending]
        for index, value in zip(pending[same].tolist(), candidates[same].tolist()):
            short[index] = value
        pending = pending[~same]
    return np.array(short, dtype=np.float64).reshape(array.shape).tolist()


def _json_ready(array, key):
    """An output array as JSON-able lists; strings as text or {"b64": ...}."""
    kind = array.dtype.kind
    if array.dtype == np.float16 or array.dtype.name == "bfloat16":
        return _half_floats(array)
    if kind == "f" and array.dtype.itemsize < 8:
        return _floats(array, 9)
    if kind == "c" or kind == "V" and array.dtype.name != "bfloat16":
        raise RequestError(
            f"Failed to write JSON value for tensor type: {array.dtype.name}"
        )
    if kind not in "OS":
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
    if not outputs:
        raise RequestError("Cannot convert empty tensor map to JSON")
    if not row_format:
        if len(outputs) == 1:
            ((key, value),) = outputs.items()
            return {"outputs": _json_ready(value, key)}
        return {"outputs": {k: _json_ready(v, k) for k, v in outputs.items()}}
    count = None
    for key, value in outputs.items():
        if value.ndim == 0:
            raise RequestError(
                f"Tensor name: {key} has no shape information (a scalar output: "
                "use the columnar 'inputs' format)"
            )
        if count is not None and value.shape[0] != count:
            raise RequestError(
                f"Tensor name: {key} has inconsistent batch size: {value.shape[0]} "
                f"expecting: {count}"
            )
        count = value.shape[0]
    if len(outputs) == 1:
        ((key, value),) = outputs.items()
        return {"predictions": _json_ready(value, key)}
    columns = {k: _json_ready(v, k) for k, v in outputs.items()}
    return {"predictions": [{k: columns[k][i] for k in columns} for i in range(count)]}


def dumps(data):
    """Compact JSON; NaN/Infinity written as TF Serving does."""
    return json.dumps(data, separators=(",", ":"), allow_nan=True).encode("utf-8")


# --- classify / regress -------------------------------------------------------------


def _feature(name, value):
    """One feature's JSON value -> tf.train.Feature, by TF Serving's rules.

    The first value sets the kind: integers (and booleans, as 1/0) make an
    int64_list, other numbers a float_list, strings and {"b64": ...} a bytes_list;
    every later value must be of the same kind.
    """
    import tensorflow as tf

    values = value if isinstance(value, list) else [value]
    kind, items = None, []
    for item in values:
        if (
            item is None
            or isinstance(item, list)
            or (isinstance(item, dict) and not _is_b64(item))
        ):
            raise RequestError(
                f"Feature: {name} has element with unexpected JSON type: "
                f"{_json_type(item)}"
            )
        if isinstance(item, bool):
            item_kind, item = "int64", int(item)
        elif isinstance(item, int) and item < 2**64:
            if item >= 2**63:
                raise RequestError(
                    f"Feature: {name} has uint64_t element. Only int64_t is supported."
                )
            item_kind = "int64"
        elif isinstance(item, (int, float)):
            item_kind, item = "float", float(item)
        elif isinstance(item, dict):
            item_kind = "bytes"
            try:
                item = base64.b64decode(item["b64"], validate=True)
            except (binascii.Error, ValueError) as error:
                raise RequestError(
                    f"Unable to base64 decode (invalid base64 in 'b64' value: {error})"
                )
        else:
            item_kind, item = "bytes", item.encode("utf-8", "surrogatepass")
        if kind is not None and item_kind != kind:
            raise RequestError(
                f"Unexpected element type in feature: {name} expecting type: {kind}"
            )
        kind = item_kind
        items.append(item)
    if kind == "int64":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=items))
    if kind == "float":
        return tf.train.Feature(float_list=tf.train.FloatList(value=items))
    if kind == "bytes":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=items))
    return tf.train.Feature()


def _example(value):
    import tensorflow as tf

    if not isinstance(value, dict):
        raise RequestError(
            f"Example must be JSON object but got JSON {_json_type(value)}"
        )
    features = {k: _feature(k, v) for k, v in value.items()}
    return tf.train.Example(features=tf.train.Features(feature=features))


def examples_from_json(request):
    """A classify/regress body's examples as an array of serialized tf.Examples.

    TF Serving's FillClassifyRegressRequestFromJson: `context` (merged into every
    example), then `examples`, a non-empty list of JSON objects. This needs no
    model, and TF Serving runs it before it looks the model up.
    """
    context = None
    if "context" in request:
        context = _example(request["context"])
    examples = request.get("examples")
    if "examples" not in request:
        raise RequestError(
            f"JSON Value: {_debug_string(request)} When method is classify, key "
            "'examples' is expected and was not found"
        )
    if not isinstance(examples, list):
        raise RequestError(
            f"JSON Value: {_debug_string(request)} Expecting 'examples' value to be "
            "an list/array"
        )
    if not examples:
        raise RequestError(
            f"JSON Value: {_debug_string(request)} 'examples' value is an empty array"
        )
    serialized = []
    for index, value in enumerate(examples):
        example = _example(value)
        if context is not None:
            clash = sorted(
                set(example.features.feature) & set(context.features.feature)
            )
            if clash:
                raise RequestError(
                    f"examples[{index}]: features {clash} also appear in 'context'"
                )
            example.MergeFrom(context)
        serialized.append(example.SerializeToString())
    array = np.empty((len(serialized),), dtype=object)
    array[:] = serialized
    return array


def decode_examples(request, signature, method, examples=None):
    """A classify/regress body -> ({input: serialized tf.Example array}, count).

    As TF Serving (without --enable_signature_method_name_check), any signature
    with one string input and the outputs the method reads is accepted, so TF2
    signatures (method_name "tensorflow/serving/predict") classify and regress.
    The examples are read first (`examples_from_json`, or `examples` when the
    caller has), then the signature is checked, in TF Serving's order.
    """
    if examples is None:
        examples = examples_from_json(request)
    if len(signature.inputs) != 1:
        raise RequestError(
            f"Expected one input Tensor. Signature '{signature.name}' takes "
            f"{sorted(signature.inputs)}"
        )
    wanted = ("classes", "scores") if method == "classify" else ("outputs",)
    if not any(key in signature.outputs for key in wanted):
        raise RequestError(
            f"Signature '{signature.name}' cannot {method}: its outputs "
            f"{sorted(signature.outputs)} include none of {list(wanted)} (as a "
            f"{'tensorflow/serving/' + method} signature's do)"
        )
    ((key, info),) = signature.inputs.items()
    if not getattr(signature, "feeds_strings", info.numpy_dtype == object):
        # TF Serving would feed the serialized examples and fail in the graph.
        raise RequestError(
            f"Signature '{signature.name}' cannot {method}: its input '{key}' is "
            f"{info.dtype_name}, but :{method} feeds serialized tf.Example protos "
            "(DT_STRING)"
        )
    return {key: examples}, len(examples)


def _matrix(outputs, key, count):
    value = outputs.get(key)
    if value is None:
        return None
    if value.ndim == 1 and key != "classes":
        value = value.reshape(-1, 1)
    if value.ndim != 2:
        raise RequestError(
            f"Expected Tensor shape: [batch_size num_classes] but got "
            f"{_shape_text(value.shape)} for output '{key}'"
        )
    if value.shape[0] != count:
        raise RequestError(
            f"Expected {key} output batch size of {count}. Got: {value.shape[0]}"
        )
    return value


def encode_classify(outputs, count):
    """Classify outputs -> {"results": [[[label, score], ...], ...]} as TF Serving."""
    classes = _matrix(outputs, "classes", count)
    scores = _matrix(outputs, "scores", count)
    if classes is None and scores is None:
        raise RequestError(
            "Expected classification signature outputs to contain at least one of "
            '"classes" or "scores"'
        )
    if classes is not None and classes.dtype != object:
        raise RequestError(
            f"Expected classes Tensor of DT_STRING. Got: {classes.dtype}"
        )
    if scores is not None and scores.dtype.kind != "f":
        raise RequestError(f"Expected scores Tensor of DT_FLOAT. Got: {scores.dtype}")
    if classes is not None and scores is not None and classes.shape != scores.shape:
        raise RequestError(
            "Tensors class and score should match in dim_size(1). Got "
            f"{classes.shape[1]} vs. {scores.shape[1]}"
        )
    shape = (classes if classes is not None else scores).shape
    labels = (
        [[""] * shape[1]] * count
        if classes is None
        else [[v.decode("utf-8", "replace") for v in row] for row in classes.tolist()]
    )
    values = [[0.0] * shape[1]] * count if scores is None else _floats(scores, 9)
    return {
        "results": [
            [[label, score] for label, score in zip(label_row, score_row)]
            for label_row, score_row in zip(labels, values)
        ]
    }


def encode_regress(outputs, count):
    """Regress outputs -> {"results": [value, ...]} as TF Serving."""
    values = outputs.get("outputs")
    if values is None:
        if len(outputs) != 1:
            raise RequestError("Expected one output Tensor named 'outputs'")
        values = next(iter(outputs.values()))
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.shape[0] != count:
        raise RequestError(
            f"Expected output Tensor shape to be [{count}] or [{count}, 1], got "
            f"{_shape_text(values.shape)}"
        )
    if values.dtype.kind != "f":
        raise RequestError(f"Expected output Tensor of DT_FLOAT. Got: {values.dtype}")
    return {"results": _floats(values, 9)}
