"""`--tensorflow_session_config_file` (TF Serving's flag) and kerasdl serve's default
session config: TensorFlow's thread spinning off, so pool threads that spin after
each op do not take the cores the event loop needs."""

import subprocess
import sys

import pytest
from conftest import REPO

from kerasdl.serving import server as server_module

# `_apply_session_config` creates TensorFlow's eager context through an internal
# call (TensorFlow 2 has no public one for a whole ConfigProto). These are the
# TensorFlow versions it was checked on: a new TensorFlow fails here until the
# call is checked again (and this tuple extended) or dropped.
SESSION_CONFIG_CHECKED_ON = ("2.21.",)

_PROBE = """
import argparse, sys
import tensorflow as tf
from tensorflow.python.eager import context
from kerasdl.serving import server
args = argparse.Namespace(
    tensorflow_session_config_file=sys.argv[1],
    tensorflow_intra_op_parallelism=int(sys.argv[2]),
    tensorflow_inter_op_parallelism=0,
)
server._configure_tensorflow(args)
tf.constant(1.0) + 1.0  # the context is initialized with the config
config = context.context().config
print(tf.__version__, config.experimental.disable_thread_spinning,
      config.intra_op_parallelism_threads, config.inter_op_parallelism_threads)
"""


def _configured(path="", intra=0):
    """`(tf version, spinning disabled, intra, inter)` as a fresh server process sets them."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, path, str(intra)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    version, spinning_off, intra, inter = result.stdout.split()
    return version, spinning_off == "True", int(intra), int(inter)


def test_default_turns_thread_spinning_off_on_the_pinned_tensorflow():
    version, spinning_off, _, _ = _configured()
    assert version.startswith(SESSION_CONFIG_CHECKED_ON), (
        f"TensorFlow {version}: check server._apply_session_config's internal call "
        f"(checked on {SESSION_CONFIG_CHECKED_ON}) and extend the tuple, or drop it"
    )
    assert spinning_off


def test_a_session_config_file_replaces_the_default_and_flags_override_it(tmp_path):
    path = tmp_path / "session.pbtxt"
    path.write_text(
        "intra_op_parallelism_threads: 2\n"
        "inter_op_parallelism_threads: 3\n"
        "experimental { disable_thread_spinning: false }\n"
    )
    assert _configured(str(path))[1:] == (False, 2, 3)
    # As in TF Serving, --tensorflow_intra_op_parallelism overrides the file.
    assert _configured(str(path), intra=1)[1:] == (False, 1, 3)


@pytest.mark.parametrize(
    "text, reason",
    [
        (
            "experimental { disable_thread_spinning: maybe }",
            "not a TensorFlow ConfigProto",
        ),
        ("no_such_field: 1", "not a TensorFlow ConfigProto"),
        (None, "cannot be read (No such file or directory)"),
    ],
)
def test_a_bad_session_config_file_is_refused_before_anything_loads(
    capsys, tmp_path, monkeypatch, text, reason
):
    def accepted(*args, **kwargs):
        raise AssertionError("the config was accepted: the server was about to start")

    monkeypatch.setattr(server_module, "build_app", accepted)
    path = tmp_path / "session.pbtxt"
    if text is not None:
        path.write_text(text)
    code = server_module.main(
        [
            "--model_base_path",
            str(tmp_path),
            "--port=0",
            f"--tensorflow_session_config_file={path}",
        ]
    )
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(errors) == 1, errors
    assert f"--tensorflow_session_config_file {path}: {reason}" in errors[0]
