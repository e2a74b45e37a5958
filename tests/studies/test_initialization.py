"""The initialization study: the quick run writes its files; units; verdict rules."""

import csv
import pathlib

import pytest

from kerasdl import cli
from kerasdl.studies import initialization
from kerasdl.studies.framework import DOES_NOT_HOLD, HOLDS, PARTLY, Results

SEEDS = pathlib.Path(__file__).resolve().parents[3] / "shared" / "seeds"
ACTIVATIONS = ("tanh", "relu")
DEPTH = 10


def test_quick_run_writes_results_summary_and_figures(tmp_path):
    argv = ["study", "initialization", "--quick", "--output", str(tmp_path)]
    assert cli.main(argv) == 0

    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["metric"] for row in rows} >= {
        "activation_std",
        "saturated_fraction",
        "gradient_norm",
        "gradient_ratio",
        "distinct_units",
        "train_accuracy",
        "test_accuracy",
    }
    zeros = [
        float(row["value"])
        for row in rows
        if row["metric"] == "distinct_units" and row["initializer"] == "zeros"
    ]
    assert zeros == [1.0] * (DEPTH * len(ACTIVATIONS))
    summary = (tmp_path / "summary.md").read_text()
    for claim in initialization.CLAIMS:
        assert f"> {claim.quote}" in summary
    assert summary.count("**Verdict: ") == len(initialization.CLAIMS)
    for figure in (
        initialization.histogram_figure("tanh"),
        initialization.histogram_figure("relu"),
        initialization.FIGURE_STD,
        initialization.FIGURE_ACCURACY,
    ):
        assert (tmp_path / figure).stat().st_size > 0


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed articles are not here")
def test_quotes_are_verbatim_from_the_articles():
    for claim in initialization.CLAIMS:
        text = (SEEDS / claim.article).read_text()
        for fragment in claim.quote.split(" … "):  # " … " marks an elision
            assert fragment in text, (claim.key, fragment)


@pytest.mark.parametrize(
    "init_name, normalization, expected",
    [
        ("zeros", None, 1),
        ("constant", "batch", 1),
        ("he", None, 8),
        ("xavier", "batch", 8),
    ],
)
def test_distinct_units_counts_units_with_equal_incoming_weights(
    init_name, normalization, expected
):
    import kerasdl

    model = kerasdl.models.get_model(
        "mlp",
        (4,),
        3,
        depth=2,
        width=8,
        initializer=initialization.initializer(init_name, 8),
        normalization=normalization,
    )
    assert [initialization.distinct_units(model, k) for k in (1, 2)] == [expected] * 2


def _results(std, saturated, distinct, accuracy):
    """Hand-made results; each argument maps (activation, normalization,
    initializer) to a value (`std` and `saturated`: to a function of the layer)."""
    results = Results()
    for activation in ACTIVATIONS:
        for normalization in initialization.NORMALIZATIONS:
            for init_name in initialization.INITIALIZERS:
                key = (activation, normalization, init_name)
                where = {
                    "activation": activation,
                    "normalization": normalization,
                    "initializer": init_name,
                }
                for k in range(1, DEPTH + 1):
                    results.add("activation_std", std(*key)(k), **where, layer=k)
                    if activation == "tanh":
                        results.add(
                            "saturated_fraction", saturated(*key)(k), **where, layer=k
                        )
                    results.add("distinct_units", distinct(*key), **where, layer=k)
                results.add("train_accuracy", accuracy(*key), **where)
    return results


def _flat(value):
    return lambda k: value


def _textbook_std(activation, normalization, init_name):
    if normalization == "batch":
        return _flat(0.6)
    return {
        "zeros": _flat(0.0),
        "constant": _flat(0.3),
        "normal_0.01": lambda k: 0.08**k,
        "normal_1": _flat(0.95) if activation == "tanh" else lambda k: 5.0**k,
        "xavier": _flat(0.6) if activation == "tanh" else lambda k: 0.7**k,
        "he": _flat(0.8),
    }[init_name]


def _textbook_saturated(activation, normalization, init_name):
    return _flat(0.9 if (init_name, normalization) == ("normal_1", "none") else 0.0)


def _symmetric(activation, normalization, init_name):
    return 1 if init_name in ("zeros", "constant") else 64


def _textbook_accuracy(activation, normalization, init_name):
    if init_name in ("zeros", "constant"):
        return 0.1
    if normalization == "batch":
        return 0.99
    return {"normal_0.01": 0.1, "normal_1": 0.4, "xavier": 0.97, "he": 0.99}[init_name]


def _verdicts(results):
    return {v.claim.key: v.verdict for v in initialization.judge(results)}


def test_judge_textbook_case_holds():
    results = _results(
        _textbook_std, _textbook_saturated, _symmetric, _textbook_accuracy
    )
    assert _verdicts(results) == {claim.key: HOLDS for claim in initialization.CLAIMS}


def test_judge_partly_case():
    def std(activation, normalization, init_name):
        if (activation, init_name) == ("tanh", "normal_0.01"):
            return lambda k: 0.55**k  # shrinks 200x but ends above 1e-3
        if (activation, init_name) == ("relu", "xavier"):
            return _flat(0.6)  # Xavier keeps ReLU too
        if (activation, init_name) == ("relu", "he"):
            return _flat(0.6)  # kept, but He does not train (below)
        return _textbook_std(activation, normalization, init_name)

    def saturated(activation, normalization, init_name):
        return _flat(0.3 if (init_name, normalization) == ("normal_1", "none") else 0.0)

    def distinct(activation, normalization, init_name):
        if init_name in ("zeros", "constant"):
            return 1 if normalization == "none" else 2  # BN broke the symmetry
        return 64

    def accuracy(activation, normalization, init_name):
        if (activation, normalization, init_name) == ("relu", "none", "he"):
            return 0.5
        if normalization == "batch" and init_name == "normal_1":
            return 0.3  # spread 0.69 with BN, 0.87 without
        return _textbook_accuracy(activation, normalization, init_name)

    results = _results(std, saturated, distinct, accuracy)
    assert _verdicts(results) == {claim.key: PARTLY for claim in initialization.CLAIMS}


def test_judge_failing_case():
    def std(activation, normalization, init_name):
        if init_name == "zeros":
            return _flat(0.0)
        if (activation, init_name) in (("tanh", "xavier"), ("relu", "he")):
            return lambda k: 0.5**k  # Xavier spoils tanh, He shrinks ReLU
        return _flat(0.5)  # N(0, 0.01) keeps tanh; Xavier keeps ReLU

    def accuracy(activation, normalization, init_name):
        if init_name == "he":
            return 0.5  # He does not train, with or without BN
        return 0.9

    results = _results(
        std,
        lambda *key: _flat(0.0),  # N(0, 1) does not saturate tanh
        lambda *key: 3 if key[2] == "zeros" else 64,  # symmetry broken
        accuracy,  # BN's accuracy spread as wide as without
    )
    assert _verdicts(results) == {
        claim.key: DOES_NOT_HOLD for claim in initialization.CLAIMS
    }


def test_judge_says_when_a_configuration_was_not_measured():
    results = Results(
        row
        for row in _results(
            _textbook_std, _textbook_saturated, _symmetric, _textbook_accuracy
        ).rows
        if row["normalization"] == "none"
    )
    verdicts = {v.claim.key: v for v in initialization.judge(results)}
    assert verdicts["zeros_symmetric"].verdict == HOLDS  # on the networks measured
    missing = verdicts["batch_norm_less_sensitive"]
    assert missing.verdict == DOES_NOT_HOLD and "not measured" in missing.measured
