"""Scores an exported SavedModel on its dataset's test split, as a client would.

    python -m kerasdl.export.evaluate saved_models/lenet/1

Reads the dataset name, `limit` and `batch_size` from the model card, loads the test
split's raw images with `kerasdl.data`, and calls the SavedModel's `serving_default`
signature through plain `tf.saved_model.load` (no kerasdl or Keras code involved in
the model). Prints the accuracy next to the one the model card recorded.

Exit statuses: 0 the accuracy matches the model card's, 1 it does not, 2 the path is
not an image classifier exported by `kerasdl train` (one line on stderr saying what
was expected), 4 the dataset is not on disk.
"""

from __future__ import annotations

import json
import numbers
import os
import sys

import numpy as np

from kerasdl.export.saved_model import MODEL_CARD_PATH as CARD

PROG = "python -m kerasdl.export.evaluate"
EXPECTED = (
    "a SavedModel version directory exported by kerasdl train, e.g. "
    f"saved_models/lenet/1, holding saved_model.pb and {CARD}"
)


class EvaluationError(Exception):
    """The path is not an export this tool can score; the message is one line."""


def read_export(export_path) -> dict:
    """Checks that `export_path` is an exported version; returns its model card.

    Raises:
        EvaluationError: the path does not exist, is a file, is empty, is a model's
            base directory (its versions inside), has no `saved_model.pb`, or its
            model card is missing, unreadable, not JSON or lacks the fields this
            tool reads (`dataset.name`, `config`, `metrics.test_accuracy`), or its
            config's `batch_size`, `limit` or `seed` is not a valid integer.
    """
    path = os.fspath(export_path)
    if not os.path.exists(path):
        raise EvaluationError(f"{path} does not exist; expected {EXPECTED}")
    if not os.path.isdir(path):
        raise EvaluationError(f"{path} is a file; expected {EXPECTED}")
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise EvaluationError(_not_a_version(path))
    card_path = os.path.join(path, CARD)
    try:
        with open(card_path, encoding="utf-8") as f:
            card = json.load(f)
    except FileNotFoundError:
        raise EvaluationError(
            f"{card_path} is missing; expected the model card that kerasdl train "
            "writes beside every export (this SavedModel was exported some other way)"
        ) from None
    except OSError as error:
        raise EvaluationError(
            f"{card_path} cannot be read ({error.strerror or error}); expected the "
            "model card that kerasdl train writes beside every export"
        ) from None
    except ValueError as error:  # Not JSON, or not UTF-8.
        raise EvaluationError(
            f"{card_path} is not valid JSON ({_one_line(error)}); expected the model "
            "card that kerasdl train writes beside every export"
        ) from None
    missing = _missing_fields(card)
    if missing:
        raise EvaluationError(
            f"{card_path} has no {missing}; expected a kerasdl model card with "
            "dataset.name, config and metrics.test_accuracy"
        )
    bad = _bad_config_value(card["config"])
    if bad:
        raise EvaluationError(f"{card_path} has {bad}, as kerasdl train records it")
    return card


def check_image_classifier(card: dict, export_path) -> None:
    """Refuses a model card of a text classifier or translator (one line)."""
    from kerasdl.data import IMAGE_DATASETS

    name = card["dataset"]["name"]
    if name not in IMAGE_DATASETS:
        raise EvaluationError(
            f"{os.fspath(export_path)} was trained on {name!r} "
            f"({card.get('recipe', 'an unknown recipe')}); this tool scores image "
            f"classifiers only, trained on one of {', '.join(IMAGE_DATASETS)}"
        )


def load_test_split(card: dict) -> tuple[np.ndarray, np.ndarray]:
    """The raw test images and labels the run was evaluated on."""
    import kerasdl.data

    config = card["config"]
    data = kerasdl.data.load_image_dataset(
        card["dataset"]["name"],
        batch_size=config.get("batch_size", 64),
        data_dir=config.get("data_dir"),
        seed=config.get("seed", 0),
        limit=config.get("limit"),
    )
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in data.test])
    return np.concatenate(images), np.concatenate(labels)


