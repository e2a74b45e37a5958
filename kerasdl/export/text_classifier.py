"""Export of a strings-in text classifier: raw text in; probabilities, class id and
class name out, all in the graph."""

from __future__ import annotations

import os
from collections.abc import Mapping

from kerasdl.export.saved_model import ExportError
from kerasdl.export.signatures import export_signatures


def export_text_classifier(
    model,
    base_dir: str | os.PathLike,
    *,
    class_names: list[str],
    model_card: Mapping | None = None,
    verification_texts: list | None = None,
    extra_assets: Mapping[str, str] | None = None,
    atol: float = 1e-5,
    warmup: bool = True,
) -> str:
    """Exports a strings-in classifier as a new numbered version under `base_dir`.

    The SavedModel's `serving_default(text)` takes `text` `(batch,)` tf.string and
    returns `probabilities` float32 `(batch, num_classes)`, `class_id` int64
    `(batch,)` and `label`, the class name (tf.string). Before publishing, the
    reloaded copy must reproduce the in-memory probabilities and labels.

    Args:
        model: a Keras model mapping a `(batch,)` string tensor to class
            probabilities (its `TextVectorization` inside).
        base_dir: the model's directory, e.g. `saved_models/rnn_intent`.
        class_names: the names of the classes, in class-id order.
        model_card: JSON-serialisable dict. Defaults to `None` (an empty card).
        verification_texts: texts the reloaded model is checked on. Defaults to
            `None` (three short sentences, one empty).
        extra_assets: `{file name: source path}` copied into `assets.extra/`.
            Defaults to `None`.
        atol: largest absolute difference allowed between reloaded and in-memory
            probabilities. Defaults to `1e-5`.
        warmup: write `assets.extra/tf_serving_warmup_requests` (requests of 1
            and 8 verification texts), replayed by the server before it serves
            the version. Defaults to `True`.

    Returns:
        The published version's path, `<base_dir>/<N>`.

    Example:

    ```python
    export_text_classifier(model, "saved_models/spam", class_names=["ham", "spam"])
    ```
    """
    import numpy as np
    import tensorflow as tf

    names = tf.constant(list(class_names), tf.string)
    spec = [tf.TensorSpec([None], tf.string, name="text")]

    def serving_default(text):
        probabilities = tf.cast(model(text, training=False), tf.float32)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {
            "probabilities": probabilities,
            "class_id": class_id,
            "label": tf.gather(names, class_id),
        }

    texts = tf.constant(verification_texts or ["hello", "", "a longer test sentence"])
    warmup_requests = None
    if warmup:
        from kerasdl.export.warmup import warmup_batches

        batches = warmup_batches({"text": texts.numpy()})
        warmup_requests = [("serving_default", batch) for batch in batches]

    def verify(path):
        expected = np.asarray(model(texts, training=False), np.float32)
        outputs = tf.saved_model.load(path).signatures["serving_default"](text=texts)
        received = outputs["probabilities"].numpy()
        if received.shape != expected.shape or not np.allclose(
            received, expected, atol=atol
        ):
            raise ExportError(
                "The reloaded SavedModel does not reproduce the in-memory predictions."
            )
        labels = [class_names[i] for i in np.argmax(received, axis=-1)]
        if [label.decode() for label in outputs["label"].numpy()] != labels:
            raise ExportError(
                "The reloaded SavedModel's label is not its argmax class."
            )

    return export_signatures(
        [model],
        base_dir,
        {"serving_default": (serving_default, spec)},
        model_card=model_card,
        verify=verify,
        extra_assets=extra_assets,
        warmup_requests=warmup_requests,
    )
