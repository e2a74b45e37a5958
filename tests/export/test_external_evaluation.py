"""The exported model scores the same from outside the project as in the model card."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

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
