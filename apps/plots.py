"""Matplotlib figures for the app (Agg backend, no pyplot state: safe across threads)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def attention_figure(
    attention: np.ndarray, source_tokens: list[str], output_tokens: list[str]
) -> Figure:
    """Heat map of attention weights: output pieces (rows) × source pieces (columns)."""
    weights = np.asarray(attention, dtype=np.float32)
    if weights.ndim != 2 or weights.size == 0:
        weights = np.zeros((max(len(output_tokens), 1), max(len(source_tokens), 1)), np.float32)
    rows, columns = weights.shape
    sources = (list(source_tokens) + [""] * columns)[:columns]
    outputs = (list(output_tokens) + [""] * rows)[:rows]
    width = min(2.5 + 0.45 * columns, 14.0)
    height = min(1.8 + 0.35 * rows, 12.0)
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(columns), sources, rotation=60, ha="right", fontsize=9)
    axes.set_yticks(range(rows), outputs, fontsize=9)
    axes.set_xlabel("source pieces")
    axes.set_ylabel("output pieces")
    axes.set_title("attention")
    figure.colorbar(image, ax=axes, fraction=0.04)
    return figure


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes, as the app sends it (the first call loads the fonts)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def epoch_rows(metrics: dict[str, Any], history_csv: Path | None = None) -> list[dict[str, float]]:
    """Per-epoch numbers from metrics.json (``epochs``), else from Keras's history.csv."""
    rows = [dict(e) for e in metrics.get("epochs", []) if isinstance(e, dict)]
    if rows:
        return rows
    if history_csv is None or not history_csv.is_file():
        return []
    with history_csv.open(encoding="utf-8", newline="") as handle:
        for line in csv.DictReader(handle):
            row = {}
            for key, value in line.items():
                try:
                    row[key] = float(value)
                except (TypeError, ValueError):
                    continue
            if "epoch" in row:
                row["epoch"] = row["epoch"] + 1  # CSVLogger counts from 0
            rows.append(row)
    return rows


def training_figure(rows: list[dict[str, float]], title: str = "") -> Figure:
    """Loss and dev loss per epoch (left); dev BLEU per epoch (right)."""
    figure = Figure(figsize=(10, 3.6), dpi=100, layout="constrained")
    loss_axes, bleu_axes = figure.subplots(1, 2)
    if not rows:
        for axes in (loss_axes, bleu_axes):
            axes.text(0.5, 0.5, "no epochs recorded yet", ha="center", va="center")
            axes.set_axis_off()
        return figure
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    for key, label in (("loss", "train loss"), ("val_loss", "dev loss")):
        points = [(e, r[key]) for e, r in zip(epochs, rows, strict=True) if key in r]
        if points:
            loss_axes.plot(*zip(*points, strict=True), marker="o", label=label)
    loss_axes.set_xlabel("epoch")
    loss_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axes.set_ylabel("cross-entropy")
    loss_axes.legend()
    loss_axes.grid(alpha=0.3)
    points = [(e, r["dev_bleu"]) for e, r in zip(epochs, rows, strict=True) if "dev_bleu" in r]
    if points:
        bleu_axes.plot(*zip(*points, strict=True), marker="o", color="tab:green")
        bleu_axes.set_ylabel("dev BLEU")
        bleu_axes.set_xlabel("epoch")
        bleu_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        bleu_axes.grid(alpha=0.3)
    else:
        bleu_axes.text(0.5, 0.5, "no dev BLEU recorded", ha="center", va="center")
        bleu_axes.set_axis_off()
    if title:
        figure.suptitle(title)
    return figure
