"""Learning-curve PNGs from the CSV log that `keras.callbacks.CSVLogger` writes."""

from __future__ import annotations

import csv
import os


def read_history(csv_path: str | os.PathLike) -> dict[str, list[float]]:
    """Reads a CSVLogger file into {metric: [value per epoch]}.

    A resumed run appends to the same file; when an epoch appears twice (it was
    logged, then the run was killed before its checkpoint), the last row wins.
    """
    rows: dict[int, dict[str, float]] = {}
    if not os.path.exists(csv_path):
        return {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                epoch = int(row.pop("epoch"))
                rows[epoch] = {
                    k: float(v) for k, v in row.items() if v not in ("", None)
                }
            except (KeyError, ValueError):
                continue
    history: dict[str, list[float]] = {"epoch": []}
    for epoch in sorted(rows):
        history["epoch"].append(epoch + 1)
        for key, value in rows[epoch].items():
            history.setdefault(key, []).append(value)
    return history


def plot_learning_curves(
    history: dict[str, list[float]], png_path: str | os.PathLike, title: str = ""
) -> str | None:
    """Plots loss and every other metric (train and validation) side by side.

    Returns the path written, or `None` when there is nothing to plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = history.get("epoch") or []
    metrics = [
        k
        for k in history
        if k != "epoch" and not k.startswith("val_") and k != "learning_rate"
    ]
    if not epochs or not metrics:
        return None
    figure, axes = plt.subplots(
        1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False
    )
    for axis, metric in zip(axes[0], metrics):
        axis.plot(epochs, history[metric], marker="o", label=f"train {metric}")
        if f"val_{metric}" in history:
            axis.plot(
                epochs,
                history[f"val_{metric}"],
                marker="o",
                label=f"validation {metric}",
            )
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return str(png_path)
