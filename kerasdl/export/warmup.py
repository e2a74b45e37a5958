"""Warm-up requests for TF Serving (and `kerasdl serve`), written with an export.

`write_warmup_requests` writes `assets.extra/tf_serving_warmup_requests`: a
TFRecord file of `tensorflow.serving.PredictionLog` protos, each a
`PredictRequest` built with `tf.make_tensor_proto`, exactly as TF Serving's
warm-up reads it (`g3doc/saved_model_warmup.md`; at most 1000 records). The
server replays them while the version loads, so its first real request does not
pay for the runtime's lazy initialisation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

WARMUP_FILE_NAME = "tf_serving_warmup_requests"
WARMUP_PATH = os.path.join("assets.extra", WARMUP_FILE_NAME)
MAX_WARMUP_RECORDS = 1000  # TF Serving refuses a file with more.
DEFAULT_WARMUP_BATCH_SIZES = (1, 8)
DEFAULT_MAX_WARMUP_BYTES = 4 << 20  # keeps assets.extra small for image models


def warmup_batches(
    examples: Mapping[str, np.ndarray],
    batch_sizes: Sequence[int] = DEFAULT_WARMUP_BATCH_SIZES,
    max_bytes: int = DEFAULT_MAX_WARMUP_BYTES,
) -> list[dict[str, np.ndarray]]:
    """Slices real examples into the warm-up batches of each size in `batch_sizes`.

    Args:
        examples: input name -> array whose first axis is the example axis.
        batch_sizes: rows per warm-up request; sizes above the examples at hand
            shrink to them, and duplicates are dropped. Defaults to `(1, 8)`.
        max_bytes: requests beyond the first are dropped once the total input
            size would exceed this. Defaults to 4 MiB.

    Returns:
        A list of `{input name: array}` batches (empty without examples).
    """
    arrays = {key: np.asarray(value) for key, value in examples.items()}
    available = min((len(value) for value in arrays.values()), default=0)
    batches, sizes, total = [], [], 0
    for size in batch_sizes:
        size = min(int(size), available)
        if size < 1 or size in sizes:
            continue
        batch = {key: value[:size] for key, value in arrays.items()}
        nbytes = sum(_nbytes(value) for value in batch.values())
        if batches and total + nbytes > max_bytes:
            break
        batches.append(batch)
        sizes.append(size)
        total += nbytes
    return batches


def _nbytes(array):
    if array.dtype == object:
        return sum(len(v) if isinstance(v, (bytes, str)) else 8 for v in array.flat)
    return array.nbytes


def write_warmup_requests(
    export_dir: str | os.PathLike,
    requests: Sequence[tuple[str, Mapping[str, np.ndarray]]],
    model_name: str = "",
) -> str | None:
    """Writes `<export_dir>/assets.extra/tf_serving_warmup_requests`.

    Args:
        export_dir: the SavedModel directory.
        requests: `(signature name, {input name: array})` pairs, one
            `PredictRequest` each; arrays keep their dtype (strings as bytes).
        model_name: the `model_spec.name` written in each request (TF Serving
            replays the record against the version being loaded whatever it
            says). Defaults to `""`.

    Returns:
        The file's path, or `None` when `requests` is empty (no file written).

    Raises:
        ValueError: more than 1000 requests (TF Serving would refuse the file).

    Example:

    ```python
    write_warmup_requests(
        "saved_models/lenet/1",
        [("serving_default", {"images": images[:1]})],
        model_name="lenet",
    )
    ```
    """
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    if not requests:
        return None
    if len(requests) > MAX_WARMUP_RECORDS:
        raise ValueError(
            f"TF Serving reads at most {MAX_WARMUP_RECORDS} warm-up requests. "
            f"Received: {len(requests)} requests"
        )
    path = os.path.join(os.fspath(export_dir), WARMUP_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(
                    name=model_name, signature_name=signature_name
                )
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path
