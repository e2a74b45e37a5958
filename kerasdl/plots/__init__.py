"""Figures a run writes: learning curves from the CSV log, attention heat maps."""

from kerasdl.plots.attention_map import plot_attention  # noqa: F401
from kerasdl.plots.learning_curves import (
    plot_learning_curves,  # noqa: F401
    read_history,  # noqa: F401
)
