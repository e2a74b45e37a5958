"""ModelManager.reload_config and the config file re-read: new configs apply live."""

import dataclasses
import threading
import time

import pytest
import requests
from conftest import ServerProcess

from kerasdl.serving.config import ConfigError, ModelConfig
from kerasdl.serving.model_manager import (
    AVAILABLE,
    END,
    ModelManager,
    NotFoundError,
    ReloadError,
)


class FakeServable:
    def __init__(self, path, name, version):
        self.path, self.name, self.version = path, name, version
        self.signatures = {}


def _loader(broken=()):
    def load(path, name, version):
        if (name, version) in broken:
            raise ValueError(f"{path} is broken")
        return FakeServable(path, name, version)

    return load


def _versions(tmp_path, name, *versions):
    for version in versions:
        (tmp_path / name / str(version)).mkdir(parents=True, exist_ok=True)
    return str(tmp_path / name)


def _states(manager, name):
    return {int(s["version"]): s["state"] for s in manager.status(name)}


@pytest.fixture
def two_models(tmp_path):
    a = ModelConfig("a", _versions(tmp_path, "a", 1, 2), "all")
    b = ModelConfig("b", _versions(tmp_path, "b", 1))
    manager = ModelManager([a], poll_wait_seconds=0, loader=_loader({("b", 9)}))
    manager.poll()
    return manager, a, b


def test_added_model_is_loaded_before_reload_returns(two_models):
    manager, a, b = two_models
    manager.reload_config([a, b])
    assert manager.servable("b").version == 1
    assert [c.name for c in manager.model_configs()] == ["a", "b"]


def test_removed_model_is_unloaded(two_models):
    manager, a, b = two_models
    manager.reload_config([a, b])
    manager.reload_config([b])
    with pytest.raises(NotFoundError):
        manager.servable("a")
    assert _states(manager, "a") == {1: END, 2: END}  # as TF Serving's status
    manager.poll()  # the poller leaves a removed model alone
    assert _states(manager, "a") == {1: END, 2: END}
    manager.reload_config([a, b])  # and it can come back
    assert _states(manager, "a") == {1: AVAILABLE, 2: AVAILABLE}


def test_changed_policy_applies(two_models):
    manager, a, _ = two_models
    manager.reload_config(
        [dataclasses.replace(a, version_policy="specific", versions=(1,))]
    )
    assert _states(manager, "a") == {1: AVAILABLE, 2: END}
    manager.reload_config([dataclasses.replace(a, version_policy="latest")])
    assert _states(manager, "a") == {1: END, 2: AVAILABLE}


def test_changed_labels_apply(two_models):
    manager, a, _ = two_models
    manager.reload_config([dataclasses.replace(a, version_labels={"stable": 1})])
    assert manager.servable("a", label="stable").version == 1
    manager.reload_config([dataclasses.replace(a, version_labels={"stable": 2})])
    assert manager.servable("a", label="stable").version == 2


def test_label_cannot_move_to_an_unavailable_version(two_models):
    manager, a, _ = two_models
    labelled = dataclasses.replace(a, version_labels={"stable": 1})
    manager.reload_config([labelled])
    with pytest.raises(ConfigError, match="not currently available") as caught:
        manager.reload_config([dataclasses.replace(a, version_labels={"stable": 7})])
    assert caught.value.code == "FAILED_PRECONDITION"
    assert manager.model_configs() == [labelled]  # nothing changed


def test_version_that_fails_never_replaces_a_working_one(tmp_path):
    base = _versions(tmp_path, "b", 1, 9)
    manager = ModelManager(
        [ModelConfig("b", base, "specific", versions=(1,))],
        poll_wait_seconds=0,
        loader=_loader({("b", 9)}),
    )
    manager.poll()
    manager.reload_config([ModelConfig("b", base, "specific", versions=(9,))])
    assert manager.servable("b").version == 1  # stands in while 9 cannot load
    status = {int(s["version"]): s for s in manager.status("b")}
    assert status[9]["status"]["error_code"] != "OK"
    assert status[1]["state"] == AVAILABLE


