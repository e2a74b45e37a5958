"""Bad command lines: one stderr line naming the flag and the value, a status, no work.

Every case is a `kerasdl train ...` command line that must fail before anything is
trained or exported: exit status 2 (usage), exactly one line on stderr that names
the flag and the bad value, no traceback, no checkpoint in the workdir and no
version under the output directory. The cases run in-process through
`kerasdl.cli.main` (with `keras.Model.fit` replaced by a function that fails the
test, so a case that slipped through validation cannot train); a handful also run as
`python -m kerasdl` subprocesses to see what a terminal sees.

Placeholders in a case's flags: `{file}` an existing regular file, `{tmp}` the
test's temporary directory.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from kerasdl.tasks import exit_codes

USAGE = exit_codes.USAGE


@dataclasses.dataclass
class Case:
    id: str
    argv: list[str]  # After `kerasdl train`.
    expect: tuple[str, ...]  # Substrings of the one stderr line.
    status: int = USAGE
    setup: Callable | None = None  # setup(paths) before the run (see `_paths`).


def bad(recipe, flag, value, *expect, id=None):
    """`kerasdl train RECIPE FLAG VALUE`; the line must name FLAG and VALUE."""
    shown = expect or (flag, value)
    return Case(id or f"{recipe} {flag} {value!r}", [recipe, flag, value], shown)


# Workdir states ---------------------------------------------------------------------


def _lenet_record(**changes) -> dict:
    from kerasdl.recipes import lenet

    config = json.loads(json.dumps(dataclasses.asdict(lenet.CONFIG), default=str))
    return {"recipe": "lenet", "config": {**config, **changes}}


def _write_record(workdir, record) -> None:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "run.json"), "w") as f:
        json.dump(record, f)


def _run_with_other_settings(paths):
    _write_record(
        paths["workdir"], {**_lenet_record(learning_rate=0.1), "phase": "training"}
    )


def _corrupt_record(paths):
    os.makedirs(paths["workdir"])
    with open(os.path.join(paths["workdir"], "run.json"), "w") as f:
        f.write('{"phase": "trai')


def _fitted_after_ten_epochs(paths):
    workdir = paths["workdir"]
    record = _lenet_record()
    record.update(phase="fitted", fit={"epochs_run": 10, "early_stopped": False})
    _write_record(workdir, record)
    os.makedirs(os.path.join(workdir, "checkpoints"))
    # Only its presence matters: the epoch check comes before it is read.
    with open(os.path.join(workdir, "checkpoints", "final.npz"), "wb") as f:
        f.write(b"not read")


def _record_not_an_object(paths):
    _write_record(paths["workdir"], [])


def _export_directory_is_a_file(paths):
    os.makedirs(paths["output"])
    with open(os.path.join(paths["output"], "lenet"), "w") as f:
        f.write("not a directory")


def _read_only(paths):
    path = os.path.join(paths["tmp"], "read-only")
    os.makedirs(path)
    os.chmod(path, 0o500)


CASES = [
    # Epochs, batches, steps.
    bad("lenet", "--epochs", "0"),
    bad("lenet", "--epochs", "-3"),
    bad("lenet", "--epochs", "1e9"),
    bad("lenet", "--epochs", "abc"),
    bad("lenet", "--epochs", "100001"),
    bad("lenet", "--batch-size", "0"),
    bad("lenet", "--batch-size", "-1"),
    bad("lenet", "--batch-size", "99999999999"),
    bad("lenet", "--batch-size", "", "--batch-size", "''"),
    bad("lenet", "--steps-per-execution", "0"),
    Case(
        "lenet --steps-per-execution not dividing the epoch",
        ["lenet", "--limit", "200", "--steps-per-execution", "3"],
        ("--steps-per-execution 3", "batches per epoch (4)", "e.g. 2"),
    ),
    bad("lenet", "--early-stopping-patience", "-1"),
    bad("lenet", "--limit", "0"),
    Case("lenet --epochs (no value)", ["lenet", "--epochs"], ("--epochs", "argument")),
    # Seeds.
    bad("lenet", "--seed", "-1"),
    bad("lenet", "--seed", str(2**32)),
    bad("lenet", "--seed", "1.5"),
    # Optimizer.
    bad("lenet", "--learning-rate", "-1"),
    bad("lenet", "--learning-rate", "0"),
    bad("lenet", "--learning-rate", "nan"),
    bad("lenet", "--learning-rate", "inf"),
    bad("lenet", "--learning-rate", "100"),
    bad("lenet", "--momentum", "1.5"),
    bad("lenet", "--weight-decay", "-1"),
    bad("lenet", "--optimizer", "bogus"),
    bad("lenet", "--lr-schedule", "bogus"),
    # Model.
    bad("lenet", "--dropout", "1"),
    bad("lenet", "--dropout", "-0.1"),
    bad("lenet", "--dropout", "nan"),
    bad("lenet", "--normalization", "bogus"),
    bad("lenet", "--model", "bogus"),
    bad("lenet", "--model-options", "{not json"),
    bad("lenet", "--model-options", "[1, 2]"),
    bad("lenet", "--model-options", '{"bogus_kwarg": 1}'),
    # Run settings.
    bad("lenet", "--strategy", "bogus"),
    bad("lenet", "--verbose", "3"),
    Case(
        "lenet --deterministic=yes",
        ["lenet", "--deterministic=yes"],
        ("--deterministic", "'yes'"),
    ),
    # Paths.
    bad("lenet", "--output", "", "--output", "empty string"),
    bad("lenet", "--output", "{file}"),
    bad("lenet", "--output", "{file}/models", "--output", "{file}/models"),
    Case(
        "--output whose recipe directory is a file",
        ["lenet"],
        ("--output", "{output}/lenet", "is a file"),
        setup=_export_directory_is_a_file,
    ),
    bad("lenet", "--workdir", "", "--workdir", "empty string"),
    bad("lenet", "--workdir", "{file}"),
    bad("lenet", "--workdir", "{file}/run", "--workdir", "{file}/run"),
    bad("lenet", "--data-dir", "/nonexistent"),
    bad("lenet", "--data-dir", "{file}"),
    # Datasets.
    bad("lenet", "--dataset", "bogus"),
    bad("lenet", "--dataset", "", "--dataset", "''"),
    bad("lenet", "--dataset", "../digits"),
    bad("rnn_intent", "--dataset", "bogus"),
    bad("seq2seq_attention", "--dataset", "bogus"),
    # The command line itself.
    Case("unknown recipe", ["bogus"], ("recipe", "bogus")),
    Case("unknown flag", ["lenet", "--bogus", "1"], ("--bogus",)),
    Case("flag before the recipe", ["--epochs", "3"], ("recipe", "--epochs")),
    Case("no recipe", [], ("recipe",)),
    bad("rnn_intent", "--model", "transformer", "--model", "transformer"),
    # Text classification.
    bad("rnn_intent", "--max-tokens", "0"),
    bad("rnn_intent", "--max-tokens", "1"),
    bad("rnn_intent", "--sequence-length", "0"),
    bad("rnn_intent", "--cell", "bogus"),
    bad("transformer_intent", "--num-heads", "0"),
    bad("transformer_intent", "--num-heads", "3", "--hidden-dim 128"),
    bad("transformer_translate", "--num-heads", "5", "--hidden-dim 128"),
    bad("transformer_intent", "--label-smoothing", "1"),
    bad("transformer_intent", "--dropout", "1"),
    # Translation.
    bad("seq2seq_attention", "--beam-size", "0"),
    bad("seq2seq_attention", "--max-words", "0"),
    bad("seq2seq_attention", "--max-target-tokens", "0"),
    bad("seq2seq_attention", "--length-penalty-alpha", "-1"),
    bad("seq2seq_attention", "--warmup-steps", "-1"),
    bad("seq2seq_attention", "--test-limit", "0"),
    bad("seq2seq_attention", "--num-samples", "-1"),
    bad("transformer_translate", "--hidden-dim", "0"),
    # The workdir's state.
    Case(
        "workdir of a run with other settings",
        ["lenet"],
        ("{workdir}", "--learning-rate", "0.1", "--restart"),
        setup=_run_with_other_settings,
    ),
    Case(
        "workdir with a corrupt run.json",
        ["lenet"],
        ("{workdir}", "run.json", "--restart"),
        setup=_corrupt_record,
    ),
    Case(
        "workdir with a run.json that is not an object",
        ["lenet"],
        ("{workdir}", "run.json", "not a run record", "--restart"),
        setup=_record_not_an_object,
    ),
    Case(
        "fewer epochs than the workdir trained",
        ["lenet", "--epochs", "5"],
        ("--epochs 5", "10 epochs", "{workdir}"),
        setup=_fitted_after_ten_epochs,
    ),
]

READ_ONLY_CASES = [
    Case(
        "read-only --output",
        ["lenet", "--output", "{tmp}/read-only"],
        ("--output", "{tmp}/read-only"),
        setup=_read_only,
    ),
    Case(
        "read-only --workdir",
        ["lenet", "--workdir", "{tmp}/read-only"],
        ("--workdir", "{tmp}/read-only"),
        setup=_read_only,
    ),
]


def _params(cases):
    return [pytest.param(case, id=case.id) for case in cases]


# Running a case ---------------------------------------------------------------------


@pytest.fixture
def no_training(monkeypatch):
    """`keras.Model.fit` fails the test: a bad command line must never train."""
    import keras

    def fit(*args, **kwargs):
        pytest.fail("training started")

    monkeypatch.setattr(keras.Model, "fit", fit)


@contextlib.contextmanager
def _terminal_logging():
    """What `configure_logging` does outside pytest: INFO records on stderr."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)  # capsys' stderr, at this point.
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _paths(tmp_path):
    file = tmp_path / "a-file"
    file.write_text("not a directory")
    return {
        "tmp": str(tmp_path),
        "file": str(file),
        "workdir": str(tmp_path / "run"),
        "output": str(tmp_path / "models"),
    }


