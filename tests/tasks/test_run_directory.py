"""RunDirectory: lock, stale files, config record, phases; the shared fit step."""

import dataclasses
import fcntl
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasdl.export.signatures import remove_stale_exports
from kerasdl.tasks import config_fields as fields
from kerasdl.tasks.exit_codes import UsageError
from kerasdl.tasks.fit import fit
from kerasdl.tasks.run_directory import (
    ConfigMismatchError,
    RunDirectory,
    WorkdirBusyError,
)
from kerasdl.tasks.steps import DataError, check_finite


@dataclasses.dataclass
class Config:
    dataset: str = "digits"
    learning_rate: float = fields.learning_rate(1e-3)
    epochs: int = fields.epochs(3)
    output: str = fields.output()


def test_a_second_run_on_a_locked_workdir_is_refused_naming_the_holder(tmp_path):
    busy = pytest.raises(WorkdirBusyError, match=f"pid {os.getpid()}")
    with RunDirectory(tmp_path, recipe="r"), busy:
        RunDirectory(tmp_path, recipe="r").open()
    RunDirectory(tmp_path, recipe="r").open().close()  # Free again once closed.


def test_the_lock_of_a_killed_run_is_not_stale(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, os, sys, time; f = open(sys.argv[1], 'a+'); "
                "fcntl.flock(f, fcntl.LOCK_EX); f.write(str(os.getpid())); "
                "f.flush(); print('locked', flush=True); time.sleep(60)"
            ),
            str(tmp_path / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(WorkdirBusyError, match=str(holder.pid)):
        RunDirectory(tmp_path, recipe="r").open()
    holder.kill()
    holder.wait()
    # The kernel dropped the killed holder's lock; its pid is still in the file.
    assert (tmp_path / ".lock").read_text().strip() == str(holder.pid)
    held = pytest.raises(BlockingIOError)
    with RunDirectory(tmp_path, recipe="r"), open(tmp_path / ".lock") as f, held:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_opening_removes_temporary_files_of_killed_writes(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    stale = [tmp_path / "checkpoints" / ".tmp-abc.npz", tmp_path / ".tmp-x.json"]
    for path in stale:
        path.write_bytes(b"torn")
    (tmp_path / "checkpoints" / "epoch-00001.npz").write_bytes(b"kept")
    with RunDirectory(tmp_path, recipe="r"):
        assert not any(path.exists() for path in stale)
        assert (tmp_path / "checkpoints" / "epoch-00001.npz").exists()


def test_resume_refuses_other_settings_and_names_each_field(tmp_path):
    with RunDirectory(tmp_path, recipe="r") as run_dir:
        run_dir.check_resume(Config())
    with RunDirectory(tmp_path, recipe="r") as run_dir:
        run_dir.check_resume(Config(epochs=9, output="elsewhere"))  # Resumable.
        with pytest.raises(ConfigMismatchError) as error:
            run_dir.check_resume(Config(learning_rate=0.5, dataset="mnist"))
    message = str(error.value)
    assert "--learning-rate: 0.001 then, 0.5 now" in message
    assert "--dataset: 'digits' then, 'mnist' now" in message
    assert "--restart" in message and "\n" not in message
    with pytest.raises(ConfigMismatchError, match="recipe: 'r' then, 'other' now"):
        RunDirectory(tmp_path, recipe="other").open().check_resume(Config())


def test_restart_and_a_published_run_start_afresh(tmp_path):
    with RunDirectory(tmp_path, recipe="r") as run_dir:
        run_dir.check_resume(Config())
        os.makedirs(run_dir.checkpoints)
        (tmp_path / "checkpoints" / "epoch-00001.npz").write_bytes(b"x")
    with RunDirectory(tmp_path, recipe="r", restart=True) as run_dir:
        assert run_dir.phase == "new"
        assert not (tmp_path / "checkpoints").exists()
        run_dir.check_resume(Config(learning_rate=0.5))  # No longer refused.
        run_dir.mark_published("saved_models/r/1")
    with RunDirectory(tmp_path, recipe="r") as run_dir:
        assert run_dir.phase == "new"
        run_dir.check_resume(Config(learning_rate=0.1))


def test_holds_published_only_for_the_same_settings_and_final_weights(tmp_path):
    with RunDirectory(tmp_path, recipe="r") as run_dir:
        run_dir.check_resume(Config())
        assert not run_dir.holds_published(Config())  # Still training.
        os.makedirs(run_dir.checkpoints)
        (tmp_path / "checkpoints" / "final.npz").write_bytes(b"x")
        run_dir.mark_published("saved_models/r/1")
    reader = RunDirectory(tmp_path, recipe="r", writer=False)
    assert reader.holds_published(Config())
    assert reader.holds_published(Config(output="elsewhere"))  # Where it exported.
    assert not reader.holds_published(Config(epochs=9))  # Other weights.
    assert not reader.holds_published(Config(learning_rate=0.5))
    assert not reader.holds_published(Config(), recipe="other")
    os.remove(tmp_path / "checkpoints" / "final.npz")
    assert not reader.holds_published(Config())


@dataclasses.dataclass
class NewerConfig(Config):
    dtype_policy: str = "float32"  # A setting added after the run was recorded.


def test_a_setting_the_record_lacks_counts_as_its_default(tmp_path):
    with RunDirectory(tmp_path, recipe="r") as run_dir:
        run_dir.check_resume(Config())
        os.makedirs(run_dir.checkpoints)
        (tmp_path / "checkpoints" / "final.npz").write_bytes(b"x")
        run_dir.mark_published("saved_models/r/1")
    reader = RunDirectory(tmp_path, recipe="r", writer=False)
    assert reader.holds_published(NewerConfig())
    assert not reader.holds_published(NewerConfig(dtype_policy="mixed_bfloat16"))


def test_a_corrupt_record_is_one_clear_error(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(UsageError, match="run.json is unreadable.*--restart"):
        RunDirectory(tmp_path, recipe="r").open()


@pytest.mark.parametrize("text", ["[]", "null", '{"config": []}', '{"fit": 3}'])
def test_a_record_that_is_not_an_object_is_one_clear_error(tmp_path, text):
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(UsageError, match="run.json is not a run record.*--restart"):
        RunDirectory(tmp_path, recipe="r").open()


def test_restart_discards_a_corrupt_record(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    with RunDirectory(tmp_path, recipe="r", restart=True) as run_dir:
        assert run_dir.read_record() == {}


def test_a_workdir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file; expected a directory"):
        RunDirectory(tmp_path / "file", recipe="r").open()


def _model_and_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1))).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model, data


def _fit(tmp_path, epochs, patience=10):
    model, data = _model_and_data()
    with RunDirectory(tmp_path, recipe="r") as run_dir:
        run_dir.check_resume(Config(epochs=epochs))
        result = fit(
            model,
            data,
            data,
            run_dir=run_dir,
            epochs=epochs,
            patience=patience,
            verbose=0,
        )
    return model, result


def test_a_fitted_run_is_not_trained_again(tmp_path):
    first_model, first = _fit(tmp_path, 3)
    assert (first.epochs_run, first.fitted_earlier) == (3, False)
    model, again = _fit(tmp_path, 3)
    assert again.fitted_earlier and again.epochs_run == 3
    assert again.history["loss"] == first.history["loss"]
    for a, b in zip(model.get_weights(), first_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unreadable_final_weights_are_rebuilt_from_the_epoch_checkpoints(tmp_path):
    first_model, _ = _fit(tmp_path, 3)
    final = tmp_path / "checkpoints" / "final.npz"
    final.write_bytes(final.read_bytes()[:100])  # Truncated.
    model, again = _fit(tmp_path, 3)
    assert again.epochs_run == 3 and len(again.history["loss"]) == 3
    for a, b in zip(model.get_weights(), first_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with np.load(final) as data:  # Written again, readable.
        assert data.files


def test_an_unreadable_training_log_is_refused_before_training_on(tmp_path):
    _fit(tmp_path, 2)
    (tmp_path / "training_log.csv").write_bytes(b"\xfe\xff garbage")
    with pytest.raises(UsageError, match="training_log.csv is not a readable"):
        _fit(tmp_path, 4)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == [
        "epoch-00001.npz",
        "epoch-00002.npz",
        "final.npz",
    ]


def test_a_tensorboard_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "tensorboard").write_text("x")
    with pytest.raises(UsageError, match="tensorboard is a file; expected a dir"):
        _fit(tmp_path, 1)


def test_steps_per_execution_must_divide_the_epoch(tmp_path):
    model, data = _model_and_data()  # 4 batches per epoch.
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=3)
    with RunDirectory(tmp_path, recipe="r") as run_dir:
        run_dir.check_resume(Config(epochs=1))
        with pytest.raises(UsageError, match=r"per epoch \(4\).*e\.g\. 2"):
            fit(model, data, data, run_dir=run_dir, epochs=1, patience=1, verbose=0)
    assert not (tmp_path / "checkpoints").exists()


def test_more_epochs_continue_a_fitted_run_fewer_are_refused(tmp_path):
    _fit(tmp_path, 2)
    _, longer = _fit(tmp_path, 4)
    assert (longer.resumed_from_epoch, longer.epochs_run) == (2, 4)
    assert len(longer.history["loss"]) == 4
    with pytest.raises(UsageError, match="--epochs 3 is fewer than the 4 epochs"):
        _fit(tmp_path, 3)


def test_early_stopped_run_killed_before_its_final_weights_is_not_trained_on(
    tmp_path,
):
    model, data = _model_and_data()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")  # No progress.
    with RunDirectory(tmp_path, recipe="r") as run_dir:
        run_dir.check_resume(Config(epochs=10))
        stopped = fit(
            model, data, data, run_dir=run_dir, epochs=10, patience=1, verbose=0
        )
    assert stopped.early_stopped and stopped.epochs_run == 2
    os.remove(tmp_path / "checkpoints" / "final.npz")  # As if killed before it.
    model, data = _model_and_data()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    with RunDirectory(tmp_path, recipe="r") as run_dir:
        again = fit(
            model, data, data, run_dir=run_dir, epochs=10, patience=1, verbose=0
        )
    assert again.epochs_run == 2 and again.early_stopped
    assert len(again.history["loss"]) == 2
    assert os.path.exists(tmp_path / "checkpoints" / "final.npz")
    with open(tmp_path / "run.json") as f:
        assert json.load(f)["phase"] == "fitted"


def test_non_finite_inputs_are_reported_as_such():
    images = np.zeros((10, 2, 2, 1), "float32")
    images[7, 0, 0, 0] = np.nan
    images[9, 1, 1, 0] = np.inf
    data = tf.data.Dataset.from_tensor_slices((images, np.zeros(10))).batch(4)
    with pytest.raises(
        DataError, match="test split holds 2 example.*first is example 7"
    ):
        check_finite(data, "test")
    ints = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2), "uint8"), [0] * 4))
    check_finite(ints.batch(2), "train")  # Nothing to check.


def test_stale_exports_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".tmp-{dead.pid}-abc").mkdir()
    (tmp_path / f".tmp-{os.getpid()}-def").mkdir()
    (tmp_path / "1").mkdir()
    removed = remove_stale_exports(tmp_path)
    assert [os.path.basename(p) for p in removed] == [f".tmp-{dead.pid}-abc"]
    assert sorted(os.listdir(tmp_path)) == sorted(["1", f".tmp-{os.getpid()}-def"])
