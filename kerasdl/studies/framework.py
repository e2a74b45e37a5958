"""What every study shares: tidy results, claims, verdicts and the files it writes.

A study module (`kerasdl/studies/<name>.py`) defines:

    DESCRIPTION   one line for `kerasdl study list`
    CLAIMS        the `Claim`s it tests, each quoted from an article in the seeds
    run(output, quick=False, seed=0) -> Report
                  trains what it needs, fills a `Results`, draws its PNGs into
                  `output`, and returns `Report(results, verdicts, figures)`
    judge(results) -> list[Verdict]
                  the verdict rules, a pure function of the results (unit-tested
                  on fixed data, never set by hand)

`write_report(report, output, ...)` then writes `results.csv` (one tidy row per
configuration and metric) and `summary.md` (each claim quoted with its article, the
numbers, the verdict and the rule that gave it).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Iterable, Sequence

HOLDS = "holds"
PARTLY = "partly"
DOES_NOT_HOLD = "does not hold"
VERDICTS = (HOLDS, PARTLY, DOES_NOT_HOLD)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim an article makes, quoted.

    Attributes:
        key: short identifier, e.g. `"deep_sigmoid_vanishes"`.
        article: the seed file it comes from, e.g. `"002_63dcdd9d2821722c.txt"`.
        quote: the sentence(s) quoted from the article, in its language.
        phrase: the claim in a short English phrase.
    """

    key: str
    article: str
    quote: str
    phrase: str


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A claim judged on measured data.

    Attributes:
        claim: the `Claim`.
        verdict: `HOLDS`, `PARTLY` or `DOES_NOT_HOLD`.
        measured: the figures the verdict rests on, in a phrase.
        rule: the rule that produced the verdict, in words.
        figure: the PNG that shows it (file name in the output folder), or `None`.
    """

    claim: Claim
    verdict: str
    measured: str
    rule: str
    figure: str | None = None

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}; got {self.verdict!r}")


def verdict(holds: bool, partly: bool = False) -> str:
    """`HOLDS` if `holds`, else `PARTLY` if `partly`, else `DOES_NOT_HOLD`."""
    if holds:
        return HOLDS
    return PARTLY if partly else DOES_NOT_HOLD


class Results:
    """Tidy results: one row per configuration and metric.

    Example:

    >>> results = Results()
    >>> results.add("train_accuracy", 0.98, activation="relu", depth=5)
    >>> results.value("train_accuracy", activation="relu", depth=5)
    0.98
    """

    def __init__(self, rows: Iterable[dict] = ()):
        self.rows: list[dict] = [dict(row) for row in rows]

    def add(self, metric: str, value: float, **configuration) -> None:
        """Appends a row `{**configuration, "metric": metric, "value": value}`."""
        self.rows.append({**configuration, "metric": metric, "value": float(value)})

    def select(self, metric: str, **configuration) -> list[dict]:
        """Rows of `metric` whose configuration matches every given key."""
        return [
            row
            for row in self.rows
            if row["metric"] == metric
            and all(row.get(k) == v for k, v in configuration.items())
        ]

    def value(self, metric: str, **configuration) -> float:
        """The one value of `metric` at `configuration` (`KeyError` if not one)."""
        rows = self.select(metric, **configuration)
        if len(rows) != 1:
            raise KeyError(
                f"{len(rows)} rows of {metric!r} match {configuration}; expected 1"
            )
        return rows[0]["value"]

    def get(self, metric: str, **configuration) -> float:
        """`value`, or NaN when this run did not measure it (e.g. `--quick`)."""
        rows = self.select(metric, **configuration)
        return rows[0]["value"] if len(rows) == 1 else math.nan

    def values(self, metric: str, by: str, **configuration) -> dict:
        """`{row[by]: value}` of the rows of `metric` matching `configuration`."""
        return {row[by]: row["value"] for row in self.select(metric, **configuration)}

    def columns(self) -> list[str]:
        keys: list[str] = []
        for row in self.rows:
            for key in row:
                if key not in keys and key not in ("metric", "value"):
                    keys.append(key)
        return [*keys, "metric", "value"]

    def write_csv(self, path) -> str:
        columns = self.columns()
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({c: row.get(c, "") for c in columns})
        return str(path)

    @classmethod
    def read_csv(cls, path) -> Results:
        with open(path, newline="") as f:
            rows = []
            for row in csv.DictReader(f):
                row = {k: _parse(v) for k, v in row.items() if v != ""}
                row["value"] = float(row["value"])
                rows.append(row)
        return cls(rows)


@dataclasses.dataclass
class Report:
    """What a study's `run` returns."""

    results: Results
    verdicts: list[Verdict]
    figures: list[str] = dataclasses.field(default_factory=list)
    notes: str = ""