def _fill(texts, paths):
    """`texts` with `{file}`, `{tmp}`... replaced (JSON values keep their braces)."""
    filled = []
    for text in texts:
        for name, path in paths.items():
            text = text.replace("{" + name + "}", path)
        filled.append(text)
    return filled


def _train(case, tmp_path, capsys):
    """Runs `kerasdl train` in-process; returns (status, stdout, stderr, paths)."""
    from kerasdl.cli import main

    paths = _paths(tmp_path)
    if case.setup:
        case.setup(paths)
    argv = _fill(case.argv, paths)
    if argv:  # The case's own --workdir / --output come later and win.
        argv[1:1] = ["--workdir", paths["workdir"], "--output", paths["output"]]
    capsys.readouterr()
    with _terminal_logging():
        try:
            status = main(["train", *argv])
        except SystemExit as exit_:  # argparse's errors exit.
            status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err, paths


def _assert_nothing_done(paths, preexisting=()):
    checkpoints = os.path.join(paths["workdir"], "checkpoints")
    if os.path.isdir(checkpoints):
        made = set(os.listdir(checkpoints)) - set(preexisting)
        assert not made, f"checkpoints were written: {sorted(made)}"
    exported = [
        root
        for root, _, files in os.walk(paths["tmp"])
        if "saved_model.pb" in files or "model_card.json" in files
    ]
    assert not exported, f"something was exported: {exported}"


