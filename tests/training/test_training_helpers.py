"""Config flags, learning curves, strategies, synchronized batch norm."""

import argparse
import dataclasses
import os

import keras
import pytest

from kerasdl import plots, training
from kerasdl.tasks import command_line


@dataclasses.dataclass
class Config:
    epochs: int = 3
    learning_rate: float = 1e-3
    limit: int | None = None
    jit_compile: bool = False
    options: dict = dataclasses.field(default_factory=dict)


def parse(argv):
    parser = argparse.ArgumentParser()
    command_line.add_config_arguments(parser, Config())
    return command_line.config_from_args(Config(), parser.parse_args(argv))


def test_flags_follow_the_dataclass():
    assert parse([]) == Config()
    config = parse(
        [
            "--epochs",
            "7",
            "--learning-rate",
            "0.1",
            "--limit",
            "none",
            "--jit-compile",
            "--options",
            '{"a": 1}',
        ]
    )
    assert config == Config(7, 0.1, None, True, {"a": 1})
    assert parse(["--limit", "5", "--no-jit-compile"]).limit == 5


def test_read_history_keeps_the_last_row_of_a_replayed_epoch(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss,val_loss\n0,2.0,2.1\n1,1.5,1.6\n1,1.4,1.5\n2,1.0,1.2\n")
    history = plots.read_history(log)
    assert history["epoch"] == [1, 2, 3]
    assert history["loss"] == [2.0, 1.4, 1.0]
    png = plots.plot_learning_curves(history, tmp_path / "curves.png")
    assert os.path.getsize(png) > 1000


def test_unknown_strategy_and_missing_tf_config(monkeypatch):
    with pytest.raises(ValueError, match="Unknown strategy"):
        training.get_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        training.get_strategy("multiworker")
    assert training.is_chief(training.get_strategy("default"))


def test_synchronize_batch_norm_rebuilds_the_layers():
    from kerasdl.layers import BatchNormalization

    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 3)(inputs)
    x = BatchNormalization()(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    synced = training.synchronize_batch_norm(model)
    norms = [layer for layer in synced.layers if isinstance(layer, BatchNormalization)]
    assert norms and all(layer.synchronized for layer in norms)
    for a, b in zip(model.weights, synced.weights):
        assert (a.numpy() == b.numpy()).all()
