"""Scores an exported SavedModel on its dataset's test split, as a client would.

    python -m kerasdl.export.evaluate saved_models/lenet/1

Reads the dataset name, `limit` and `batch_size` from the model card, loads the test
split's raw images with `kerasdl.data`, and calls the SavedModel's `serving_default`
signature through plain `tf.saved_model.load` (no kerasdl or Keras code involved in
the model). Prints the accuracy next to the one the model card recorded.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


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
    import tensorflow as tf

    serving = tf.saved_model.load(export_path).signatures["serving_default"]
    predicted = np.concatenate(
        [
            serving(images=tf.constant(images[i : i + batch_size]))["class_id"].numpy()
            for i in range(0, len(images), batch_size)
        ]
    )
    return float(np.mean(predicted == labels))


def main(argv=None) -> int:
    from kerasdl.export import load_model_card

    parser = argparse.ArgumentParser(prog="python -m kerasdl.export.evaluate")
    parser.add_argument("export_path", help="e.g. saved_models/lenet/1")
    args = parser.parse_args(argv)
    card = load_model_card(args.export_path)
    images, labels = load_test_split(card)
    accuracy = saved_model_accuracy(args.export_path, images, labels)
    recorded = card["metrics"]["test_accuracy"]
    print(
        f"{args.export_path}: test accuracy {accuracy:.4f} on {len(labels)} "
        f"{card['dataset']['name']} test images (model card: {recorded:.4f})"
    )
    return 0 if abs(accuracy - recorded) < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
