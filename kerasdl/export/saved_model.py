"""Versioned, atomic SavedModel export in TensorFlow Serving's layout.

`export_saved_model` writes `<base_dir>/<N>/` where N is the next free integer version:

    saved_models/lenet/
      1/  saved_model.pb  variables/  assets.extra/{model_card.json,tf_serving_warmup_requests}
      2/  ...

The SavedModel is first written into a hidden temporary directory in the same base
(`.tmp-<pid>-<uuid>`, which TensorFlow Serving ignores because it is not a number), checked by
reloading it with plain `tf.saved_model.load` and comparing its predictions with the
in-memory model, and only then renamed into place with one `os.rename`. A crash at any
point leaves either no new version or a complete one; an existing version is never
overwritten.

Signatures:
  * `serving_default(images)` -> {"probabilities": float32 [N, classes], "class_id": int64 [N]}.
    `images` are the dataset's raw images (e.g. uint8 [N, 28, 28, 1] for MNIST); all
    preprocessing (dtype cast, rescaling, resizing) happens inside the model.
  * `serve(images)` -> probabilities, Keras' plain endpoint (what `keras.export` writes).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

MODEL_CARD_PATH = os.path.join("assets.extra", "model_card.json")


class ExportError(RuntimeError):
    """Raised when a model cannot be exported or the exported copy does not match it."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where an export went: `path` is `<base_dir>/<version>`."""

    path: str
    version: int


def list_versions(base_dir: str | os.PathLike) -> list[int]:
    """Returns the sorted integer versions present in `base_dir` (empty if none)."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(name) for name in os.listdir(base_dir) if name.isdigit())


def next_version(base_dir: str | os.PathLike) -> int:
    """Returns the version number the next export into `base_dir` will get."""
    versions = list_versions(base_dir)
    return (versions[-1] + 1) if versions else 1


def check_weights_finite(model) -> None:
    """Raises `ExportError` naming the first weight that holds NaN or infinity."""
    for variable in model.weights:
        value = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            raise ExportError(
                f"Refusing to export: weight '{variable.path}' holds NaN or infinite "
                "values."
            )


def export_saved_model(
    model,
    base_dir: str | os.PathLike,
    *,
    input_shape: tuple[int, ...],
    input_dtype: str,
    model_card: Mapping | None = None,
    verification_images: np.ndarray | None = None,
    extra_assets: Mapping[str, str | os.PathLike] | None = None,
    atol: float = 1e-5,
    warmup: bool = True,
) -> ExportResult:
    """Exports a classifier as a new numbered SavedModel version under `base_dir`.

    Args:
        model: a Keras model mapping a batch of (preprocessed or raw) images to class
            probabilities `[batch, num_classes]`.
        base_dir: the model's directory, e.g. `saved_models/lenet`. Created if missing.
        input_shape: shape of one raw image, without the batch axis, e.g. `(28, 28, 1)`.
        input_dtype: dtype of the raw images served, e.g. `"uint8"`. The images are cast
            to the model's own input dtype inside the signature.
        model_card: JSON-serialisable dict written to `assets.extra/model_card.json`.
            Defaults to `None` (an empty card).
        verification_images: raw images used to check that the reloaded SavedModel
            reproduces the in-memory predictions. Defaults to `None` (random images in
            the valid range of `input_dtype`).
        extra_assets: files to copy into `assets.extra/`, as {file name: source path}.
            Defaults to `None`.
        atol: largest absolute difference allowed between reloaded and in-memory
            probabilities. Defaults to `1e-5`.
        warmup: write `assets.extra/tf_serving_warmup_requests`, `serving_default`
            requests of 1 and 8 of the verification images, which TF Serving and
            `kerasdl serve` replay before serving the version. Defaults to `True`.

    Returns:
        An `ExportResult` with the final path and version.

    Raises:
        ExportError: the weights are not finite, or the reloaded model disagrees with
            the in-memory one (nothing is left behind in either case).
    """
    import tensorflow as tf

    from kerasdl.export.signatures import export_signatures

    model_dtype = tf.as_dtype(model.inputs[0].dtype if model.inputs else "float32")
    spec = tf.TensorSpec([None, *input_shape], tf.as_dtype(input_dtype), name="images")

    def probabilities_fn(images):
        # (batch, *input_shape) raw images -> (batch, num_classes) probabilities.
        probabilities = model(tf.cast(images, model_dtype), training=False)
        return tf.cast(probabilities, tf.float32)

    def serving_default(images):
        probabilities = probabilities_fn(images)
        return {
            "probabilities": probabilities,
            "class_id": tf.argmax(probabilities, axis=-1, output_type=tf.int64),
        }

    if verification_images is None:
        verification_images = _random_images(input_shape, input_dtype)
    warmup_requests = None
    if warmup:
        from kerasdl.export.warmup import warmup_batches

        images = np.asarray(verification_images).astype(input_dtype)
        warmup_requests = [
            ("serving_default", batch) for batch in warmup_batches({"images": images})
        ]
    path = export_signatures(
        [model],
        base_dir,
        {
            "serving_default": (serving_default, [spec]),
            "serve": (probabilities_fn, [spec]),
        },
        model_card=model_card,
        verify=lambda tmp_dir: _verify(
            model, tmp_dir, verification_images, probabilities_fn, atol
        ),
        extra_assets=extra_assets,
        warmup_requests=warmup_requests,
    )
    return ExportResult(path=path, version=int(Path(path).name))


def load_model_card(export_path: str | os.PathLike) -> dict:
    """Reads `assets.extra/model_card.json` of an exported version."""
    with open(Path(export_path) / MODEL_CARD_PATH) as f:
        return json.load(f)


def _random_images(input_shape, input_dtype, count: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    high = 255 if np.dtype(input_dtype).kind in "ui" else 1.0
    images = rng.uniform(0, high, size=(count, *input_shape))
    return images.astype(input_dtype)


def _verify(model, export_dir, images, probabilities_fn, atol) -> None:
    """Reloads the SavedModel with plain TensorFlow and compares its predictions."""
    import tensorflow as tf

    images = np.asarray(images)
    expected = np.asarray(probabilities_fn(tf.constant(images)))
    reloaded = tf.saved_model.load(str(export_dir))
    outputs = reloaded.signatures["serving_default"](images=tf.constant(images))
    probabilities = outputs["probabilities"].numpy()
    class_id = outputs["class_id"].numpy()
    if probabilities.shape != expected.shape or not np.allclose(
        probabilities, expected, atol=atol
    ):
        difference = (
            np.max(np.abs(probabilities - expected))
            if (probabilities.shape == expected.shape)
            else "shape mismatch"
        )
        raise ExportError(
            "The reloaded SavedModel does not reproduce the in-memory predictions "
            f"(max abs difference {difference}, allowed {atol})."
        )
    if not np.array_equal(class_id, np.argmax(probabilities, axis=-1)):
        raise ExportError(
            "The reloaded SavedModel's class_id is not argmax(probabilities)."
        )


def rename_into_place(tmp_dir: Path, base_dir: Path) -> ExportResult:
    """Renames `tmp_dir` to the next free version; retries if another run took it."""
    for _ in range(100):
        version = next_version(base_dir)
        target = base_dir / str(version)
        if target.exists():  # e.g. an empty directory someone created by hand.
            continue
        try:
            os.rename(tmp_dir, target)
        except OSError:  # Lost a race with a concurrent export: take the next number.
            continue
        return ExportResult(path=str(target), version=version)
    raise ExportError(f"Could not find a free version number in {base_dir}.")