def _assert_one_line(case, status, err, paths):
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{err}"
    assert status == case.status, err
    for text in _fill(case.expect, paths):
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_command_line_fails_with_one_line(case, tmp_path, capsys, no_training):
    status, out, err, paths = _train(case, tmp_path, capsys)

    _assert_one_line(case, status, err, paths)
    assert "Traceback" not in out
    preexisting = ("final.npz",) if case.setup is _fitted_after_ten_epochs else ()
    _assert_nothing_done(paths, preexisting)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("case", _params(READ_ONLY_CASES))
def test_unwritable_directory_fails_with_one_line(case, tmp_path, capsys, no_training):
    try:
        status, _, err, paths = _train(case, tmp_path, capsys)
    finally:
        os.chmod(tmp_path / "read-only", 0o700)

    _assert_one_line(case, status, err, paths)
    _assert_nothing_done(paths)


def test_workdir_locked_by_a_live_process_is_refused(tmp_path, capsys, no_training):
    workdir = tmp_path / "run"
    workdir.mkdir()
    case = Case(
        "locked workdir",
        ["lenet"],
        ("{workdir}", f"pid {os.getpid()}", "--workdir"),
    )
    with open(workdir / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        status, _, err, paths = _train(case, tmp_path, capsys)
        with open(workdir / ".lock") as f:
            assert f.read().strip() == str(os.getpid())  # The holder's pid is kept.

    _assert_one_line(case, status, err, paths)
    _assert_nothing_done(paths)
    assert sorted(os.listdir(workdir)) == [".lock"]


def test_the_table_is_large_enough():
    assert len(CASES) + len(READ_ONLY_CASES) + 1 >= 45


# What a terminal sees ---------------------------------------------------------------

SUBPROCESS_CASES = {
    "argparse": (["lenet", "--epochs", "abc"], ("--epochs", "abc")),
    "validation": (["lenet", "--learning-rate", "nan"], ("--learning-rate", "nan")),
    "recipe": (["bogus"], ("recipe", "bogus")),
}


@pytest.fixture(scope="module")
def terminal(tmp_path_factory):
    """`python -m kerasdl train ...` of every SUBPROCESS_CASES entry, in parallel."""
    tmp = tmp_path_factory.mktemp("terminal")

    def run(name):
        argv, _ = SUBPROCESS_CASES[name]
        if argv and argv[0] != "bogus":
            argv = [*argv, "--workdir", str(tmp / name), "--output", str(tmp / "out")]
        return subprocess.run(  # noqa: PLW1510 -- the status is asserted
            [sys.executable, "-m", "kerasdl", "train", *argv],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=240,
        )

    with concurrent.futures.ThreadPoolExecutor(len(SUBPROCESS_CASES)) as pool:
        results = dict(zip(SUBPROCESS_CASES, pool.map(run, SUBPROCESS_CASES)))
    return tmp, results


@pytest.mark.parametrize("name", sorted(SUBPROCESS_CASES))
def test_terminal_shows_one_line_and_no_traceback(terminal, name):
    tmp, results = terminal
    result = results[name]
    _, expect = SUBPROCESS_CASES[name]
    lines = result.stderr.splitlines()  # TensorFlow's start-up lines included.

    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == USAGE, result.stderr
    assert len(lines) == 1, result.stderr
    for text in expect:
        assert text in lines[0]
    assert not os.path.exists(tmp / "out")
    assert not os.path.exists(tmp / name / "checkpoints")
