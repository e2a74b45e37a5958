"""The exported model scores the same from outside the project as in the model card."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kerasdl.export import evaluate
from kerasdl.export.evaluate import load_test_split

OUTSIDER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    export_path, data_path = sys.argv[1], sys.argv[2]
    with np.load(data_path) as data:
        images, labels = data["images"], data["labels"]
    serving = tf.saved_model.load(export_path).signatures["serving_default"]
    class_id = serving(images=tf.constant(images))["class_id"].numpy()
    print(json.dumps({"accuracy": float(np.mean(class_id == labels))}))
""")


def test_plain_tensorflow_reproduces_the_model_card_accuracy(tmp_path, capsys):
    import kerasdl.recipes.lenet

    status = kerasdl.recipes.lenet.main(
        [
            "--epochs",
            "2",
            "--limit",
            "120",
            "--verbose",
            "0",
            "--workdir",
            str(tmp_path / "run"),
            "--output",
            str(tmp_path / "models"),
        ]
    )
    assert status == 0, capsys.readouterr().err
    export_path = str(tmp_path / "models" / "lenet" / "1")
    with open(os.path.join(export_path, "assets.extra", "model_card.json")) as f:
        card = json.load(f)
    images, labels = load_test_split(card)
    np.savez(tmp_path / "test_split.npz", images=images, labels=labels)
    (tmp_path / "outsider.py").write_text(OUTSIDER)

    # -I: isolated mode, no PYTHONPATH and no current directory on sys.path, run from
    # a directory outside the project: only TensorFlow and NumPy are importable here.
    result = subprocess.run(  # noqa: PLW1510 -- the status is asserted
        [
            sys.executable,
            "-I",
            str(tmp_path / "outsider.py"),
            export_path,
            str(tmp_path / "test_split.npz"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = json.loads(result.stdout.strip().splitlines()[-1])["accuracy"]
    assert abs(accuracy - card["metrics"]["test_accuracy"]) < 1e-6


# `python -m kerasdl.export.evaluate` on something that is not an export -------------


@pytest.fixture(scope="module")
def version_without_card(tmp_path_factory):
    """A real SavedModel version directory (a tiny classifier), no model card."""
    import tensorflow as tf

    class Classifier(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)])
        def serve(self, images):
            return {"class_id": tf.zeros([tf.shape(images)[0]], tf.int64)}

    path = tmp_path_factory.mktemp("models") / "tiny" / "1"
    module = Classifier()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def _copy(version, tmp_path):
    target = tmp_path / "tiny" / "1"
    shutil.copytree(version, target)
    return target


def _write_card(version, text):
    (version / "assets.extra").mkdir(exist_ok=True)
    card = version / "assets.extra" / "model_card.json"
    card.write_bytes(text if isinstance(text, bytes) else text.encode())


def _evaluate(path, capsys):
    capsys.readouterr()
    status = evaluate.main([str(path)])
    out, err = capsys.readouterr()
    return status, out, err


def _assert_one_line(status, err, *expected):
    assert status == 2, err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("python -m kerasdl.export.evaluate: error: ")
    for text in expected:
        assert str(text) in line, line


def test_missing_folder(tmp_path, capsys):
    status, _, err = _evaluate(tmp_path / "saved_models" / "lenet" / "9", capsys)

    _assert_one_line(
        status,
        err,
        tmp_path / "saved_models" / "lenet" / "9",
        "does not exist",
        "expected a SavedModel version directory",
    )


def test_empty_folder(tmp_path, capsys):
    status, _, err = _evaluate(tmp_path, capsys)

    _assert_one_line(status, err, tmp_path, "is empty", "saved_model.pb")


def test_a_file_instead_of_a_folder(tmp_path, capsys):
    (tmp_path / "model.keras").write_text("not a SavedModel")

    status, _, err = _evaluate(tmp_path / "model.keras", capsys)

    _assert_one_line(
        status,
        err,
        tmp_path / "model.keras",
        "is a file",
        "expected a SavedModel version directory",
    )


def test_folder_of_other_files(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")

    status, _, err = _evaluate(tmp_path, capsys)

    _assert_one_line(status, err, tmp_path, "has no saved_model.pb")


def test_model_base_folder_names_a_version_to_pass(
    version_without_card, tmp_path, capsys
):
    version = _copy(version_without_card, tmp_path)
    shutil.copytree(version, tmp_path / "tiny" / "2")

    status, _, err = _evaluate(tmp_path / "tiny", capsys)

    _assert_one_line(
        status, err, "base directory", "versions 1, 2", tmp_path / "tiny" / "2"
    )


def test_version_without_model_card(version_without_card, capsys):
    status, _, err = _evaluate(version_without_card, capsys)

    _assert_one_line(
        status,
        err,
        os.path.join(version_without_card, "assets.extra", "model_card.json"),
        "is missing",
        "model card",
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"recipe": "lenet", "dataset": ', "is not valid JSON"),
        ("", "is not valid JSON"),
        (b'{"recipe": "\xff"}', "is not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"recipe": "lenet"}', "has no dataset.name"),
        ('{"dataset": {"name": "digits"}, "config": {}}', "metrics.test_accuracy"),
        (
            '{"dataset": {"name": "digits"}, "metrics": {"test_accuracy": 0.9}}',
            "has no config",
        ),
        (
            json.dumps(
                {
                    "dataset": {"name": "digits"},
                    "config": {"limit": -1},
                    "metrics": {"test_accuracy": 0.9},
                }
            ),
            "config.limit = -1; expected an integer >= 1",
        ),
        (
            json.dumps(
                {
                    "dataset": {"name": "digits"},
                    "config": {"seed": "x"},
                    "metrics": {"test_accuracy": 0.9},
                }
            ),
            'config.seed = "x"; expected an integer >= 0',
        ),
    ],
    ids=[
        "truncated",
        "empty",
        "not-utf8",
        "list",
        "no-dataset",
        "no-metrics",
        "no-config",
        "negative-limit",
        "text-seed",
    ],
)
def test_version_with_corrupt_model_card(
    version_without_card, tmp_path, capsys, text, expected
):
    version = _copy(version_without_card, tmp_path)
    _write_card(version, text)

    status, _, err = _evaluate(version, capsys)

    _assert_one_line(
        status, err, os.path.join(version, "assets.extra", "model_card.json"), expected
    )


def test_text_classifier_card_is_refused(version_without_card, tmp_path, capsys):
    version = _copy(version_without_card, tmp_path)
    card = {
        "recipe": "rnn_intent",
        "dataset": {"name": "banking77"},
        "config": {},
        "metrics": {"test_accuracy": 0.9},
    }
    _write_card(version, json.dumps(card))

    status, _, err = _evaluate(version, capsys)

    _assert_one_line(status, err, version, "'banking77'", "image classifiers only")


def test_corrupt_saved_model(version_without_card, tmp_path, capsys):
    version = _copy(version_without_card, tmp_path)
    (version / "saved_model.pb").write_bytes(b"\x00 not a protobuf")
    card = {
        "recipe": "lenet",
        "dataset": {"name": "digits"},
        "config": {"limit": 20},
        "metrics": {"test_accuracy": 0.9},
    }
    _write_card(version, json.dumps(card))

    status, _, err = _evaluate(version, capsys)

    _assert_one_line(status, err, version, "cannot be loaded as a SavedModel")


def test_terminal_sees_one_line_and_no_traceback(tmp_path):
    result = subprocess.run(  # noqa: PLW1510 -- the status is asserted
        [sys.executable, "-m", "kerasdl.export.evaluate", str(tmp_path / "nothing")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = result.stderr.splitlines()  # TensorFlow's start-up lines included.

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1, result.stderr
    assert str(tmp_path / "nothing") in lines[0] and "does not exist" in lines[0]
