"""One loaded SavedModel version and its signatures."""

import collections
import logging
import os
import time

import numpy as np
import tensorflow as tf
from google.protobuf import json_format, text_format
from google.protobuf import message as protobuf_message
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

logger = logging.getLogger("kerasdl.serving")

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"


# A request body of at most this many bytes is parsed on the event loop (REST and
# gRPC alike); a small request runs there too, without two thread hand-offs, when
# its signature's calls have been taking less than INLINE_RUN_SECONDS
# (`Signature.is_quick`).
INLINE_PARSE_BYTES = 64 * 1024
INLINE_RUN_SECONDS = 0.002


class LoadError(Exception):
    """A version that cannot be served; `code` is a TF Serving error code name."""

    def __init__(self, message, code="UNKNOWN"):
        super().__init__(message)
        self.code = code


def _numpy(tensor):
    """A tensor's value as an array (a scalar string's `.numpy()` is plain bytes)."""
    value = tensor.numpy()
    if isinstance(value, np.ndarray):
        return value
    array = np.empty((), dtype=object)
    array[()] = value
    return array


class TensorInfo:
    """One named input or output of a signature, read from the SavedModel proto.

    Args:
        key: the name clients use in requests and responses.
        proto: the `tensorflow.TensorInfo` message.
    """

    def __init__(self, key, proto):
        self.key = key
        self.proto = proto
        self.dtype_name = types_pb2.DataType.Name(proto.dtype)
        self.dtype = tf.dtypes.as_dtype(proto.dtype)
        self.numpy_dtype = np.dtype(
            object if self.dtype == tf.string else self.dtype.as_numpy_dtype
        )
        self.is_dense = proto.WhichOneof("encoding") == "name"
        if proto.tensor_shape.unknown_rank:
            self.shape = None
        else:
            self.shape = tuple(
                None if d.size < 0 else d.size for d in proto.tensor_shape.dim
            )

    @property
    def shape_text(self):
        if self.shape is None:
            return "any shape"
        return "[" + ",".join("-1" if d is None else str(d) for d in self.shape) + "]"

    def to_json(self):
        """The JSON TF Serving's metadata API prints for a TensorInfo."""
        shape = self.proto.tensor_shape
        return {
            "dtype": self.dtype_name,
            "tensor_shape": {
                "dim": [{"size": str(d.size), "name": d.name} for d in shape.dim],
                "unknown_rank": shape.unknown_rank,
            },
            "name": self.proto.name,
        }