def test_invalid_config_changes_nothing(two_models):
    manager, a, b = two_models
    with pytest.raises(ConfigError, match="listed more than once"):
        manager.reload_config([a, b, b])
    with pytest.raises(ConfigError, match="expected ModelConfig"):
        manager.reload_config([a, {"name": "c"}])
    assert manager.model_configs() == [a]
    with pytest.raises(NotFoundError):
        manager.servable("b")


def test_no_config_takes_no_action(two_models):
    manager, a, _ = two_models
    manager.reload_config(None)
    assert manager.model_configs() == [a]


def test_new_model_without_versions_is_reported(two_models, tmp_path):
    manager, a, _ = two_models
    empty = ModelConfig("c", str(tmp_path / "empty"))
    with pytest.raises(ReloadError, match="Some models did not become available"):
        manager.reload_config([a, empty])
    assert [c.name for c in manager.model_configs()] == ["a", "c"]  # applied


def test_reload_is_thread_safe_with_the_poller(tmp_path):
    a = ModelConfig("a", _versions(tmp_path, "a", 1, 2), "all")
    b = ModelConfig("b", _versions(tmp_path, "b", 1))
    manager = ModelManager([a], poll_wait_seconds=0.001, loader=_loader())
    manager.start()
    errors = []

    def flip(count):
        try:
            for index in range(count):
                manager.reload_config([a, b] if index % 2 == 0 else [a])
                manager.servable("a")  # a is never without a version
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=flip, args=(8,)) for _ in range(3)]
    try:
        manager.first_poll_done.wait(10)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        manager.stop()
    assert errors == []
    manager.reload_config([a, b])
    assert _states(manager, "a") == {1: AVAILABLE, 2: AVAILABLE}
    assert _states(manager, "b") == {1: AVAILABLE}


def _wait(condition, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_config_file_is_re_read_and_applied(tmp_path, caplog):
    _versions(tmp_path, "a", 1)
    _versions(tmp_path, "b", 1)
    path = tmp_path / "models.config"
    path.write_text("model_config_list { config { name: 'a' base_path: 'a' } }")
    from kerasdl.serving.config import load_model_config_file

    manager = ModelManager(
        load_model_config_file(str(path)),
        poll_wait_seconds=0.05,
        loader=_loader(),
        config_file=str(path),
        config_file_poll_wait_seconds=0.05,
    )
    manager.start()
    try:
        _wait(lambda: "a" in [c.name for c in manager.model_configs()])
        path.write_text(
            "model_config_list { config { name: 'a' base_path: 'a' }"
            " config { name: 'b' base_path: 'b' } }"
        )
        _wait(lambda: _b_available(manager))
        path.write_text("model_config_list { config { name: 'a' ")  # half-written
        _wait(lambda: "Failed to read ModelServerConfig file" in caplog.text)
        assert _b_available(manager)  # a broken file changes nothing
        path.write_text("")  # an empty file sets no config: no action either
        time.sleep(0.3)
        assert _b_available(manager)
        path.write_text("model_config_list { config { name: 'b' base_path: 'b' } }")
        _wait(lambda: [c.name for c in manager.model_configs()] == ["b"])
    finally:
        manager.stop()
    with pytest.raises(NotFoundError):
        manager.servable("a")


def _b_available(manager):
    try:
        return manager.servable("b").version == 1
    except NotFoundError:
        return False


def test_server_re_reads_its_config_file_live(model_base, tmp_path):
    """`--model_config_file_poll_wait_seconds`: a model added to the file is served."""
    entry = "config {{ name: '{0}' base_path: '{1}/{0}' }}"
    config = tmp_path / "models.config"
    config.write_text(f"model_config_list {{ {entry.format('dense', model_base)} }}")
    process = ServerProcess(
        f"--model_config_file={config}",
        "--model_config_file_poll_wait_seconds=0.3",
        "--file_system_poll_wait_seconds=0.3",
        log_path=tmp_path / "server.log",
    )
    try:
        process.wait_available(["dense"])
        assert requests.get(f"{process.url}/v1/models/text").status_code == 404
        both = entry.format("dense", model_base) + entry.format("text", model_base)
        config.write_text(f"model_config_list {{ {both} }}")
        process.wait_available(["text"], timeout=60)
        status = requests.get(f"{process.url}/v1/models/text").json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        assert requests.get(f"{process.url}/v1/models/dense").status_code == 200
    finally:
        process.stop()
