"""The rnn_gradients study: the quick run writes its files; decay summary; verdict rules."""

import csv
import math
import pathlib

import numpy as np
import pytest

from kerasdl import cli
from kerasdl.studies import rnn_gradients
from kerasdl.studies.framework import DOES_NOT_HOLD, HOLDS, PARTLY, Results

SEEDS = pathlib.Path(__file__).resolve().parents[3] / "shared" / "seeds"
K = 100


def test_quick_run_writes_results_summary_and_figures(tmp_path):
    argv = ["study", "rnn_gradients", "--quick", "--output", str(tmp_path)]
    assert cli.main(argv) == 0

    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["metric"] for row in rows} >= {
        "gradient_norm",
        "log10_ratio",
        "decay_per_step",
        "train_loss",
        "validation_bits_per_char",
    }
    norms = [r for r in rows if r["metric"] == "gradient_norm"]
    assert {r["cell"] for r in norms} == set(rnn_gradients.QUICK.cells)
    assert {r["condition"] for r in norms} == set(rnn_gradients.CONDITIONS)
    assert {int(r["k"]) for r in norms} == set(
        range(rnn_gradients.QUICK.max_distance + 1)
    )
    assert all(float(r["value"]) > 0 for r in norms)
    summary = (tmp_path / "summary.md").read_text()
    for claim in rnn_gradients.CLAIMS:
        assert f"> {claim.quote}" in summary
    assert summary.count("**Verdict: ") == len(rnn_gradients.CLAIMS)
    for figure in (rnn_gradients.FIGURE_NORMS, rnn_gradients.FIGURE_LOSS):
        assert (tmp_path / figure).stat().st_size > 0


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed articles are not here")
def test_quotes_are_verbatim_from_the_articles():
    for claim in rnn_gradients.CLAIMS:
        assert claim.quote in (SEEDS / claim.article).read_text(), claim.key


def test_decay_summary_of_an_exponential():
    norms = 3.0 * 0.9 ** np.arange(K + 1)
    log_ratio, per_step = rnn_gradients.decay_summary(norms)
    assert log_ratio == pytest.approx((K - 1) * math.log10(0.9))
    assert per_step == pytest.approx(0.9)
    underflow = np.concatenate([norms[:50], np.zeros(K - 49)])
    assert rnn_gradients.decay_summary(underflow)[0] < -40
    assert math.isnan(rnn_gradients.decay_summary([1.0, np.nan, 1.0])[0])


def _results(log_ratios):
    """Hand-made results: `log_ratios[cell][condition]` plus one norm row each."""
    results = Results()
    for cell, by_condition in log_ratios.items():
        for condition, value in by_condition.items():
            where = {"cell": cell, "condition": condition}
            results.add("gradient_norm", 1.0, **where, k=K)
            results.add("log10_ratio", value, **where)
            results.add("decay_per_step", 10 ** (value / (K - 1)), **where)
    return results


def _same(value):
    return dict.fromkeys(rnn_gradients.CONDITIONS, value)


def _verdicts(results):
    return {v.claim.key: v.verdict for v in rnn_gradients.judge(results)}


def test_judge_textbook_case_holds():
    results = _results(
        {
            "simple_rnn": {"init": -6.0, "trained": 4.0, "trained_clipped": -5.0},
            "gru": _same(-1.0),
            "lstm": _same(-0.5),
        }
    )
    assert _verdicts(results) == {c.key: HOLDS for c in rnn_gradients.CLAIMS}


def test_judge_partly_case():
    # SimpleRNN decays only after training; only the LSTM keeps more gradient.
    results = _results(
        {
            "simple_rnn": {"init": -0.5, "trained": -3.0, "trained_clipped": -3.0},
            "gru": _same(-2.5),
            "lstm": _same(-1.0),
        }
    )
    assert _verdicts(results) == {c.key: PARTLY for c in rnn_gradients.CLAIMS}


def test_judge_failing_case():
    # SimpleRNN keeps its gradient everywhere; the gated cells lose more, or
    # explode.
    results = _results(
        {
            "simple_rnn": _same(-1.0),
            "gru": _same(-4.0),
            "lstm": _same(3.0),
        }
    )
    assert _verdicts(results) == {c.key: DOES_NOT_HOLD for c in rnn_gradients.CLAIMS}


def test_judge_without_gated_cells_says_not_measured():
    results = _results({"simple_rnn": _same(-6.0)})
    verdicts = {v.claim.key: v for v in rnn_gradients.judge(results)}
    assert verdicts["decay_or_explode"].verdict == HOLDS
    assert verdicts["gates_long_range"].verdict == DOES_NOT_HOLD
    assert "not measured" in verdicts["gates_long_range"].measured


def test_a_diverged_training_is_reported():
    results = _results(
        {
            "simple_rnn": {"init": -1.0, "trained": math.nan, "trained_clipped": -1.0},
            "gru": _same(-1.0),
            "lstm": _same(-1.0),
        }
    )
    verdict = rnn_gradients.judge(results)[0]
    assert verdict.verdict == PARTLY and "diverged (NaN): trained" in verdict.measured