class Signature:
    """A callable signature: named numpy inputs in, named numpy outputs out.

    `run` calls the fast concrete function when one was proven equivalent at load
    time (see `_find_fast_path`), else the signature itself. `seconds` is the
    median time of the last 16 calls to `run` (None before the first), which a
    busy machine's occasional slow call does not move; the server runs requests
    for quick signatures on its event loop.
    """

    def __init__(self, name, proto, function, session_call=None):
        self.name = name
        self.method_name = proto.method_name
        self.inputs = {
            key: TensorInfo(key, info) for key, info in sorted(proto.inputs.items())
        }
        self.outputs = {
            key: TensorInfo(key, info) for key, info in sorted(proto.outputs.items())
        }
        # Optional inputs: TF Serving fills an input a request leaves out from the
        # SignatureDef's `defaults` (TensorFlow writes them for a tf.function
        # whose Python signature has tensor defaults).
        self.default_protos = {
            key: value for key, value in proto.defaults.items() if key in self.inputs
        }
        self.defaults = {
            key: tf.make_ndarray(value) for key, value in self.default_protos.items()
        }
        self.function = function
        # TF1 SavedModels run in a `tf.compat.v1.Session`, as TF Serving runs them:
        # `session_call(inputs) -> outputs`, the graph taking any shape it can.
        self.session_call = session_call
        # TF1: whether the fed graph tensor is a string, whatever the signature
        # declares (saved_model_half_plus_three's regress input says DT_FLOAT).
        self.string_feed = None
        self.fast_function = None  # (flat caller, input_order, flat output_keys)
        self._recent_seconds = collections.deque(maxlen=16)
        self.supported = all(i.is_dense for i in self.inputs.values()) and all(
            o.is_dense for o in self.outputs.values()
        )

    @property
    def seconds(self):
        recent = sorted(self._recent_seconds)
        return recent[len(recent) // 2] if recent else None

    def is_quick(self, limit):
        """Whether recent calls took a median under `limit` seconds (False before any)."""
        seconds = self.seconds
        return seconds is not None and seconds < limit

    def to_json(self):
        return {
            "inputs": {k: v.to_json() for k, v in self.inputs.items()},
            "outputs": {k: v.to_json() for k, v in self.outputs.items()},
            "method_name": self.method_name,
            "defaults": {
                key: json_format.MessageToDict(
                    value,
                    preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True,
                )
                for key, value in sorted(self.default_protos.items())
            },
        }

    def _tensors(self, inputs):
        # tf.constant: half the cost of tf.convert_to_tensor's dispatch for arrays.
        return {
            key: tf.constant(value, dtype=self.inputs[key].dtype)
            for key, value in inputs.items()
        }

    @property
    def feeds_strings(self):
        """True when the single input takes strings (serialized tf.Example)."""
        if len(self.inputs) != 1:
            return False
        if self.string_feed is not None:
            return self.string_feed
        return next(iter(self.inputs.values())).numpy_dtype == object

    # The graph, not the declared shape, decides what a request may send (as in
    # TF Serving); `run` explains a failure on an undeclared shape.
    checks_shapes = False

    def _shape_mismatch(self, inputs):
        """`Input 'x': expected shape [-1,4]; received [2,3]`, or None if all match."""
        for key, value in inputs.items():
            info = self.inputs.get(key)
            shape = getattr(value, "shape", None)
            if info is None or info.shape is None or shape is None:
                continue
            if len(shape) != len(info.shape) or any(
                want is not None and want != got for want, got in zip(info.shape, shape)
            ):
                received = "[" + ",".join(str(d) for d in shape) + "]"
                return (
                    f"Input '{key}': signature '{self.name}' declares shape "
                    f"{info.shape_text} and dtype {info.dtype_name}; received shape "
                    f"{received}"
                )
        return None

    def run_signature(self, inputs):
        if self.session_call is not None:
            return self.session_call(inputs)
        outputs = self.function(**self._tensors(inputs))
        return {key: _numpy(value) for key, value in outputs.items()}

    def run(self, inputs):
        started = time.perf_counter()
        try:
            if self.fast_function is None:
                result = self.run_signature(inputs)
            else:
                result = self._run_fast(inputs)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            mismatch = self._shape_mismatch(inputs)
            if mismatch is None:
                raise
            from kerasdl.serving.codec import RequestError, tf_message

            raise RequestError(f"{mismatch}: {tf_message(error)[:300]}") from error
        self._recent_seconds.append(time.perf_counter() - started)
        return result

    def _run_fast(self, inputs):
        # The flat call skips the concrete function's argument handling: a shape
        # the signature does not declare takes the public call, so it gets exactly
        # what the signature does with it (an error, or the graph's answer).
        if self._shape_mismatch(inputs) is not None:
            return self.run_signature(inputs)
        call, input_order, output_keys = self.fast_function
        tensors = self._tensors(inputs)
        flat = call([tensors[key] for key in input_order])
        return {key: _numpy(value) for key, value in zip(output_keys, flat)}


def _flat_caller(function):
    """`call(tensors) -> flat output tensors` for a loaded concrete function.

    Runs the function's graph through the eager context with the captured
    variables appended, which is what `ConcreteFunction.__call__` ends in once it
    has bound arguments, checked for gradient tapes and resolved distributed
    variables; none of that applies to a validated serving request, and skipping
    it saves about a quarter of a small model's call. These are TensorFlow
    internals: when they are missing, or a capture is not a plain tensor, the
    public call is used (and the load-time probe checks either way).
    """
    atomic = getattr(function, "_inference_function", None)
    context = getattr(atomic, "_bound_context", None)
    name = getattr(atomic, "name", None)
    function_type = getattr(atomic, "function_type", None)
    captures = list(function.captured_inputs)
    if (
        context is not None
        and name is not None
        and function_type is not None
        and all(isinstance(c, tf.Tensor) for c in captures)
    ):
        count = len(function_type.flat_outputs)

        def call(tensors):
            return context.call_function(name, tensors + captures, count)

        return call

    def call_public(tensors):
        return tf.nest.flatten(function(*tensors))

    return call_public


def _probe_inputs(signature):
    """Zeros matching the signature (unknown dims set to 1); None if unknown rank."""
    probe = {}
    for key, info in signature.inputs.items():
        if info.shape is None:
            return None
        shape = tuple(1 if d is None else d for d in info.shape)
        if info.dtype == tf.string:
            probe[key] = np.full(shape, b"", dtype=object)
        else:
            probe[key] = np.zeros(shape, dtype=info.numpy_dtype)
    return probe


def _serve_candidate(loaded, signature):
    """`(serve's concrete function, input order, flat output keys)` or None.

    Keras' `model.export` writes both `serve` (a tf.function) and the
    `serving_default` signature that wraps it; the signature layer flattens and
    renames outputs (`output_0`, ... or the dict's keys). `serve` qualifies when its
    inputs map one-to-one onto the signature's inputs by name (or there is a single
    input) and its outputs map onto the signature's output names the way TF names
    them.
    """
    serve = getattr(loaded, "serve", None)
    concrete = getattr(serve, "concrete_functions", None) or []
    if signature.name != DEFAULT_SIGNATURE or len(concrete) != 1:
        return None
    function = concrete[0]
    args, kwargs = function.structured_input_signature
    if kwargs:
        return None
    specs = tf.nest.flatten(args)
    if len(specs) != len(signature.inputs) or not all(
        isinstance(s, tf.TensorSpec) for s in specs
    ):
        return None
    names = [spec.name for spec in specs]
    if len(specs) == 1:
        input_order = list(signature.inputs)
    elif sorted(names) == sorted(signature.inputs):
        input_order = names
    else:
        return None
    structured = function.structured_outputs
    if isinstance(structured, dict):
        # The flat outputs come in tf.nest's order of the dict's keys.
        output_keys = tf.nest.flatten({key: key for key in structured})
    else:
        output_keys = [f"output_{i}" for i in range(len(tf.nest.flatten(structured)))]
    if sorted(output_keys) != sorted(signature.outputs):
        return None
    return function, input_order, output_keys


def _signature_candidate(signature):
    """`(the signature's concrete function, input order, output keys)` or None.

    A loaded signature takes keyword tensors and returns a dict; flat, both come
    in tf.nest's (sorted) key order. This covers signatures that compute more than
    `serve` returns (the recipes' `class_id` beside `probabilities`).
    """
    function = signature.function
    structure = getattr(function, "structured_input_signature", None)
    outputs = getattr(function, "structured_outputs", None)
    if structure is None or not isinstance(outputs, dict):
        return None
    args, kwargs = structure
    if args or sorted(kwargs) != sorted(signature.inputs):
        return None
    if not all(isinstance(spec, tf.TensorSpec) for spec in kwargs.values()):
        return None
    if sorted(outputs) != sorted(signature.outputs):
        return None
    input_order = tf.nest.flatten({key: key for key in kwargs})
    output_keys = tf.nest.flatten({key: key for key in outputs})
    return function, input_order, output_keys


def _find_fast_path(loaded, signature):
    """A flat call of the graph behind a signature, proven equal to the signature.

    The candidate is the exported `serve` concrete function when it backs
    `serving_default` (see `_serve_candidate`), else the signature's own concrete
    function (`_signature_candidate`): either way the graph is called with flat
    tensors (`_flat_caller`), skipping the public call's argument binding and
    conversion. It is used only when one probe call gives the same outputs as the
    signature; otherwise the signature is called as it is.
    """
    candidate = _serve_candidate(loaded, signature)
    if candidate is None:
        candidate = _signature_candidate(signature)
    if candidate is None:
        return None
    function, input_order, output_keys = candidate
    probe = _probe_inputs(signature)
    if probe is None:
        return None
    candidate = (_flat_caller(function), input_order, output_keys)
    expected = signature.run_signature(probe)
    signature.fast_function = candidate
    try:
        received = signature.run(probe)
    except Exception:  # noqa: BLE001 - any failure just means: no fast path
        received = None
    signature.fast_function = None
    if received is None or set(received) != set(expected):
        return None
    for key, value in expected.items():
        other = received[key]
        if value.shape != other.shape or value.dtype != other.dtype:
            return None
        if value.dtype == object:
            if not np.array_equal(value, other):
                return None
        elif not np.allclose(value, other, equal_nan=True):
            return None
    return candidate


def _error_code(error):
    if isinstance(error, (FileNotFoundError, tf.errors.NotFoundError)):
        return "NOT_FOUND"
    if isinstance(error, tf.errors.DataLossError):
        return "DATA_LOSS"
    return "UNKNOWN"


def _read_saved_model_proto(path):
    binary = os.path.join(path, "saved_model.pb")
    text = os.path.join(path, "saved_model.pbtxt")
    proto = saved_model_pb2.SavedModel()
    if os.path.isfile(binary):
        try:
            with open(binary, "rb") as file:
                proto.ParseFromString(file.read())
        except (protobuf_message.DecodeError, ValueError) as error:
            raise LoadError(
                f"{binary} is corrupt: cannot parse it ({error})", "DATA_LOSS"
            )
        return binary, proto
    if os.path.isfile(text):
        try:
            with open(text, encoding="utf-8") as file:
                text_format.Parse(file.read(), proto)
        except (text_format.ParseError, UnicodeDecodeError) as error:
            raise LoadError(
                f"{text} is corrupt: cannot parse it ({error})", "DATA_LOSS"
            )
        return text, proto
    raise LoadError(f"missing {binary}: not a SavedModel directory", "NOT_FOUND")


def _check_fingerprint(path, proto_path):
    """Compares saved_model.pb with the checksum TF wrote in fingerprint.pb (TF >= 2.12).

    Catches bit flips that still parse. Uses TF's fingerprinting bindings, which are
    not public API: when they are missing, the check is skipped.
    """
    if not os.path.isfile(
        os.path.join(path, "fingerprint.pb")
    ) or not proto_path.endswith(".pb"):
        return
    try:
        from tensorflow.core.protobuf import fingerprint_pb2
        from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting
    except ImportError:
        return
    try:
        stored = tf.saved_model.experimental.read_fingerprint(path)
        actual = fingerprint_pb2.FingerprintDef.FromString(
            fingerprinting.CreateFingerprintDef(path)
        )
    except Exception as error:  # noqa: BLE001 - a corrupt fingerprint.pb, or TF internals
        raise LoadError(f"cannot verify {path}/fingerprint.pb: {error}", "DATA_LOSS")
    if stored.version.producer != actual.version.producer:
        # Fingerprints of another producer version hash saved_model.pb differently
        # (TF Serving's own saved_model_half_plus_two_tf2_cpu has producer 1):
        # compare what both versions compute alike.
        fields = ("graph_def_program_hash", "signature_def_hash")
        if all(getattr(stored, f) == getattr(actual, f) for f in fields):
            return
    elif stored.saved_model_checksum == actual.saved_model_checksum:
        return
    raise LoadError(
        f"{proto_path} is corrupt: its checksum does not match {path}/fingerprint.pb",
        "DATA_LOSS",
    )


_PLACEHOLDERS = ("Placeholder", "PlaceholderV2")


def _is_tf1(meta_graph):
    """True for a SavedModel without TF2's object graph (written by TF1's Builder)."""
    return not meta_graph.object_graph_def.nodes


def _session_caller(session, graph, proto):
    """`call(inputs) -> outputs` running one signature in a TF1 session."""
    input_keys = sorted(proto.inputs)
    output_keys = sorted(proto.outputs)
    feeds = [graph.get_tensor_by_name(proto.inputs[k].name) for k in input_keys]
    fetches = [graph.get_tensor_by_name(proto.outputs[k].name) for k in output_keys]
    run = session.make_callable(fetches, feed_list=feeds)

    def call(inputs):
        values = run(*[inputs[key] for key in input_keys])
        return {key: np.asarray(value) for key, value in zip(output_keys, values)}

    return call


def _load_tf1(path, meta_graph):
    """Loads a TF1 SavedModel into a session the way TF Serving does.

    Placeholders behind the signatures' inputs get an unknown shape, so (as in
    TF Serving's `Session::Run`) the graph, not the placeholder's declared shape,
    decides what it accepts; graphs of old TF versions whose declared shapes no
    longer pass today's shape inference (TF Serving's saved_model_half_plus_three)
    load too.
    """
    meta_graph = type(meta_graph).FromString(meta_graph.SerializeToString())
    fed = {
        info.name: info.dtype
        for signature in meta_graph.signature_def.values()
        for info in signature.inputs.values()
        if info.WhichOneof("encoding") == "name"
    }
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    for tensor_name, dtype in fed.items():
        node_name, _, index = tensor_name.partition(":")
        node = nodes.get(node_name)
        if node is None:
            continue
        if node.op in _PLACEHOLDERS:
            node.attr["shape"].shape.Clear()
            node.attr["shape"].shape.unknown_rank = True
        elif index in ("", "0") and node.op != "PlaceholderWithDefault":
            # A fed intermediate tensor (saved_model_half_plus_three feeds `x`, an
            # Identity of its tf.Example parser): the node moves aside and a
            # PlaceholderWithDefault of unknown shape takes its name, computing
            # the same value when not fed and taking any shape when fed.
            node.name = f"{node_name}/kerasdl_original"
            relaxed = meta_graph.graph_def.node.add(
                name=node_name, op="PlaceholderWithDefault", input=[node.name]
            )
            relaxed.attr["dtype"].type = dtype
            relaxed.attr["shape"].shape.unknown_rank = True
    assets = list(meta_graph.asset_file_def)
    collection = meta_graph.collection_def.get("saved_model_assets")
    if collection is not None:  # where TF1's Builder listed them
        for packed in collection.any_list.value:
            asset = meta_graph_pb2.AssetFileDef()
            packed.Unpack(asset)
            assets.append(asset)
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(meta_graph, clear_devices=True)
        if saver is not None:
            saver.restore(session, os.path.join(path, "variables", "variables"))
        asset_feeds = {
            graph.get_tensor_by_name(asset.tensor_info.name): os.path.join(
                path, "assets", asset.filename
            )
            for asset in assets
        }
        init = meta_graph.signature_def.get("__saved_model_init_op")
        init_names = [init.outputs["__saved_model_init_op"].name] if init else []
        for key in ("saved_model_main_op", "legacy_init_op"):
            collection = meta_graph.collection_def.get(key)
            if not init_names and collection is not None:
                init_names = list(collection.node_list.value)
        if init_names:
            session.run(
                [graph.get_operation_by_name(n.split(":")[0]) for n in init_names],
                feed_dict=asset_feeds,
            )
    return session, graph


class Servable:
    """A loaded SavedModel version: its signatures, ready to run.

    Use `Servable.load(path, name, version)`; it raises `LoadError` with a message
    naming the bad file for anything that is not a complete, intact SavedModel.

    Args:
        name: the model name.
        version: the numeric version.
        path: the version directory.
        loaded: the object `tf.saved_model.load` returned.
        signatures: signature name to `Signature`.
    """

    def __init__(self, name, version, path, loaded, signatures):
        self.name = name
        self.version = version
        self.path = path
        self.loaded = loaded
        self.signatures = signatures

    @classmethod
    def load(cls, path, name="model", version=0):
        proto_path, proto = _read_saved_model_proto(path)
        _check_fingerprint(path, proto_path)
        meta_graphs = [m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags]
        if not meta_graphs:
            raise LoadError(
                f"{proto_path} has no meta graph tagged 'serve'", "NOT_FOUND"
            )
        tf1 = _is_tf1(meta_graphs[0])
        try:
            if tf1:
                session, graph = _load_tf1(path, meta_graphs[0])
                loaded = session
            else:
                loaded = tf.saved_model.load(path, tags=["serve"])
        except Exception as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            variables = os.path.join(path, "variables")
            if not os.path.isdir(variables):
                message = f"missing {variables}/ ({message})"
            raise LoadError(
                f"cannot load {path}: {type(error).__name__}: {message}"[:1000],
                _error_code(error),
            ) from error
        signatures = {}
        for key, signature_proto in meta_graphs[0].signature_def.items():
            if tf1:
                if key.startswith("__"):
                    continue  # __saved_model_init_op and friends
                signatures[key] = Signature(key, signature_proto, None)
                if len(signature_proto.inputs) == 1:
                    (info,) = signature_proto.inputs.values()
                    if info.WhichOneof("encoding") == "name":
                        tensor = graph.get_tensor_by_name(info.name)
                        signatures[key].string_feed = tensor.dtype == tf.string
                if signatures[key].supported:
                    signatures[key].session_call = _session_caller(
                        session, graph, signature_proto
                    )
                continue
            if key not in loaded.signatures:
                continue  # e.g. TF1 init ops signatures that load() does not expose
            signatures[key] = Signature(key, signature_proto, loaded.signatures[key])
        servable = cls(name, version, path, loaded, signatures)
        for signature in signatures.values():
            if signature.supported and not tf1:
                try:
                    signature.fast_function = _find_fast_path(loaded, signature)
                except Exception as error:  # noqa: BLE001 - fall back to the signature
                    logger.debug("no fast path for %s: %s", signature.name, error)
            logger.info(
                "%s version %d signature %r: %s",
                name,
                version,
                signature.name,
                "run in a TF1 session"
                if tf1
                else "flat graph call (fast path)"
                if signature.fast_function
                else "called through the signature",
            )
        return servable
