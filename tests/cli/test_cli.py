"""`kerasdl` command line: list, error paths (one line, no traceback), serve delegation."""

import os
import subprocess
import sys

import pytest

from kerasdl import cli
from kerasdl.recipes import RECIPES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_list_prints_every_recipe_with_dataset_and_target(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for recipe in RECIPES.values():
        line = next(
            line for line in out.splitlines() if line.startswith(recipe.name + " ")
        )
        assert recipe.dataset in line
        if recipe.target is None:
            assert "not tuned yet" in line
        elif recipe.metric == "bleu":
            assert f"BLEU >= {recipe.target:g}" in line
        elif recipe.metric == "perplexity":
            assert f"validation perplexity <= {recipe.target:g}" in line
        else:
            assert f"accuracy >= {recipe.target:.0%}" in line


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "no-such-recipe"], "Unknown recipe 'no-such-recipe'"),
        (
            ["train", "lenet", "--no-such-flag"],
            "unrecognized arguments: --no-such-flag",
        ),
        (["train", "lenet", "--epochs", "many"], "invalid int value: 'many'"),
        (["train", "lenet", "--strategy", "tpu"], "invalid choice: 'tpu'"),
        (["train", "--epochs", "3"], "expected a recipe name"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["list", "extra"], "list takes no arguments"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, capsys):
    try:
        status = cli.main(argv)
    except SystemExit as exit:  # argparse exits from inside parse_args.
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1


def test_unknown_dataset_exits_2(tmp_path, capsys):
    status = cli.main(
        [
            "train",
            "lenet",
            "--dataset",
            "no-such-data",
            "--workdir",
            str(tmp_path / "w"),
            "--output",
            str(tmp_path / "m"),
        ]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert "no-such-data" in err and "Traceback" not in err


def test_missing_tfds_dataset_exits_4_with_advice(tmp_path, capsys):
    (tmp_path / "empty").mkdir()  # A data directory without the dataset.
    status = cli.main(
        [
            "train",
            "lenet",
            "--dataset",
            "mnist",
            "--data-dir",
            str(tmp_path / "empty"),
            "--workdir",
            str(tmp_path / "w"),
            "--output",
            str(tmp_path / "m"),
        ]
    )
    assert status == 4
    err = capsys.readouterr().err
    assert "mnist" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_python_m_kerasdl_unknown_recipe_has_no_traceback():
    result = subprocess.run(  # noqa: PLW1510 -- the status is asserted
        [sys.executable, "-m", "kerasdl", "train", "nope"],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("kerasdl: error: Unknown")


def test_serve_delegates_to_kerasdl_serving(monkeypatch):
    import kerasdl.serving

    seen = {}

    def add_serve_arguments(parser):
        parser.add_argument("--port", type=int, default=8501)

    def run_from_args(args):
        seen["port"] = args.port
        return 0

    monkeypatch.setattr(
        kerasdl.serving, "add_serve_arguments", add_serve_arguments, raising=False
    )
    monkeypatch.setattr(kerasdl.serving, "run_from_args", run_from_args, raising=False)
    assert cli.main(["serve", "--port", "9000"]) == 0
    assert seen == {"port": 9000}