def write_report(
    report: Report,
    output,
    *,
    name: str,
    title: str,
    seconds: float,
    quick: bool,
    command: str,
) -> dict[str, str]:
    """Writes `results.csv` and `summary.md` into `output`; returns their paths."""
    os.makedirs(output, exist_ok=True)
    csv_path = report.results.write_csv(os.path.join(output, "results.csv"))
    lines = [
        f"# Study `{name}`: {title}",
        "",
        f"Reproduce: `{command}`. Ran in {seconds:.0f} s"
        + (" (`--quick`: reduced sizes, figures not comparable)." if quick else "."),
        "",
        "| claim | article | verdict | measured | rule |",
        "| --- | --- | --- | --- | --- |",
    ]
    for v in report.verdicts:
        lines.append(
            f"| {v.claim.phrase} | `{v.claim.article}` | **{v.verdict}** | "
            f"{v.measured} | {v.rule} |"
        )
    lines.append("")
    for v in report.verdicts:
        lines += [
            f"## {v.claim.phrase}",
            "",
            f"> {v.claim.quote}",
            f"> — `{v.claim.article}`",
            "",
            f"**Verdict: {v.verdict}.** Measured: {v.measured}. Rule: {v.rule}.",
        ]
        if v.figure:
            lines += ["", f"![{v.claim.key}]({v.figure})"]
        lines.append("")
    if report.notes:
        lines += ["## Notes", "", report.notes.strip(), ""]
    figures = [f for f in report.figures if f]
    if figures:
        lines += ["## Figures", ""] + [f"- [{f}]({f})" for f in figures] + [""]
    summary = os.path.join(output, "summary.md")
    with open(summary, "w") as f:
        f.write("\n".join(lines))
    return {"results": csv_path, "summary": summary}


def not_measured(claim: Claim, rule: str, figure: str | None = None) -> Verdict:
    """`DOES_NOT_HOLD` for a claim whose configurations this run left out."""
    return Verdict(
        claim,
        DOES_NOT_HOLD,
        "not measured in this run (a configuration it needs is missing)",
        rule,
        figure,
    )


def save_figure(fig, output, name: str) -> str:
    """Writes the matplotlib `fig` as `output/name` (110 dpi), closes it; returns `name`."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(os.path.join(output, name), dpi=110)
    plt.close(fig)
    return name


def ratio(a: float, b: float) -> float:
    """`a / b`, `inf` when `b` is 0 and `a` is not, `nan` when both are."""
    if b == 0:
        return math.nan if a == 0 else math.inf
    return a / b


def measured(values: dict) -> str:
    """`"name value, name value"`: the figures a verdict's evidence names."""
    return ", ".join(f"{k} {format_number(v)}" for k, v in values.items())


def format_number(value: float, digits: int = 3) -> str:
    """A number for a summary line: `0.981`, `3.2e-07`, `inf`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
        return f"{value:.{max(1, digits - 1)}e}"
    return f"{value:.{digits}g}"


def _parse(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def quoted(seq: Sequence[str]) -> str:
    return ", ".join(f"`{s}`" for s in seq)
