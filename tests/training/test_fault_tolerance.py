"""Real faults in real subprocesses: SIGKILL and resume, NaN loss, torn checkpoints."""

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "fault_injection.py")
FLAGS = [
    "--dataset",
    "digits",
    "--limit",
    "160",
    "--epochs",
    "4",
    "--batch-size",
    "32",
    "--deterministic",
    "--verbose",
    "0",
    "--early-stopping-patience",
    "10",
]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}


def run(mode, workdir, output, wait=True):
    command = [
        sys.executable,
        SCRIPT,
        mode,
        *FLAGS,
        "--workdir",
        str(workdir),
        "--output",
        str(output),
    ]
    if not wait:
        return subprocess.Popen(
            command,
            env=ENV,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    return subprocess.run(  # noqa: PLW1510 -- the status is asserted
        command, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def final_model_arrays(workdir):
    path = max(glob.glob(os.path.join(workdir, "checkpoints", "epoch-*.npz")))
    with np.load(path) as data:
        return os.path.basename(path), {
            k: data[k] for k in data.files if k.startswith("model/")
        }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    base = tmp_path_factory.mktemp("uninterrupted")
    result = run("none", base / "work", base / "models")
    assert result.returncode == 0, result.stderr[-3000:]
    return base / "work"


def assert_same_final_weights(resumed_workdir, reference_workdir):
    name_a, resumed = final_model_arrays(resumed_workdir)
    name_b, reference = final_model_arrays(reference_workdir)
    assert name_a == name_b == "epoch-00004.npz"
    assert resumed.keys() == reference.keys()
    for key in reference:
        np.testing.assert_array_equal(resumed[key], reference[key], err_msg=key)


def test_sigkill_at_epoch_boundary_resumes_to_identical_weights(
    tmp_path, uninterrupted
):
    killed = run("kill-after-epoch:2", tmp_path / "work", tmp_path / "models")
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "models").exists() or not os.listdir(tmp_path / "models")

    resumed = run("none", tmp_path / "work", tmp_path / "models")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "after epoch 2" in resumed.stdout
    assert "Model exported to:" in resumed.stdout
    assert_same_final_weights(tmp_path / "work", uninterrupted)


@pytest.mark.large
def test_sigkill_mid_epoch_replays_the_epoch_to_identical_weights(
    tmp_path, uninterrupted
):
    process = run("none", tmp_path / "work", tmp_path / "models", wait=False)
    first = tmp_path / "work" / "checkpoints" / "epoch-00001.npz"
    deadline = time.time() + 300
    while not first.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.2)  # Somewhere inside epoch 2.
    process.send_signal(signal.SIGKILL)
    process.communicate()
    resumed = run("none", tmp_path / "work", tmp_path / "models")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_final_weights(tmp_path / "work", uninterrupted)


def test_nan_loss_exits_3_keeps_last_good_checkpoint_exports_nothing(tmp_path):
    result = run("nan-at-epoch:2", tmp_path / "work", tmp_path / "models")
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "diverged" in result.stderr
    name, arrays = final_model_arrays(tmp_path / "work")
    assert name == "epoch-00002.npz"
    assert all(np.all(np.isfinite(a)) for a in arrays.values())
    assert not glob.glob(str(tmp_path / "models" / "*" / "[0-9]*"))
