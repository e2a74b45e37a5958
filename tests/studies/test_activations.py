"""The activations study: the quick run writes its files; the verdict rules."""

import csv
import pathlib

import pytest

from kerasdl import cli
from kerasdl.studies import activations
from kerasdl.studies.framework import DOES_NOT_HOLD, HOLDS, PARTLY, Results

SEEDS = pathlib.Path(__file__).resolve().parents[3] / "shared" / "seeds"
DEPTHS = (2, 5, 10, 20)


def test_quick_run_writes_results_summary_and_figures(tmp_path):
    assert cli.main(["study", "activations", "--quick", "--output", str(tmp_path)]) == 0

    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["metric"] for row in rows} >= {
        "gradient_norm",
        "gradient_ratio",
        "saturated_fraction",
        "dead_fraction",
        "train_accuracy",
        "test_accuracy",
    }
    assert {row["activation"] for row in rows} == set(activations.QUICK.activations)
    summary = (tmp_path / "summary.md").read_text()
    for claim in activations.CLAIMS:
        assert f"> {claim.quote}" in summary
    assert summary.count("**Verdict: ") == len(activations.CLAIMS)
    for figure in (
        activations.FIGURE_NORMS,
        activations.FIGURE_RATIO,
        activations.FIGURE_ACCURACY,
    ):
        assert (tmp_path / figure).stat().st_size > 0


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed articles are not here")
def test_quotes_are_verbatim_from_the_articles():
    for claim in activations.CLAIMS:
        text = (SEEDS / claim.article).read_text()
        for fragment in claim.quote.split(" … "):  # " … " marks an elision
            assert fragment in text, (claim.key, fragment)


def _results(ratios, accuracy, dead, trained_ratios=None):
    """Hand-made results: `ratios[activation](depth)` at init, accuracy and
    ReLU's dead fraction `dead(depth)` likewise."""
    results = Results()
    for activation in activations.ACTIVATIONS:
        for depth in DEPTHS:
            where = {"activation": activation, "depth": depth}
            for phase, table in (
                ("init", ratios),
                ("trained", trained_ratios or ratios),
            ):
                results.add(
                    "gradient_ratio", table[activation](depth), **where, phase=phase
                )
            if activation == "relu":
                results.add("dead_fraction", dead(depth), **where, phase="trained")
            results.add("train_accuracy", accuracy[activation](depth), **where)
    return results


def _constant(value):
    return lambda depth: value


# What the articles describe: saturating activations vanish with depth
# (softsign less than tanh), the ReLU family keeps ratio ~1, ReLU has dead units
# and LeakyReLU trains better where it does.
TEXTBOOK = _results(
    ratios={
        "sigmoid": lambda d: 0.25 ** (d - 1),
        "tanh": lambda d: 0.6 ** (d - 1),
        "softsign": lambda d: 0.7 ** (d - 1),
        "relu": _constant(1.0),
        "leaky_relu": _constant(1.1),
        "gelu": _constant(0.8),
    },
    accuracy={
        "sigmoid": lambda d: 0.99 if d <= 2 else 0.1,
        "tanh": lambda d: 0.99 if d <= 5 else 0.5,
        "softsign": lambda d: 0.99 if d <= 5 else 0.6,
        "relu": lambda d: 0.99 if d <= 10 else 0.95,
        "leaky_relu": _constant(0.99),
        "gelu": _constant(0.99),
    },
    dead=lambda d: 0.005 * d,  # most at depth 20, where ReLU trains worse
)


def _verdicts(results):
    return {v.claim.key: v.verdict for v in activations.judge(results)}


def test_judge_textbook_case_holds():
    assert _verdicts(TEXTBOOK) == {claim.key: HOLDS for claim in activations.CLAIMS}


def test_judge_partly_case():
    # Sigmoid vanishes but still learns; only sigmoid of the three saturating
    # activations vanishes; ReLU keeps its gradient but does not reach 0.9;
    # dead units but LeakyReLU no better; softsign vanishes more than tanh but
    # trains as well; the ratio falls with depth but not monotonically; GELU
    # vanishes too.
    results = _results(
        ratios={
            "sigmoid": {2: 1.0, 5: 1e-3, 10: 1e-3, 20: 1e-4}.get,
            "tanh": _constant(0.5),
            "softsign": _constant(0.3),
            "relu": _constant(1.0),
            "leaky_relu": _constant(1.0),
            "gelu": _constant(1e-3),
        },
        accuracy={
            "sigmoid": _constant(0.9),
            "tanh": _constant(0.9),
            "softsign": _constant(0.9),
            "relu": _constant(0.8),
            "leaky_relu": _constant(0.8),
            "gelu": _constant(0.8),
        },
        dead=_constant(0.2),
    )
    assert _verdicts(results) == {claim.key: PARTLY for claim in activations.CLAIMS}


def test_judge_failing_case():
    # Every activation keeps its gradient and trains; ReLU has no dead units;
    # softsign worse than tanh in both ways.
    results = _results(
        ratios={
            "sigmoid": _constant(0.9),
            "tanh": _constant(0.9),
            "softsign": _constant(0.1),
            "relu": _constant(1e-4),
            "leaky_relu": _constant(1.0),
            "gelu": _constant(1.0),
        },
        accuracy={
            "sigmoid": _constant(0.99),
            "tanh": _constant(0.99),
            "softsign": _constant(0.5),
            "relu": _constant(0.5),
            "leaky_relu": _constant(0.99),
            "gelu": _constant(0.99),
        },
        dead=_constant(0.0),
    )
    assert _verdicts(results) == {
        claim.key: DOES_NOT_HOLD for claim in activations.CLAIMS
    }


def test_judge_says_when_a_configuration_was_not_measured():
    results = Results(
        row for row in TEXTBOOK.rows if row["activation"] in ("sigmoid", "relu")
    )
    verdicts = {v.claim.key: v for v in activations.judge(results)}
    assert verdicts["sigmoid_vanishes"].verdict == HOLDS
    missing = verdicts["softsign_beats_tanh"]
    assert missing.verdict == DOES_NOT_HOLD and "not measured" in missing.measured
