"""Studies: what the articles claim about training deep networks, measured.

    kerasdl study list
    kerasdl study activations [--quick] [--output DIR] [--seed N]

One module per study, each in the recipes' style (a short story over library code):
it trains what it needs, writes `results.csv` (tidy rows), PNG figures and
`summary.md` (each claim quoted from its article, the numbers, and a verdict computed
from the data by the rule in its `judge`). The shared parts are in `framework.py`; a
new study is a module here and one entry in `STUDIES`.
"""

from __future__ import annotations

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class Study:
    """A registry entry: `module` defines `DESCRIPTION`, `CLAIMS`, `run` and `judge`."""

    name: str
    module: str

    def load(self):
        return importlib.import_module(self.module)


STUDIES: dict[str, Study] = {
    name: Study(name, f"kerasdl.studies.{name}")
    for name in (
        "activations",
        "initialization",
        "normalization",
        "degradation",
        "regularization",
        "capacity",
        "distribution_shift",
        "rnn_gradients",
    )
}


def get_study(name: str) -> Study:
    """The registry entry `name`; ValueError listing the known names if absent."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; known studies: {', '.join(STUDIES)}")
    return STUDIES[name]


def available() -> dict[str, Study]:
    """The studies whose module exists in this installation."""
    import importlib.util

    return {
        name: study
        for name, study in STUDIES.items()
        if importlib.util.find_spec(study.module) is not None
    }
