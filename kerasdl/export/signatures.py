"""Versioned, atomic export of any set of signatures (e.g. strings in, strings out).

`export_signatures` writes the same layout as `kerasdl.export.export_saved_model`
(`<base_dir>/<N>/` with `assets.extra/model_card.json` and, given example inputs,
`assets.extra/tf_serving_warmup_requests`, written into `.tmp-<pid>-<uuid>`, checked, then
renamed into place by `rename_into_place`), but the caller chooses the endpoints: a
text classifier's `serving_default(text)`, a translator's
`beam_decode` and `greedy_decode`, ...

An endpoint function whose trailing parameters have tensor defaults
(`def generate(prompt, max_length=tf.constant(100))`) gets them written into its
`SignatureDef.defaults`: TF Serving's gRPC Predict, and `kerasdl serve` over REST
and gRPC, fill an input a request leaves out from there.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kerasdl.export.saved_model import (
    MODEL_CARD_PATH,
    check_weights_finite,
    rename_into_place,
)
from kerasdl.export.warmup import write_warmup_requests

TMP_PREFIX = ".tmp-"  # + "<pid>-<uuid>": TF Serving ignores it (not a number).


def remove_stale_exports(base_dir: str | os.PathLike) -> list[str]:
    """Removes the temporary directories of exports whose process is gone.

    An export writes into `<base_dir>/.tmp-<pid>-<uuid>` and renames it into place;
    a process killed in between leaves that directory behind. This removes those
    whose `pid` is no longer running on this machine (another run's export in
    progress is left alone). Returns the paths removed.

    Example:

    >>> remove_stale_exports("saved_models/lenet")  # doctest: +SKIP
    []
    """
    removed = []
    if not os.path.isdir(base_dir):
        return removed
    for name in os.listdir(base_dir):
        if not name.startswith(TMP_PREFIX):
            continue
        pid = name[len(TMP_PREFIX) :].partition("-")[0]
        if pid.isdigit() and _running(int(pid)):
            continue
        path = os.path.join(base_dir, name)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Someone else's live process.
        return True
    return True


def export_signatures(
    track: Sequence,
    base_dir: str | os.PathLike,
    endpoints: Mapping[str, tuple[Callable, list]],
    *,
    model_card: Mapping | None = None,
    verify: Callable[[str], None] | None = None,
    extra_assets: Mapping[str, str | os.PathLike | None] | None = None,
    warmup_requests: Sequence[tuple[str, Mapping]] | None = None,
) -> str:
    """Writes `<base_dir>/<N>/` (next free N) with the given signatures.

    The SavedModel is written into `<base_dir>/.tmp-<uuid>`, the model card put in
    `assets.extra/model_card.json`, `verify(tmp_dir)` called (it should reload the
    SavedModel and raise `ExportError` on a mismatch), and only then renamed into
    place; nothing is left behind on failure.

    Args:
        track: Keras layers and models whose variables the endpoints use.
        base_dir: the model's directory, e.g. `saved_models/rnn_intent`. Created if
            missing.
        endpoints: signature name -> `(function, input_signature)`, as
            `keras.export.ExportArchive.add_endpoint` takes them. Trailing
            parameters of `function` with tensor defaults become the
            signature's `defaults` (optional inputs).
        model_card: JSON-serialisable dict. Defaults to `None` (an empty card).
        verify: check run on the written directory before publishing. Defaults to
            `None` (no check).
        extra_assets: `{file name: source path}` copied into `assets.extra/`;
            missing sources are skipped. Defaults to `None`.
        warmup_requests: `(signature name, {input name: array})` pairs written
            as TF Serving's `assets.extra/tf_serving_warmup_requests`, replayed
            by the server before the version is AVAILABLE. Defaults to `None`
            (no warm-up file).

    Returns:
        The published version's path, `<base_dir>/<N>`.

    Raises:
        ExportError: a tracked weight is not finite, or `verify` raised it.

    Example:

    ```python
    spec = [tf.TensorSpec([None], tf.string, name="text")]
    export_signatures(
        [model],
        "saved_models/echo",
        {"serving_default": (lambda text: {"text": text}, spec)},
    )
    ```
    """
    import keras

    for item in track:
        check_weights_finite(item)
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = base_dir / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    try:
        if any(_has_defaults(function) for function, _ in endpoints.values()):
            _save_with_defaults(track, endpoints, tmp_dir)
        else:
            archive = keras.export.ExportArchive()
            for item in track:
                archive.track(item)
            for name, (function, input_signature) in endpoints.items():
                archive.add_endpoint(name, function, input_signature=input_signature)
            archive.write_out(str(tmp_dir), verbose=False)
        (tmp_dir / "assets.extra").mkdir(exist_ok=True)
        with open(tmp_dir / MODEL_CARD_PATH, "w") as file:
            json.dump(
                dict(model_card or {}), file, indent=2, sort_keys=True, default=str
            )
        for name, source in (extra_assets or {}).items():
            if source and os.path.exists(source):
                shutil.copyfile(source, tmp_dir / "assets.extra" / name)
        if warmup_requests:
            write_warmup_requests(tmp_dir, warmup_requests, model_name=base_dir.name)
        if verify is not None:
            verify(str(tmp_dir))
        return rename_into_place(tmp_dir, base_dir).path
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _has_defaults(function: Callable) -> bool:
    return any(
        p.default is not inspect.Parameter.empty
        for p in inspect.signature(function).parameters.values()
    )


def _save_with_defaults(
    track: Sequence, endpoints: Mapping[str, tuple[Callable, list]], path: Path
) -> None:
    """`tf.saved_model.save` of the tracked objects and one `tf.function` per endpoint.

    Keras' `ExportArchive` saves each endpoint as a concrete function, which has no
    default arguments, so TensorFlow would write no `SignatureDef.defaults`; it
    writes them for a `tf.function` whose Python signature has tensor defaults.
    The loaded object's attributes (`loaded.generate(prompts)`) take the defaults
    too; `loaded.signatures[...]`, as TensorFlow loads signatures, needs every
    input.
    """
    import tensorflow as tf

    module = tf.Module()
    module.tracked = list(track)
    functions = {}
    for name, (function, input_signature) in endpoints.items():
        functions[name] = tf.function(
            function, input_signature=input_signature, autograph=False
        )
        setattr(module, name, functions[name])
    # TensorFlow logs (absl, INFO) every captured table or variable handle it
    # renames in the SavedModel: noise to a user exporting a model.
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(max(level, logging.WARNING))
    try:
        tf.saved_model.save(module, str(path), signatures=functions)
    finally:
        absl_logger.setLevel(level)
