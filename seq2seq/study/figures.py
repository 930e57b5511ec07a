"""The study report's figures, drawn with Matplotlib's object API (no pyplot state)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from seq2seq.runs import write_atomically  # noqa: E402

CELL_COLOURS = {"rnn": "tab:red", "gru": "tab:blue", "lstm": "tab:green"}
# A curve point needs this many sequences long enough to have that distance.
MIN_ROWS = 8
# The probe panel's floor: below it a gradient has vanished for any practical purpose.
VANISHED = 1e-12


def finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


# -- figures ---------------------------------------------------------------------------------


def save_figure(figure: Figure, path: Path) -> None:
    write_atomically(path, lambda temporary: figure.savefig(temporary, format="png", dpi=110))


def colour(index: int):
    return matplotlib.colormaps["tab20"](index % 20)


def dev_loss_figure(variants: list[dict], target: float | None) -> Figure:
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    by_step, by_time = figure.subplots(1, 2, sharey=True)
    for index, variant in enumerate(variants):
        points = [p for p in variant["dev_curve"] if finite(p["dev_loss"])]
        style = {"color": colour(index), "marker": ".", "label": variant["name"]}
        by_step.plot([p["step"] for p in points], [p["dev_loss"] for p in points], **style)
        by_time.plot([p["seconds"] for p in points], [p["dev_loss"] for p in points], **style)
    for axes, label in ((by_step, "training step"), (by_time, "training seconds")):
        axes.set_xlabel(label)
        axes.grid(alpha=0.3)
        if target is not None:
            axes.axhline(target, color="black", linestyle=":", linewidth=1)
    by_step.set_ylabel("dev loss (cross-entropy per token)")
    by_step.set_title("dev loss at equal steps")
    by_time.set_title("dev loss at equal time")
    by_time.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure


def plot_curve(axes, curve: dict | None, **style) -> None:
    if not curve:
        return
    relative, rows = np.asarray(curve["relative"]), np.asarray(curve["rows"])
    keep = rows >= MIN_ROWS
    axes.semilogy(np.arange(len(relative))[keep], relative[keep], **style)


def gradient_flow_figure(variants: list[dict], probe: list[dict]) -> Figure:
    """Left: the grid's variants on real data; right: the probe's longest-length models."""
    figure = Figure(figsize=(12, 4.4), layout="constrained")
    real, synthetic = figure.subplots(1, 2)
    for index, variant in enumerate(variants):
        flows = variant["gradient_flow"]
        plot_curve(real, flows["trained"], color=colour(index), label=variant["name"])
    real.set_title("real dev sentences, first encoder layer (trained)")
    if probe:
        longest = max(r["length"] for r in probe)
        for run in (r for r in probe if r["length"] == longest):
            cell_colour = CELL_COLOURS.get(run["cell"], "black")
            flows = run["gradient_flow"]
            plot_curve(synthetic, flows["init"], color=cell_colour, linestyle="--")
            plot_curve(synthetic, flows["trained"], color=cell_colour, label=f"{run['cell']}")
        synthetic.set_title(f"probe, length {longest}: trained (solid) and at init (dashed)")
        synthetic.set_ylim(bottom=VANISHED)
    else:
        synthetic.text(0.5, 0.5, "no probe run", ha="center", va="center")
    for axes in (real, synthetic):
        axes.set_xlabel("distance from the final state (steps)")
        axes.set_ylabel("‖∂(u·h_T)/∂x_t‖ relative to distance 0")
        axes.grid(alpha=0.3, which="both")
        if axes.has_data():
            axes.legend(fontsize=8)
    return figure


def gradient_norms_figure(variants: list[dict]) -> Figure:
    figure = Figure(figsize=(max(6, 0.8 * len(variants) + 2), 4.4), layout="constrained")
    axes = figure.subplots()
    data = []
    for variant in variants:
        norms = np.asarray(variant["gradient_norms"], np.float64)
        norms = norms[np.isfinite(norms) & (norms > 0)]
        data.append(norms if norms.size else np.array([np.nan]))
    axes.boxplot(data, whis=(5, 95), showfliers=True, flierprops={"markersize": 2})
    axes.set_xticks(range(1, len(variants) + 1), [v["name"] for v in variants], rotation=40)
    axes.set_yscale("log")
    thresholds = {v["clipping"]["threshold"] for v in variants}
    for threshold in thresholds:
        axes.axhline(threshold, color="tab:red", linestyle=":", linewidth=1)
    axes.set_ylabel("global gradient norm before clipping")
    axes.set_title("gradient norm per step (whiskers 5-95%, red: clip threshold)")
    axes.grid(alpha=0.3, axis="y")
    return figure


def gates_figure(variants: list[dict]) -> Figure | None:
    gated = [v for v in variants if v["gates"].get("trained")]
    if not gated:
        return None
    labels, low, high, low_init, high_init = [], [], [], [], []
    for variant in gated:
        for gate, stats in variant["gates"]["trained"].items():
            init = (variant["gates"].get("init") or {}).get(gate, {})
            labels.append(f"{variant['name']}\n{gate}")
            low.append(stats["near_0"])
            high.append(stats["near_1"])
            low_init.append(init.get("near_0", np.nan))
            high_init.append(init.get("near_1", np.nan))
    figure = Figure(figsize=(max(7, 0.55 * len(labels) + 2), 4.6), layout="constrained")
    axes = figure.subplots()
    x = np.arange(len(labels))
    axes.bar(x - 0.2, low, 0.4, label="< 0.1 (shut), trained", color="tab:purple")
    axes.bar(x + 0.2, high, 0.4, label="> 0.9 (open), trained", color="tab:orange")
    axes.scatter(x - 0.2, low_init, marker="_", s=120, color="black", label="at init", zorder=3)
    axes.scatter(x + 0.2, high_init, marker="_", s=120, color="black", zorder=3)
    axes.set_xticks(x, labels, rotation=60, fontsize=7)
    axes.set_ylabel("share of gate activations")
    axes.set_ylim(0, 1)
    axes.set_title("gate saturation, first encoder layer, real dev sentences")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3, axis="y")
    return figure


def probe_figure(probe: list[dict], task: str) -> Figure:
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    for cell in dict.fromkeys(r["cell"] for r in probe):
        runs = sorted((r for r in probe if r["cell"] == cell), key=lambda r: r["length"])
        axes.plot(
            [r["length"] for r in runs],
            [100 * r["accuracy"] for r in runs],
            marker="o",
            color=CELL_COLOURS.get(cell, "black"),
            label=cell,
        )
    axes.set_xscale("log", base=2)
    lengths = sorted({r["length"] for r in probe})
    axes.set_xticks(lengths, [str(n) for n in lengths])
    axes.set_ylim(-3, 103)
    axes.set_xlabel("sequence length (payload + distractors)")
    axes.set_ylabel("sequence accuracy (%)")
    axes.set_title(f"long-dependency probe: {task}")
    axes.legend()
    axes.grid(alpha=0.3)
    return figure


# -- Markdown --------------------------------------------------------------------------------
