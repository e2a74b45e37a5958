import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="oneDNN is a TensorFlow setting",
)

PROBE = """
import os
import kerasdl
from tensorflow.python.util import _pywrap_util_port
print(os.environ["TF_ENABLE_ONEDNN_OPTS"], _pywrap_util_port.IsMklEnabled())
"""


def _probe(**env_overrides):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update(env_overrides, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-2:]


def test_import_turns_on_tensorflow_onednn_kernels():
    assert _probe() == ["1", "True"]


def test_users_onednn_setting_wins():
    assert _probe(TF_ENABLE_ONEDNN_OPTS="0") == ["0", "False"]
