"""The version poller tells "gone" from "could not list": I/O errors never unload."""

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, export_dense, publish

from kerasdl.serving.config import ModelConfig
from kerasdl.serving.model_manager import (
    AVAILABLE,
    END,
    BasePathNotFound,
    ModelManager,
    list_versions,
)


class FakeServable:
    def __init__(self, path, name, version):
        self.path, self.name, self.version = path, name, version
        self.signatures = {}


def _manager(base, **kwargs):
    return ModelManager(
        [ModelConfig("m", str(base))],
        poll_wait_seconds=0,
        loader=FakeServable,
        **kwargs,
    )


def _states(manager):
    return {s["version"]: s["state"] for s in manager.status("m")}


def test_list_versions_raises_when_the_base_path_is_missing(tmp_path):
    with pytest.raises(BasePathNotFound, match="Could not find base path"):
        list_versions(str(tmp_path / "nope"))
    (tmp_path / "file").write_text("")
    with pytest.raises(BasePathNotFound):
        list_versions(str(tmp_path / "file"))


def test_list_versions_of_an_empty_base_is_empty(tmp_path):
    assert list_versions(str(tmp_path)) == {}


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.EACCES, errno.EIO])
def test_list_versions_raises_when_it_cannot_list(tmp_path, monkeypatch, code):
    def scandir(path):
        raise OSError(code, os.strerror(code), path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(OSError) as caught:
        list_versions(str(tmp_path))
    assert caught.value.errno == code


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.EACCES, errno.EIO])
def test_listing_errors_keep_the_loaded_versions(tmp_path, monkeypatch, caplog, code):
    (tmp_path / "1").mkdir()
    manager = _manager(tmp_path)
    manager.poll()
    servable = manager.servable("m")
    real_scandir = os.scandir

    def failing(path):
        raise OSError(code, os.strerror(code), path)

    monkeypatch.setattr(os, "scandir", failing)
    (tmp_path / "2").mkdir()  # cannot be seen while listing fails
    for _ in range(3):
        manager.poll()
    assert manager.servable("m") is servable
    assert _states(manager) == {"1": AVAILABLE}
    warnings = [r for r in caplog.records if "could not list" in r.getMessage()]
    assert len(warnings) == 1  # once, not at every poll
    assert os.strerror(code) in warnings[0].getMessage()

    monkeypatch.setattr(os, "scandir", real_scandir)
    manager.poll()  # listing works again: the new version loads
    assert manager.servable("m").version == 2


def test_missing_base_path_keeps_serving_as_tf_serving(tmp_path):
    base = tmp_path / "m"
    (base / "1").mkdir(parents=True)
    manager = _manager(base)
    manager.poll()
    os.rename(base, tmp_path / "elsewhere")  # e.g. an unmounted volume
    manager.poll()
    assert manager.servable("m").version == 1
    assert _states(manager) == {"1": AVAILABLE}
    os.rename(tmp_path / "elsewhere", base)
    (base / "1").rename(base / "2")
    manager.poll()
    assert _states(manager) == {"2": AVAILABLE, "1": END}


def test_a_listing_without_the_version_unloads_it(tmp_path):
    (tmp_path / "1").mkdir()
    manager = _manager(tmp_path)
    manager.poll()
    (tmp_path / "1").rmdir()
    manager.poll()
    assert _states(manager) == {"1": END}


def test_transient_load_failure_is_retried_without_a_change(tmp_path):
    (tmp_path / "1").mkdir()
    failures = [OSError(errno.EMFILE, "Too many open files")]

    def loader(path, name, version):
        if failures:
            raise failures.pop()
        return FakeServable(path, name, version)

    manager = ModelManager(
        [ModelConfig("m", str(tmp_path))], poll_wait_seconds=0, loader=loader
    )
    manager.poll()
    assert _states(manager) == {"1": END}
    manager.poll()  # same directory, but the failure was EMFILE: tried again
    assert _states(manager) == {"1": AVAILABLE}


def test_broken_version_is_not_retried_until_it_changes(tmp_path):
    (tmp_path / "1").mkdir()
    calls = []

    def loader(path, name, version):
        calls.append(version)
        raise ValueError("corrupt")

    manager = ModelManager(
        [ModelConfig("m", str(tmp_path))], poll_wait_seconds=0, loader=loader
    )
    manager.poll()
    manager.poll()
    assert calls == [1]


# A real EMFILE: a child process lowers RLIMIT_NOFILE, serves a real SavedModel,
# uses up every descriptor, and polls. Root ignores chmod, not rlimits.
CHILD = textwrap.dedent(
    """
    import json, os, resource, shutil, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    from kerasdl.serving.config import ModelConfig
    from kerasdl.serving.model_manager import ModelManager

    base = sys.argv[1]
    manager = ModelManager([ModelConfig("dense", base)], poll_wait_seconds=0)
    manager.poll()
    signature = manager.servable("dense").signatures["serving_default"]
    features = np.ones((1, 4), "float32")
    before = signature.run({"features": features})["output_0"].tolist()
    shutil.copytree(os.path.join(base, "1"), os.path.join(base, "tmp-2"))

    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as error:
        exhausted = error.errno
    os.rename(os.path.join(base, "tmp-2"), os.path.join(base, "2"))
    for _ in range(3):
        manager.poll()
    during = manager.status("dense")
    answer = manager.servable("dense").signatures["serving_default"].run(
        {"features": features}
    )["output_0"].tolist()
    for fd in held:
        os.close(fd)
    manager.poll()
    after = manager.status("dense")
    print(json.dumps({"exhausted": exhausted, "before": before, "answer": answer,
                      "during": during, "after": after}))
    """
)


def test_running_out_of_file_descriptors_never_unloads(tmp_path):
    base = tmp_path / "dense"
    publish(export_dense, str(base), 1, seed=1)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(base)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["exhausted"] == errno.EMFILE
    assert report["during"] == [
        {
            "version": "1",
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }
    ]
    assert report["answer"] == report["before"]  # still serving the same model
    assert "could not list" in result.stderr and "Too many open files" in result.stderr
    states = {s["version"]: s["state"] for s in report["after"]}
    assert states == {"2": "AVAILABLE", "1": "END"}  # and the poller recovered
