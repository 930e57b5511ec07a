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

WORD_START = "\u2581"  # SentencePiece's mark of a piece that starts a word
LONGEST_LABEL = 14  # characters; longer pieces (word vocabularies) are cut with "…"


def piece_labels(pieces: list[str]) -> list[str]:
    """Readable tick labels: SentencePiece's word-start mark ``▁`` removed, a piece that
    continues a word inside it marked with a leading ``-`` (so "▁esta", "ción" reads
    "esta", "-ción"), punctuation that follows a word as it is ("?", "'", not "·'");
    word-vocabulary tokens as they are. Long labels are cut."""
    subwords = any(piece.startswith(WORD_START) for piece in pieces)
    labels = []
    for piece in pieces:
        if subwords:
            if piece.startswith(WORD_START):
                piece = piece[1:]
            elif piece[:1].isalnum():
                piece = "-" + piece
        piece = piece.replace(WORD_START, " ").strip() or "␣"
        labels.append(piece if len(piece) <= LONGEST_LABEL else piece[: LONGEST_LABEL - 1] + "…")
    return labels


# What the heat map shows, in one line under it (the colour bar repeats it).
ATTENTION_LEGEND = (
    "Colour = attention weight: yellow ≈ 1 (looked at), dark purple ≈ 0 (ignored). "
    "-ción: a piece that continues the word before it."
)


def attention_figure(
    attention: np.ndarray, source_tokens: list[str], output_tokens: list[str]
) -> Figure:
    """Heat map of attention weights: output pieces (rows) × source pieces (columns).

    The figure grows with the sentence (about a label's height per piece), so long
    sentences keep readable labels; source labels turn vertical beyond 12 pieces.
    """
    weights = np.asarray(attention, dtype=np.float32)
    if weights.ndim != 2 or weights.size == 0:
        weights = np.zeros((max(len(output_tokens), 1), max(len(source_tokens), 1)), np.float32)
    rows, columns = weights.shape
    sources = piece_labels((list(source_tokens) + [""] * columns)[:columns])
    outputs = piece_labels((list(output_tokens) + [""] * rows)[:rows])
    fontsize = 10 if max(rows, columns) <= 30 else 8
    vertical = columns > 12
    label_room = 0.09 * max(map(len, sources)) * (1.0 if vertical else 0.6)
    width = 2.4 + 0.09 * max(map(len, outputs)) + (0.24 if vertical else 0.42) * columns
    height = 1.2 + label_room + 0.28 * rows
    figure = Figure(figsize=(max(width, 4.0), max(height, 2.5)), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    axes.set_xticks(
        range(columns),
        sources,
        rotation=90 if vertical else 45,
        ha="center" if vertical else "right",
        rotation_mode="anchor" if not vertical else "default",
        fontsize=fontsize,
    )
    axes.set_yticks(range(rows), outputs, fontsize=fontsize)
    axes.set_xlabel("source pieces")
    axes.set_ylabel("output pieces")
    figure.colorbar(image, ax=axes, fraction=0.04, label="attention weight (yellow = most)")
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


def epoch_axis(axes, epochs: list[float]) -> None:
    """An x axis of whole epochs, half an epoch of room each side: one epoch reads "1",
    not 0.945 ... 1.050 (Matplotlib's default margins around a single point)."""
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axes.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)


def training_figure(rows: list[dict[str, float]], title: str = "") -> Figure:
    """Loss and dev loss per epoch (left); dev BLEU per epoch (right), or dev perplexity
    for a run that records no BLEU (a chat run selected by dev loss)."""
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
    epoch_axis(loss_axes, epochs)
    loss_axes.set_ylabel("cross-entropy")
    loss_axes.legend()
    loss_axes.grid(alpha=0.3)
    key, label = ("dev_bleu", "dev BLEU")
    if not any(key in r for r in rows):
        key, label = ("val_perplexity", "dev perplexity")
    points = [(e, r[key]) for e, r in zip(epochs, rows, strict=True) if key in r]
    if points:
        bleu_axes.plot(*zip(*points, strict=True), marker="o", color="tab:green")
        bleu_axes.set_ylabel(label)
        epoch_axis(bleu_axes, epochs)
        bleu_axes.grid(alpha=0.3)
    else:
        bleu_axes.text(0.5, 0.5, "no dev BLEU or perplexity recorded", ha="center", va="center")
        bleu_axes.set_axis_off()
    if title:
        figure.suptitle(title)
    return figure
