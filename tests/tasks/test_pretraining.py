"""Pretraining a language model on other English before the book."""

import dataclasses
import json
import math

import keras
import numpy as np
import pytest

from kerasdl.tasks import language_modeling as task
from kerasdl.tasks import pretraining
from kerasdl.tasks.run_directory import RunDirectory

# 53 steps of 256 x 64 characters per pretraining epoch.
TINY = task.Config(
    model="lstm_lm",
    units=16,
    embedding_dim=8,
    sequence_length=64,
    batch_size=256,
    learning_rate=0.01,
    pretrain_epochs=1,
    verbose="0",
)


def _pretrain(workdir, config=TINY, restart=False):
    keras.utils.set_random_seed(0)
    data = task.load_data(config)
    model, _, _ = task.build_for_training(config, data)
    with RunDirectory(workdir, recipe="char_lstm", restart=restart) as run_dir:
        run_dir.check_resume(config)
        summary = pretraining.pretrain(model, config, data, run_dir)
    return model, summary


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    model, summary = _pretrain(workdir)
    return workdir, model, summary


def test_pretraining_learns_the_corpus_and_reports_it(pretrained):
    workdir, model, summary = pretrained
    assert summary["corpus"] == "tatoeba"
    assert summary["epochs_run"] == summary["best_epoch"] == 1
    assert 800_000 < summary["tokens"] < 1_000_000
    assert 0 < summary["unknown_fraction"] < 0.002
    # A uniform guess over the vocabulary costs log(77) = 4.34 nats.
    size = model.get_layer(index=0).input_dim
    assert summary["held_out_loss"] < math.log(size) - 1.0
    assert (workdir / "pretraining" / "checkpoints" / "final.npz").exists()
    assert json.loads((workdir / "run.json").read_text())["pretraining_started"]


def test_a_resumed_run_reuses_its_pretraining(pretrained, capsys):
    workdir, model, _ = pretrained
    again, summary = _pretrain(workdir)
    out = capsys.readouterr().out
    assert "finished earlier" in out and "training on the book from them" in out
    assert summary["seconds"] == 0.0
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_new_run_pretrains_afresh(tmp_path):
    _, first = _pretrain(tmp_path)
    RunDirectory(tmp_path, recipe="char_lstm").write_record(phase="published")
    _, second = _pretrain(tmp_path)  # opening a published workdir resets it
    assert second["seconds"] > 0
    assert second["held_out_loss"] == pytest.approx(first["held_out_loss"], rel=1e-3)


def test_pretraining_trains_the_plain_model_on_observed_tokens():
    config = pretraining.pretraining_config(
        task.Config(
            stateful=True,
            sampling="sequential",
            distill_from="runs/x",
            epochs=30,
            pretrain_epochs=4,
        )
    )
    assert (config.epochs, config.stateful, config.sampling) == (4, False, "random")
    assert config.distill_from is None


def test_the_command_line_refuses_negative_pretraining_epochs(tmp_path, capsys):
    from kerasdl.recipes import char_lstm

    status = char_lstm.main(
        ["--pretrain-epochs", "-1", "--workdir", str(tmp_path / "w")]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "--pretrain-epochs" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()


@pytest.mark.large  # a tiny model pretrained, then trained on the book: ~1.5 min
def test_a_pretrained_run_trains_exports_and_records_its_pretraining(tmp_path, capsys):
    from kerasdl.recipes import char_lstm

    argv = "--epochs 1 --units 16 --embedding-dim 8 --sequence-length 64"
    argv += " --batch-size 256 --pretrain-epochs 1 --verbose 0 --sample-length 5"
    argv = argv.split() + ["--workdir", str(tmp_path / "w")]
    argv += ["--output", str(tmp_path / "models")]
    assert char_lstm.main(argv) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "Pretraining on tatoeba" in out
    card_path = tmp_path / "models" / "char_lstm" / "1" / "assets.extra"
    card = json.loads((card_path / "model_card.json").read_text())
    assert card["config"]["pretrain_epochs"] == 1
    assert card["training"]["pretraining"]["epochs_run"] == 1
    assert card["training"]["epochs_run"] == 1


def test_char_lstm_pretrained_is_char_lstm_with_pretraining():
    from kerasdl.recipes import RECIPES, char_lstm

    recipe = RECIPES["char_lstm_pretrained"]
    assert (recipe.task, recipe.dataset) == ("language modeling", "timemachine")
    config = recipe.load().CONFIG
    assert config.pretrain_epochs > 0 and config.pretrain_corpus == "tatoeba"
    assert dataclasses.replace(config, pretrain_epochs=0) == char_lstm.CONFIG


def test_char_ensemble_pretrained_puts_the_pretrained_lstms_in_the_lstms_places():
    from kerasdl.recipes import RECIPES, char_ensemble

    recipe = RECIPES["char_ensemble_pretrained"]
    assert (recipe.task, recipe.dataset) == ("language modeling", "timemachine")
    members = recipe.load().CONFIG.members.split(",")
    before = char_ensemble.CONFIG.members.split(",")
    assert members == [
        f"{name}_pretrained" if "lstm" in name else name for name in before
    ]


def test_char_lstm_deep_pretrained_is_char_lstm_deep_with_pretraining():
    from kerasdl.recipes import RECIPES, char_lstm_deep

    config = RECIPES["char_lstm_deep_pretrained"].load().CONFIG
    assert config.pretrain_epochs > 0 and config.epochs <= char_lstm_deep.CONFIG.epochs
    unchanged = {"pretrain_epochs": 0, "epochs": char_lstm_deep.CONFIG.epochs}
    assert dataclasses.replace(config, **unchanged) == char_lstm_deep.CONFIG
