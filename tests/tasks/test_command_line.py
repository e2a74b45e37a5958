"""run_recipe: flags from a config dataclass, one run, an exit status."""

from __future__ import annotations

import dataclasses
import os
import types

import pytest

from kerasdl.tasks import exit_codes
from kerasdl.tasks.command_line import run_recipe
from kerasdl.tasks.fit import fit_verbose


@dataclasses.dataclass(frozen=True)
class Config:
    model: str = "tiny"
    dataset: str = "digits"
    epochs: int = 3
    learning_rate: float = 1e-3
    augment: bool = False
    limit: int | None = None
    data_dir: str | None = None


CONFIG = Config()


def _main(outcome=None, skip=(), description=None):
    """A main over a task whose `run` records its arguments and returns/raises `outcome`."""
    calls, reports = [], []

    def run(config, workdir, *, recipe, restart):
        calls.append((config, workdir, recipe))
        if isinstance(outcome, BaseException):
            raise outcome
        return {"accuracy": 0.5, "epochs": config.epochs}

    task = types.SimpleNamespace(run=run, report=reports.append, FIXED_FIELDS=skip)
    if description:
        task.DESCRIPTION = description

    def main(defaults, argv=None, *, recipe, prog=None):
        return run_recipe(task, defaults, argv, recipe=recipe, prog=prog)

    return main, calls, reports


def test_flags_override_the_recipe_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main, calls, reports = _main(skip=("model",))

    status = main(
        CONFIG,
        ["--epochs", "7", "--learning-rate", "0.01", "--augment"],
        recipe="tiny_recipe",
    )

    assert status == exit_codes.OK
    ((config, workdir, recipe),) = calls
    assert config == Config(epochs=7, learning_rate=0.01, augment=True)
    assert recipe == "tiny_recipe"
    assert workdir == os.path.join("runs", "tiny_recipe", "digits")
    assert reports == [{"accuracy": 0.5, "epochs": 7}]


def test_workdir_flag_is_used(tmp_path):
    main, calls, _ = _main()

    assert main(CONFIG, ["--workdir", str(tmp_path / "w")], recipe="r") == 0
    assert calls[0][1] == str(tmp_path / "w")


def test_skipped_field_has_no_flag(capsys):
    main, calls, _ = _main(skip=("model",))

    with pytest.raises(SystemExit) as exit_info:
        main(CONFIG, ["--model", "other"], recipe="r", prog="kerasdl train r")

    assert exit_info.value.code == exit_codes.USAGE
    assert "kerasdl train r: error: unrecognized arguments: --model other" in (
        capsys.readouterr().err
    )
    assert calls == []


def test_bad_flag_value_is_a_one_line_usage_error(capsys):
    main, calls, _ = _main()

    with pytest.raises(SystemExit) as exit_info:
        main(CONFIG, ["--epochs", "many"], recipe="r")

    assert exit_info.value.code == exit_codes.USAGE
    err = capsys.readouterr().err
    assert (
        "python -m kerasdl.recipes.r: error: argument --epochs: invalid int value: 'many'"
        in err
    )
    assert "Traceback" not in err
    assert calls == []


def test_optional_fields_take_none_and_refuse_an_empty_value(capsys):
    main, calls, _ = _main()

    assert main(CONFIG, ["--limit", "5", "--data-dir", "none"], recipe="r") == 0
    assert (calls[0][0].limit, calls[0][0].data_dir) == (5, None)
    for flag, message in (
        ("--limit", "empty value (give one, or 'none')"),
        ("--data-dir", "empty value (give one, or 'none')"),
        ("--epochs", "invalid int value: ''"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(CONFIG, [flag, ""], recipe="r")
        assert exit_info.value.code == exit_codes.USAGE
        err = capsys.readouterr().err
        assert f"error: argument {flag}: {message}" in err, err
    assert len(calls) == 1


def test_help_shows_this_recipes_defaults(capsys):
    main, _, _ = _main(description="Train {recipe}, quickly.")

    with pytest.raises(SystemExit) as exit_info:
        main(Config(epochs=11), ["--help"], recipe="fast")

    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "Train fast, quickly." in out
    assert "--epochs" in out and "11" in out
    assert "runs/fast/<dataset>" in out


@pytest.mark.parametrize(
    "error, status",
    [
        (exit_codes.UsageError("unknown dataset 'x'"), exit_codes.USAGE),
        (RuntimeError("boom"), exit_codes.ERROR),
    ],
)
def test_failures_map_to_exit_statuses(error, status, capsys):
    main, _, reports = _main(error)

    assert main(CONFIG, [], recipe="r") == status
    assert reports == []
    if status == exit_codes.USAGE:
        assert "error: unknown dataset 'x'" in capsys.readouterr().err


def test_a_tensorflow_full_disk_error_names_the_file_once(capsys):
    # TensorFlow's writers end the file name with a ';' before the reason.
    error = RuntimeError("/m/1/variables.data-00000-of-00001; No space left on device")
    main, _, _ = _main(error)

    assert main(CONFIG, [], recipe="r") == exit_codes.NO_SPACE
    err = capsys.readouterr().err
    assert "while writing /m/1/variables.data-00000-of-00001; everything" in err


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("0", 0), ("2", 2)])
def test_fit_verbose(value, expected):
    assert fit_verbose(value) == expected
