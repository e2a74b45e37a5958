"""The language-model ensemble task: members, checks, averaged cross-entropy, a run."""

import json
import math

import numpy as np
import pytest

from kerasdl.recipes import RECIPES
from kerasdl.tasks import language_model_ensemble as task
from kerasdl.tasks.exit_codes import UsageError


def test_recipe_is_registered_and_its_members_are_single_models():
    recipe = RECIPES["char_ensemble"]
    assert (recipe.task, recipe.dataset, recipe.metric) == (
        "language modeling",
        "timemachine",
        "perplexity",
    )
    config = recipe.load().CONFIG
    names = task.member_names(config)
    assert len(names) >= 2 and "char_transformer" in names
    for name in names:
        member = task.member_config(config, name, "w")
        assert member.output.endswith(f"{name}/saved_models")
        assert member == RECIPES[name].load().CONFIG.__class__(
            **{**vars(RECIPES[name].load().CONFIG), "output": member.output}
        )


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--members", "char_lstm", "at least two"),
        ("--members", "char_lstm,char_lstm", "more than once"),
        ("--members", "char_lstm,lenet", "'lenet' is not a language-model recipe"),
        ("--members", "char_lstm,char_ensemble", "'char_ensemble' is not a language"),
        ("--member-flags", '{"model": "gru_lm"}', "'model' is not a member setting"),
        ("--member-flags", '{"output": "x"}', "'output' is not a member setting"),
        ("--member-flags", '{"unitz": 3}', "'unitz' is not a member setting"),
        ("--member-flags", '{"units": 0}',
         "--member-flags, member char_lstm_deep: --units must be"),
    ],
)  # fmt: skip
def test_bad_members_and_member_flags_are_refused_in_one_line(
    tmp_path, capsys, flag, value, message
):
    from kerasdl.recipes import char_ensemble

    status = char_ensemble.main([flag, value, "--workdir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()  # Refused before anything started.


def test_member_flags_must_be_an_object():
    config = task.LanguageModelEnsembleConfig(member_flags=[1])
    with pytest.raises(UsageError, match="must be a JSON object"):
        task.check_config(config)


def test_averaged_cross_entropy_is_that_of_the_mean_probability():
    p = np.array([[0.5, 0.1, 0.9], [0.25, 0.3, 0.1]])  # two members, 3 tokens
    losses = -np.log(p)
    mixed = task.average_cross_entropies(losses)
    np.testing.assert_allclose(mixed, -np.log(p.mean(axis=0)))
    np.testing.assert_allclose(task.average_cross_entropies([losses[0]] * 3), losses[0])
    assert mixed.mean() <= losses.mean()  # Jensen: never worse than the mean member.


@pytest.mark.large  # two tiny members and the ensemble, each evaluated and exported
def test_ensemble_trains_its_members_then_reuses_them(tmp_path, capsys):
    import tensorflow as tf

    from kerasdl.recipes import char_ensemble

    tiny = {"epochs": 1, "units": 8, "embedding_dim": 4, "batch_size": 128}
    tiny.update(sample_length=5, ngram_order=3)
    argv = ["--members", "char_lstm,char_gru", "--member-flags", json.dumps(tiny)]
    argv += ["--sample-length", "5", "--ngram-order", "3", "--verbose", "0"]
    argv += ["--workdir", str(tmp_path / "run"), "--output", str(tmp_path / "models")]
    assert char_ensemble.main(argv) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    export_dir = tmp_path / "models" / "char_ensemble" / "1"
    assert f"Model exported to: {export_dir}" in out
    card = json.loads((export_dir / "assets.extra" / "model_card.json").read_text())
    metrics = card["metrics"]
    members = metrics["members"]
    assert set(members) == {"char_lstm", "char_gru"}
    assert metrics["validation_cross_entropy"] * 0.999 <= np.mean(
        [math.log(m["validation_perplexity"]) for m in members.values()]
    )
    for name in members:  # Each member published its own export in the workdir.
        assert (tmp_path / "run" / name / "saved_models" / name / "1").is_dir()
    assert [m["reused_published_run"] for m in card["training"]["members"]] == [
        False,
        False,
    ]

    loaded = tf.saved_model.load(str(export_dir))
    scored = loaded.signatures["score"](text=tf.constant(["The Time Traveller"]))
    assert int(scored["num_predicted"][0]) == len("The Time Traveller") - 1
    assert float(scored["negative_log_likelihood"][0]) > 0

    assert char_ensemble.main(argv) == 0  # Reuses both members: no new exports.
    capsys.readouterr()
    again = tmp_path / "models" / "char_ensemble" / "2"
    card = json.loads((again / "assets.extra" / "model_card.json").read_text())
    assert [m["reused_published_run"] for m in card["training"]["members"]] == [
        True,
        True,
    ]
    assert card["metrics"]["validation_perplexity"] == pytest.approx(
        metrics["validation_perplexity"], rel=1e-6
    )
    for name in members:
        assert not (tmp_path / "run" / name / "saved_models" / name / "2").exists()
