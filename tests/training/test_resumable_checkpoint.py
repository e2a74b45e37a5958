"""ResumableCheckpoint: round trip, torn writes, NaN epochs, pruning, completion."""

import os

import keras
import numpy as np
import pytest

from kerasdl.callbacks.resumable_checkpoint import ResumableCheckpoint


def compiled_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 3, 32)


def test_restore_puts_back_weights_optimizer_and_epoch(tmp_path):
    x, y = data()
    model = compiled_model()
    checkpoint = ResumableCheckpoint(tmp_path)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[checkpoint])
    assert [e for e, _ in checkpoint.checkpoints()] == [2, 3]  # keep=2

    fresh = compiled_model(seed=1)
    os.remove(tmp_path / "COMPLETED")  # Pretend the run was killed.
    assert ResumableCheckpoint(tmp_path).restore(fresh) == 3
    for a, b in zip(model.variables, fresh.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(fresh.optimizer.iterations.numpy()) == int(model.optimizer.iterations)


def test_completed_run_starts_afresh(tmp_path):
    x, y = data()
    model = compiled_model()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ResumableCheckpoint(tmp_path)])
    assert ResumableCheckpoint(tmp_path).restore(compiled_model()) == 0


def test_interrupted_write_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    x, y = data()
    model = compiled_model()
    checkpoint = ResumableCheckpoint(tmp_path)
    checkpoint.set_model(model)
    model.fit(x, y, epochs=1, verbose=0)
    checkpoint.write(1)

    def half_write(file, arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full / killed half-way")

    monkeypatch.setattr(ResumableCheckpoint, "_write_arrays", staticmethod(half_write))
    with pytest.raises(OSError, match="half-way"):
        checkpoint.write(2)
    assert sorted(os.listdir(tmp_path)) == ["epoch-00001.npz"]
    assert ResumableCheckpoint(tmp_path).restore(compiled_model()) == 1


def test_unreadable_newest_checkpoint_falls_back_to_older(tmp_path):
    x, y = data()
    model = compiled_model()
    checkpoint = ResumableCheckpoint(tmp_path)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[checkpoint])
    os.remove(tmp_path / "COMPLETED")
    with open(tmp_path / "epoch-00002.npz", "r+b") as f:
        f.truncate(100)  # e.g. a file system without atomic rename lost power.
    assert ResumableCheckpoint(tmp_path).restore(compiled_model()) == 1


def test_non_finite_epoch_is_not_saved(tmp_path):
    model = compiled_model()
    checkpoint = ResumableCheckpoint(tmp_path)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 0.5})
    checkpoint.on_epoch_end(1, {"loss": float("nan")})
    model.layers[1].kernel.assign(np.full((4, 8), np.inf, "float32"))
    checkpoint.on_epoch_end(2, {"loss": 0.4})
    assert [e for e, _ in checkpoint.checkpoints()] == [1]


def test_checkpoint_of_another_run_is_refused(tmp_path):
    model = compiled_model()
    checkpoint = ResumableCheckpoint(tmp_path, metadata={"model": "a"})
    checkpoint.set_model(model)
    checkpoint.write(1)
    with pytest.raises(ValueError, match="different run"):
        ResumableCheckpoint(tmp_path, metadata={"model": "b"}).restore(model)


def test_tracked_callback_state_survives(tmp_path):
    from kerasdl.callbacks.early_stopping import EarlyStopping

    x, y = data()
    model = compiled_model()
    stopper = EarlyStopping(monitor="loss", patience=50)
    checkpoint = ResumableCheckpoint(tmp_path, track_callbacks=[stopper])
    model.fit(x, y, epochs=2, verbose=0, callbacks=[stopper, checkpoint])
    os.remove(tmp_path / "COMPLETED")
    saved_best = stopper.best

    stopper2 = EarlyStopping(monitor="loss", patience=50)
    checkpoint2 = ResumableCheckpoint(tmp_path, track_callbacks=[stopper2])
    model2 = compiled_model()
    assert checkpoint2.restore(model2) == 2
    model2.fit(
        x, y, epochs=2, initial_epoch=2, verbose=0, callbacks=[stopper2, checkpoint2]
    )
    assert stopper2.best == saved_best  # Restored after EarlyStopping's own reset.


def test_keep_must_be_positive():
    with pytest.raises(ValueError, match="Received: keep=0"):
        ResumableCheckpoint("x", keep=0)
    for value in (1.5, "2", None):
        with pytest.raises(ValueError, match=f"Received: keep={value!r}"):
            ResumableCheckpoint("x", keep=value)
