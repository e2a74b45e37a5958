"""Real killed processes around `fit`, checkpoints and export: nothing trained is lost.

Each case runs `kerasdl.recipes.lenet` (tiny digits run) in a subprocess with a fault
injected by tests/training/fault_injection.py, then reruns the same command.
"""

import csv
import glob
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(ROOT, "tests", "training", "fault_injection.py")
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


def run(mode, workdir, output, *extra, env=None):
    command = [sys.executable, SCRIPT, mode, *FLAGS, *extra]
    command += ["--workdir", str(workdir), "--output", str(output)]
    return subprocess.run(  # noqa: PLW1510 -- the status is asserted
        command,
        env={**ENV, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def log_rows(workdir):
    with open(os.path.join(workdir, "training_log.csv"), newline="") as f:
        return list(csv.DictReader(f))


def final_weights(workdir):
    with np.load(os.path.join(workdir, "checkpoints", "final.npz")) as data:
        return {k: data[k] for k in data.files if k.startswith("model/")}


def versions(output):
    return sorted(glob.glob(os.path.join(str(output), "lenet", "*")))


def card(version_dir):
    with open(os.path.join(version_dir, "assets.extra", "model_card.json")) as f:
        return json.load(f)


def one_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    assert "Traceback" not in stderr, stderr[-3000:]
    return lines[-1]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    base = tmp_path_factory.mktemp("uninterrupted")
    result = run("none", base / "work", base / "models")
    assert result.returncode == 0, result.stderr[-3000:]
    return base / "work"


def assert_resumed_without_training(result, workdir, output, reference):
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Model exported to:" in result.stdout
    assert len(log_rows(workdir)) == 4  # No epoch trained twice, none added.
    published = versions(output)
    assert [os.path.basename(p) for p in published] == ["1"]
    assert not glob.glob(os.path.join(str(output), "lenet", ".tmp-*"))
    got, want = final_weights(workdir), final_weights(reference)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    with open(os.path.join(workdir, "run.json")) as f:
        assert json.load(f)["phase"] == "published"


def test_sigkill_after_fit_reevaluates_and_exports_without_training(
    tmp_path, uninterrupted
):
    work, models = tmp_path / "work", tmp_path / "models"
    killed = run("kill-after-fit", work, models)
    assert killed.returncode == -signal.SIGKILL
    assert versions(models) == []

    resumed = run("none", work, models)
    assert "finished earlier" in resumed.stdout
    assert_resumed_without_training(resumed, work, models, uninterrupted)
    assert card(versions(models)[0])["training"]["fitted_by_an_earlier_process"]


def test_sigkill_before_the_final_weights_resumes_without_training(
    tmp_path, uninterrupted
):
    work, models = tmp_path / "work", tmp_path / "models"
    killed = run("kill-before-final", work, models)
    assert killed.returncode == -signal.SIGKILL

    resumed = run("none", work, models)
    assert "after epoch 4" in resumed.stdout
    assert_resumed_without_training(resumed, work, models, uninterrupted)


def test_sigkill_during_export_removes_the_unfinished_copy_and_exports_again(
    tmp_path, uninterrupted
):
    work, models = tmp_path / "work", tmp_path / "models"
    killed = run("kill-during-export", work, models)
    assert killed.returncode == -signal.SIGKILL
    assert len(glob.glob(str(models / "lenet" / ".tmp-*"))) == 1  # Left behind.

    resumed = run("none", work, models)
    assert "finished earlier" in resumed.stdout
    assert_resumed_without_training(resumed, work, models, uninterrupted)


def test_failed_export_exits_1_in_one_line_and_rerun_exports_without_training(
    tmp_path, uninterrupted
):
    work, models = tmp_path / "work", tmp_path / "models"
    failed = run("fail-export", work, models)
    assert failed.returncode == 1
    line = one_line(failed.stderr)
    assert "export failed" in line and "without retraining" in line

    resumed = run("none", work, models)
    assert_resumed_without_training(resumed, work, models, uninterrupted)


def test_sigkill_during_a_checkpoint_write_leaves_no_temp_file_after_rerun(
    tmp_path, uninterrupted
):
    work, models = tmp_path / "work", tmp_path / "models"
    killed = run("kill-during-checkpoint:3", work, models)
    assert killed.returncode == -signal.SIGKILL
    assert glob.glob(str(work / "checkpoints" / ".tmp-*"))  # The torn write.
    assert not (work / "checkpoints" / "epoch-00003.npz").exists()

    resumed = run("none", work, models)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "after epoch 2" in resumed.stdout
    assert not glob.glob(str(work / "checkpoints" / ".tmp-*"))
    assert len(log_rows(work)) == 4
    got, want = final_weights(work), final_weights(uninterrupted)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_changed_flags_are_refused_then_restart_starts_afresh(tmp_path):
    work, models = tmp_path / "work", tmp_path / "models"
    killed = run("kill-after-epoch:2", work, models)
    assert killed.returncode == -signal.SIGKILL

    for extra, named in [
        (["--learning-rate", "0.01"], "--learning-rate"),
        (["--model-options", '{"activation": "sigmoid"}'], "--model-options"),
        (["--optimizer", "sgd"], "--optimizer"),
        (["--epochs", "1"], "--epochs 1"),
    ]:
        refused = run("none", work, models, *extra)
        assert refused.returncode == 2, (extra, refused.stderr[-2000:])
        line = one_line(refused.stderr)
        assert named in line, line
        assert "--restart" in line, line
    assert versions(models) == []
    assert sorted(os.listdir(work / "checkpoints")) == [
        "epoch-00001.npz",
        "epoch-00002.npz",
    ]

    restarted = run(
        "none", work, models, "--epochs", "2", "--optimizer", "sgd", "--restart"
    )
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "Resuming" not in restarted.stdout
    assert len(log_rows(work)) == 2
    assert card(versions(models)[0])["config"]["optimizer"] == "sgd"


def test_nan_in_the_first_epoch_says_there_is_no_checkpoint(tmp_path):
    result = run("nan-at-epoch:0", tmp_path / "work", tmp_path / "models")
    assert result.returncode == 3, result.stderr[-3000:]
    line = one_line(result.stderr)
    assert "no checkpoint" in line and "nothing was exported" in line
    assert "last good checkpoint" not in line


def _tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    mounted = subprocess.run(  # noqa: PLW1510 -- checked below
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounts = []

    def make(name, size):
        path = tmp_path / name
        _tmpfs(path, size)
        mounts.append(path)
        return path

    yield make
    for path in mounts:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_disk_that_fills_exits_5_keeps_the_checkpoints_and_resumes(
    tmp_path, small_disk, uninterrupted
):
    disk = small_disk("disk", "24m")
    work, models = disk / "work", tmp_path / "models"
    filler = disk / "filler"
    full = run(
        "fill-disk-after-epoch:2", work, models, env={"FILLER_PATH": str(filler)}
    )
    assert full.returncode == 5, full.stderr[-3000:]
    line = one_line(full.stderr)
    assert "no space left" in line and "rerun" in line
    assert (work / "checkpoints" / "epoch-00002.npz").exists()
    assert not glob.glob(str(work / "checkpoints" / ".tmp-*"))
    assert versions(models) == []

    os.remove(filler)
    resumed = run("none", work, models)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "after epoch 2" in resumed.stdout
    got, want = final_weights(work), final_weights(uninterrupted)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_a_disk_too_small_is_refused_before_training_with_an_estimate(
    tmp_path, small_disk
):
    disk = small_disk("tiny", "1m")
    result = run("none", disk / "work", tmp_path / "models")
    assert result.returncode == 2, result.stderr[-3000:]
    line = one_line(result.stderr)
    assert "not enough free space" in line and "MiB needed" in line
    assert not (disk / "work" / "training_log.csv").exists()
