"""The studies' shared parts: tidy results, verdicts, the summary, the command."""

import csv
import math

import pytest

from kerasdl import cli
from kerasdl.studies import STUDIES, get_study
from kerasdl.studies.framework import (
    DOES_NOT_HOLD,
    HOLDS,
    PARTLY,
    Claim,
    Report,
    Results,
    Verdict,
    format_number,
    measured,
    verdict,
    write_report,
)

CLAIM = Claim("k", "002_63dcdd9d2821722c.txt", "梯度消失", "gradients vanish")


def test_results_are_tidy_rows_and_read_back():
    results = Results()
    results.add("accuracy", 0.9, activation="relu", depth=5)
    results.add("accuracy", 0.1, activation="sigmoid", depth=5)
    results.add("ratio", 1e-7, activation="sigmoid", depth=5)
    assert results.value("accuracy", activation="sigmoid") == 0.1
    assert results.values("accuracy", by="activation") == {"relu": 0.9, "sigmoid": 0.1}
    with pytest.raises(KeyError, match="2 rows"):
        results.value("accuracy", depth=5)


def test_get_is_nan_for_what_a_run_did_not_measure_and_measured_names_figures():
    results = Results()
    results.add("accuracy", 0.9, activation="relu", depth=5)
    results.add("accuracy", 0.1, activation="relu", depth=10)
    assert results.get("accuracy", depth=10) == 0.1
    assert math.isnan(results.get("accuracy", activation="gelu"))  # not measured
    assert math.isnan(results.get("accuracy", activation="relu"))  # not one row
    assert (
        measured({"ReLU": 0.91234, "sigmoid": 1.5e-7}) == "ReLU 0.912, sigmoid 1.50e-07"
    )


def test_write_report_writes_csv_and_a_summary_quoting_each_claim(tmp_path):
    results = Results()
    results.add("accuracy", 0.5, depth=2)
    report = Report(
        results,
        [Verdict(CLAIM, PARTLY, "ratio 0.3", "partly if ratio < 0.5", "g.png")],
        figures=["g.png"],
        notes="Reduced sizes.",
    )
    paths = write_report(
        report,
        tmp_path,
        name="demo",
        title="Demo",
        seconds=1.2,
        quick=True,
        command="kerasdl study demo --quick",
    )
    with open(paths["results"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"depth": "2", "metric": "accuracy", "value": "0.5"}]
    assert Results.read_csv(paths["results"]).value("accuracy", depth=2) == 0.5
    summary = (tmp_path / "summary.md").read_text()
    assert "> 梯度消失" in summary and "`002_63dcdd9d2821722c.txt`" in summary
    assert "**partly**" in summary and "![k](g.png)" in summary
    assert "kerasdl study demo --quick" in summary


def test_verdicts_are_one_of_three():
    assert verdict(True) == HOLDS
    assert verdict(False, partly=True) == PARTLY
    assert verdict(False) == DOES_NOT_HOLD
    with pytest.raises(ValueError, match="verdict must be one of"):
        Verdict(CLAIM, "maybe", "", "")
    assert format_number(3.2e-7) == "3.20e-07"
    assert format_number(0.98123) == "0.981"


def test_the_registry_has_the_seven_studies():
    assert set(STUDIES) >= {
        "activations",
        "initialization",
        "normalization",
        "degradation",
        "regularization",
        "capacity",
        "distribution_shift",
    }
    with pytest.raises(ValueError, match="unknown study 'nope'"):
        get_study("nope")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["study", "nope"], "unknown study 'nope'"),
        (["study", "list", "extra"], "takes no arguments"),
        (["study"], None),
    ],
)
def test_study_usage_errors_exit_2_in_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr()
    if message:
        assert message in err.err
        assert len(err.err.strip().splitlines()) == 1