def saved_model_accuracy(
    export_path: str, images: np.ndarray, labels: np.ndarray, batch_size: int = 256
) -> float:
    """Accuracy of the SavedModel's `serving_default(images)["class_id"]`.

    Raises:
        EvaluationError: the SavedModel cannot be loaded, or has no
            `serving_default` signature taking `images` and returning `class_id`.
    """
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(export_path)
    except Exception as error:  # noqa: BLE001 -- TensorFlow raises many kinds.
        raise EvaluationError(
            f"{export_path} cannot be loaded as a SavedModel ({_one_line(error)}); "
            f"expected {EXPECTED}"
        ) from None
    serving = loaded.signatures.get("serving_default")
    if serving is None:
        raise EvaluationError(
            f"{export_path} has no serving_default signature; expected {EXPECTED}"
        )
    try:
        predicted = np.concatenate(
            [
                serving(images=tf.constant(images[i : i + batch_size]))[
                    "class_id"
                ].numpy()
                for i in range(0, len(images), batch_size)
            ]
        )
    except (TypeError, ValueError, KeyError, tf.errors.OpError) as error:
        raise EvaluationError(
            f"{export_path}'s serving_default does not map the test images to a "
            f"class_id ({_one_line(error)}); expected an image classifier exported "
            "by kerasdl train"
        ) from None
    return float(np.mean(predicted == labels))


def main(argv=None) -> int:
    """Scores the export named in `argv`; returns the exit status (see above)."""
    from kerasdl.data import DatasetNotFoundError
    from kerasdl.tasks import exit_codes
    from kerasdl.tasks.command_line import ArgumentParser

    parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("export_path", help="e.g. saved_models/lenet/1")
    args = parser.parse_args(argv)
    try:
        card = read_export(args.export_path)
        check_image_classifier(card, args.export_path)
        images, labels = load_test_split(card)
        accuracy = saved_model_accuracy(args.export_path, images, labels)
    except EvaluationError as error:
        return _fail(exit_codes.USAGE, f"{PROG}: error: {error}")
    except DatasetNotFoundError as error:
        return _fail(exit_codes.DATASET_NOT_FOUND, f"{PROG}: error: {error}")
    recorded = card["metrics"]["test_accuracy"]
    print(
        f"{args.export_path}: test accuracy {accuracy:.4f} on {len(labels)} "
        f"{card['dataset']['name']} test images (model card: {recorded:.4f})"
    )
    return 0 if abs(accuracy - recorded) < 1e-6 else 1


def _not_a_version(path) -> str:
    """Why the directory `path`, without a saved_model.pb, is not a version."""
    entries = os.listdir(path)
    if not entries:
        return f"{path} is empty; expected {EXPECTED}"
    versions = sorted(
        int(name)
        for name in entries
        if name.isdigit() and os.path.isdir(os.path.join(path, name))
    )
    if versions:
        listed = ", ".join(map(str, versions))
        return (
            f"{path} is a model's base directory "
            f"({'versions' if len(versions) > 1 else 'version'} {listed}), not one "
            "version; pass a version directory, e.g. "
            f"{os.path.join(path, str(versions[-1]))}"
        )
    return f"{path} has no saved_model.pb; expected {EXPECTED}"


def _missing_fields(card) -> str | None:
    """The first field this tool reads that `card` lacks (dotted), else `None`."""
    if not isinstance(card, dict):
        return "fields (it is not a JSON object)"
    dataset = card.get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str):
        return "dataset.name"
    if not isinstance(card.get("config"), dict):
        return "config"
    metrics = card.get("metrics")
    accuracy = metrics.get("test_accuracy") if isinstance(metrics, dict) else None
    if isinstance(accuracy, bool) or not isinstance(accuracy, numbers.Real):
        return "metrics.test_accuracy"
    return None


def _bad_config_value(config) -> str | None:
    """What is wrong with the first config value that selects the test split (its
    batches, `limit`, `seed`), else `None`."""
    for name, low, nullable in (
        ("batch_size", 1, False),
        ("limit", 1, True),
        ("seed", 0, False),
    ):
        if name not in config or (nullable and config[name] is None):
            continue
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            return (
                f"config.{name} = {json.dumps(value)}; expected an integer >= {low}"
                + (" or null" if nullable else "")
            )
    return None


def _one_line(error) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _fail(code: int, message: str) -> int:
    sys.stdout.flush()
    print(message.replace("\n", " "), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
