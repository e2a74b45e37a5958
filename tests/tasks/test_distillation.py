"""Knowledge distillation of language models: the teacher, its soft targets, a run."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasdl.callbacks.resumable_checkpoint import ResumableCheckpoint
from kerasdl.data import load_language_modeling_dataset, soft_target_batches
from kerasdl.tasks import distillation
from kerasdl.tasks import language_modeling as task
from kerasdl.tasks.exit_codes import UsageError
from kerasdl.tasks.run_directory import RunDirectory

TINY_RNN = task.Config(
    model="lstm_lm", units=8, embedding_dim=4, sequence_length=16, batch_size=64
)
TINY_TRANSFORMER = task.Config(
    model="transformer_lm",
    num_layers=1,
    num_heads=2,
    hidden_dim=8,
    intermediate_dim=16,
    sequence_length=16,
    batch_size=64,
)


def _publish(workdir, config, recipe):
    """A published run of `config` in `workdir`: its (untrained) weights
    written as the final checkpoint and its record, as a finished run leaves
    them. Returns the model."""
    keras.utils.set_random_seed(0)
    model = task.build_model(config, task.load_data(config), name=recipe)
    task.build(model)
    run_dir = RunDirectory(workdir, recipe=recipe)
    checkpoint = ResumableCheckpoint(run_dir.checkpoints)
    checkpoint.set_model(model)
    checkpoint.write(1, name="final.npz")
    assert run_dir.final_checkpoint.endswith("final.npz")
    run_dir.write_record(
        recipe=recipe, config=dataclasses.asdict(config), phase="published"
    )
    return model


def _publish_ensemble(workdir, members):
    for recipe, config in members.items():
        _publish(workdir / recipe, config, recipe)
    RunDirectory(workdir, recipe="char_ensemble").write_record(
        recipe="char_ensemble",
        config={"members": ",".join(members), "dataset": "timemachine"},
        phase="published",
    )


@pytest.mark.parametrize("sampling", ["random", "sequential"])
def test_soft_targets_mix_the_teacher_into_the_very_windows_of_the_training_data(
    sampling,
):
    data = load_language_modeling_dataset(
        sequence_length=16, batch_size=8, sampling=sampling, seed=3
    )
    size = data.vocabulary.size
    # A teacher that always predicts the token after the observed one (mod size):
    # its share of every target is then visible, position by position.
    shifted = (data.train_ids[1:] + 1) % size
    teacher = np.eye(size, dtype="float32")[shifted]
    soft = soft_target_batches(data, teacher, 0.25, seed=3)
    assert soft.cardinality() == data.train.cardinality()
    for (x, y), (inputs, targets) in zip(data.train.take(3), soft.take(3)):
        np.testing.assert_array_equal(inputs, x)
        expected = 0.25 * tf.one_hot((y + 1) % size, size) + 0.75 * tf.one_hot(y, size)
        np.testing.assert_allclose(targets, expected, atol=1e-7)
        assert targets.dtype == tf.float32


def test_soft_targets_refuse_a_teacher_of_another_shape_or_weight():
    data = load_language_modeling_dataset(sequence_length=16, batch_size=8)
    size = data.vocabulary.size
    with pytest.raises(ValueError, match=r"must have shape \(len\(train_ids\) - 1"):
        soft_target_batches(data, np.zeros((10, size), "float32"), 0.5)
    teacher = np.zeros((len(data.train_ids) - 1, size), "float32")
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\]"):
        soft_target_batches(data, teacher, 1.5)


def test_an_ensembles_workdir_teaches_its_members_averaged_probabilities(tmp_path):
    members = {"char_lstm": TINY_RNN, "char_transformer": TINY_TRANSFORMER}
    _publish_ensemble(tmp_path / "teacher", members)
    student = dataclasses.replace(
        TINY_RNN, distill_from=str(tmp_path / "teacher"), distillation_weight=0.6
    )
    distillation.check_teacher(student, tmp_path / "student")
    data = task.load_data(student)
    distilled = distillation.with_soft_targets(data, student)

    expected = np.mean(
        [
            np.exp(
                task.token_log_probabilities(
                    model, data.train_ids, chunk_length=config.sequence_length
                )
            )
            for model, config in distillation.load_teacher(tmp_path / "teacher")
        ],
        axis=0,
    )
    reference = soft_target_batches(data, expected, 0.6, seed=student.seed)
    for (x, y), (inputs, targets) in zip(reference.take(2), distilled.train.take(2)):
        np.testing.assert_array_equal(inputs, x)
        np.testing.assert_allclose(targets, y, atol=1e-6)
    (x, y), (inputs, targets) = next(zip(data.validation, distilled.validation))
    np.testing.assert_array_equal(inputs, x)  # Validation keeps observed tokens.
    np.testing.assert_array_equal(targets, tf.one_hot(y, data.vocabulary.size))


def test_distilling_compiles_a_cross_entropy_over_distributions():
    config = dataclasses.replace(TINY_RNN, distill_from="teacher")
    model = task.build_model(config, task.load_data(config))
    task.compile_model(model, config, steps_per_epoch=1)
    assert isinstance(model.loss, keras.losses.CategoricalCrossentropy)
    task.compile_model(model, TINY_RNN, steps_per_epoch=1)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)


def test_teachers_that_cannot_teach_are_refused_in_one_line(tmp_path):
    def refused(path, workdir=None, **overrides):
        config = dataclasses.replace(TINY_RNN, distill_from=str(path), **overrides)
        with pytest.raises(UsageError) as error:
            distillation.check_teacher(config, workdir)
        message = str(error.value)
        assert "\n" not in message
        return message

    assert "does not exist" in refused(tmp_path / "nowhere")
    (tmp_path / "file").write_text("")
    assert "is a file" in refused(tmp_path / "file")

    _publish(tmp_path / "lstm", TINY_RNN, "char_lstm")
    assert "own --workdir" in refused(tmp_path / "lstm", workdir=tmp_path / "lstm")
    assert "share one vocabulary" in refused(tmp_path / "lstm", level="word")
    assert "share one vocabulary" in refused(tmp_path / "lstm", max_vocabulary_size=40)

    (tmp_path / "unfinished").mkdir()
    unfinished = RunDirectory(tmp_path / "unfinished", recipe="char_lstm")
    unfinished.write_record(
        recipe="char_lstm", config=dataclasses.asdict(TINY_RNN), phase="training"
    )
    assert "holds no finished run (phase: training)" in refused(tmp_path / "unfinished")

    (tmp_path / "lenet").mkdir()
    other = RunDirectory(tmp_path / "lenet", recipe="lenet")
    other.write_record(recipe="lenet", config={"model": "lenet"}, phase="published")
    assert "holds a lenet run, not a language model's" in refused(tmp_path / "lenet")

    _publish(tmp_path / "lost", TINY_RNN, "char_lstm")
    (tmp_path / "lost" / "checkpoints" / "final.npz").unlink()
    assert "has lost its final weights" in refused(tmp_path / "lost")

    # An ensemble is checked member by member.
    _publish_ensemble(tmp_path / "ensemble", {"char_lstm": TINY_RNN})
    (tmp_path / "ensemble" / "char_lstm" / "checkpoints" / "final.npz").unlink()
    message = refused(tmp_path / "ensemble")
    assert "ensemble/char_lstm has lost its final weights" in message


def test_a_teachers_unreadable_final_weights_are_one_clear_error(tmp_path):
    _publish(tmp_path / "lstm", TINY_RNN, "char_lstm")
    (tmp_path / "lstm" / "checkpoints" / "final.npz").write_bytes(b"garbage")
    with pytest.raises(UsageError, match="final.npz is unreadable.*train that run"):
        distillation.load_teacher(tmp_path / "lstm")


def test_the_command_line_refuses_a_missing_teacher_before_any_work(tmp_path, capsys):
    from kerasdl.recipes import char_lstm

    status = char_lstm.main(
        ["--distill-from", str(tmp_path / "nowhere"), "--workdir", str(tmp_path / "s")]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "--distill-from" in err and "does not exist" in err
    assert "Traceback" not in err
    assert not (tmp_path / "s").exists()


@pytest.mark.large  # a tiny teacher and a tiny student over the whole book: ~2 min
def test_a_student_trains_on_a_published_teacher_and_exports(tmp_path, capsys):
    from kerasdl.recipes import char_gru, char_lstm

    tiny = "--epochs 1 --batch-size 128 --learning-rate 0.01 --embedding-dim 4"
    tiny += " --ema-momentum 0 --verbose 0 --sample-length 5 --ngram-order 3"
    models = tmp_path / "models"
    teacher = tmp_path / "teacher"
    argv = tiny.split() + ["--units", "8", "--workdir", str(teacher)]
    assert char_lstm.main(argv + ["--output", str(models)]) == 0, capsys.readouterr()
    argv = tiny.split() + ["--units", "16", "--distill-from", str(teacher)]
    argv += ["--workdir", str(tmp_path / "student"), "--output", str(models)]
    assert char_gru.main(argv) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert f"Model exported to: {models / 'char_gru' / '1'}" in out
    card_path = models / "char_gru" / "1" / "assets.extra" / "model_card.json"
    card = json.loads(card_path.read_text())
    assert card["config"]["distill_from"] == str(teacher)
    assert card["config"]["distillation_weight"] == 0.5
    size = card["dataset"]["vocabulary_size"]
    assert 1.0 < card["metrics"]["validation_perplexity"] < size / 2


def test_char_distilled_is_char_lstm_taught_by_char_ensembles_default_run():
    from kerasdl.recipes import RECIPES, char_lstm

    recipe = RECIPES["char_distilled"]
    assert (recipe.task, recipe.dataset) == ("language modeling", "timemachine")
    config = recipe.load().CONFIG
    assert config.distill_from == os.path.join("runs", "char_ensemble", "timemachine")
    assert 0 < config.distillation_weight < 1
    unchanged = ("model", "units", "num_layers", "dropout", "sequence_length")
    for name in unchanged:
        assert getattr(config, name) == getattr(char_lstm.CONFIG, name)


def test_char_distilled_without_its_teacher_says_how_to_train_it(
    tmp_path, capsys, monkeypatch
):
    from kerasdl.recipes import char_distilled

    monkeypatch.chdir(tmp_path)
    assert char_distilled.main(["--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "runs/char_ensemble/timemachine does not exist" in err
    assert "kerasdl train char_ensemble" in err
    assert not (tmp_path / "runs" / "char_distilled").exists()
