"""The study's report: Markdown with PNG plots, and every number as CSV and JSON.

Everything is rebuilt from the files in the study folder (``study.json``,
``variants/*.json``, ``probe/*.json``), so a resumed or extended study gets one report over
all its runs. Figures use Matplotlib's object API (no pyplot state).
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from seq2seq.runs import write_atomically, write_text_atomically  # noqa: E402
from seq2seq.study.settings import STUDY_FILE, StudySettings, load_settings  # noqa: E402
from seq2seq.study.variants import CELLS  # noqa: E402

REPORT = "report.md"
FIGURES = {
    "dev_loss": "dev_loss.png",
    "gradient_flow": "gradient_flow.png",
    "gradient_norms": "gradient_norms.png",
    "gates": "gate_saturation.png",
    "probe": "probe_accuracy.png",
}
TABLES = ("results.csv", "dev_curves.csv", "gradient_flow.csv", "gradient_norms.csv")
CELL_COLOURS = {"rnn": "tab:red", "gru": "tab:blue", "lstm": "tab:green"}
# Distances at which the gradient-flow table samples each curve.
FLOW_DISTANCES = (1, 5, 10, 20, 40, 80)
# A curve point needs this many sequences long enough to have that distance.
MIN_ROWS = 8
# The probe panel's floor: below it a gradient has vanished for any practical purpose.
VANISHED = 1e-12


# -- loading ---------------------------------------------------------------------------------


def read_json_files(folder: Path) -> list[dict]:
    if not folder.is_dir():
        return []
    results = []
    for path in sorted(folder.glob("*.json")):
        try:
            results.append(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            continue  # never complete files: they are written atomically
    return results


def cell_rank(run: dict) -> int:
    return CELLS.index(run["cell"]) if run["cell"] in CELLS else len(CELLS)


def load_results(folder: Path) -> tuple[StudySettings, list[dict], list[dict]]:
    """Settings, finished variants (in the settings' order) and probe runs."""
    settings = load_settings(folder)
    found = {r["name"]: r for r in read_json_files(folder / "variants")}
    order = [n for n in settings.variants if n in found]
    variants = [found[n] for n in order] + [r for n, r in found.items() if n not in order]
    probe = sorted(read_json_files(folder / "probe"), key=lambda r: (cell_rank(r), r["length"]))
    return settings, variants, probe


# -- numbers ---------------------------------------------------------------------------------


def finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def choose_target_loss(variants: list[dict], chosen: float | None) -> float | None:
    """The given target, else the median final dev loss (about half the variants reach it)."""
    if chosen is not None:
        return chosen
    losses = [v["dev"]["loss"] for v in variants if finite(v["dev"]["loss"])]
    return round(float(np.median(losses)), 2) if losses else None


def steps_to_loss(curve: list[dict], target: float | None) -> int | None:
    """The first evaluated step whose dev loss is at or below ``target``."""
    if target is None:
        return None
    reached = (p["step"] for p in curve if finite(p["dev_loss"]) and p["dev_loss"] <= target)
    return next(reached, None)


def flow_at(curve: dict | None, distance: int) -> float | None:
    if not curve or distance >= len(curve["relative"]) or curve["rows"][distance] < MIN_ROWS:
        return None
    return curve["relative"][distance]


def result_row(variant: dict, target: float | None) -> dict:
    """One line of the main table."""
    arch = variant["architecture"]
    norms = np.asarray(variant["gradient_norms"], np.float64)
    norms = norms[np.isfinite(norms)]
    return {
        "variant": variant["name"],
        "cell": arch["cell"],
        "encoder": arch["encoder"],
        "layers": arch["layers"],
        "residual": arch["residual"],
        "clipping": arch["clipping"],
        "attention": arch["attention"],
        "parameters": variant["parameters"],
        "steps": variant["steps"],
        "train_seconds": round(variant["train_seconds"], 1),
        "target_tokens_per_second": variant["target_tokens_per_second"],
        "dev_loss": variant["dev"]["loss"],
        "dev_perplexity": variant["dev"]["perplexity"],
        "dev_bleu": variant["dev"]["bleu"],
        "dev_chrf": variant["dev"]["chrf"],
        "steps_to_target_loss": steps_to_loss(variant["dev_curve"], target),
        "diverged_at_step": variant["diverged_at_step"],
        "grad_norm_median": float(np.median(norms)) if norms.size else None,
        "grad_norm_p95": float(np.percentile(norms, 95)) if norms.size else None,
        "grad_norm_max": float(norms.max()) if norms.size else None,
        "share_over_clip_threshold": variant["clipping"]["share_over_threshold"],
        "clip_threshold": variant["clipping"]["threshold"],
    }


def machine() -> str:
    cores = os.cpu_count() or 0
    try:
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    except ImportError:  # pragma: no cover - TensorFlow is a dependency
        gpus = []
    device = f"{len(gpus)} GPU(s)" if gpus else "CPU only"
    return f"{platform.machine()} {platform.system()}, {cores} CPU cores, {device}"


# -- CSV / JSON ------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[dict]) -> None:
    fields = list(rows[0]) if rows else ["empty"]

    def write(temporary: Path) -> None:
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)

    write_atomically(path, write)


def curve_rows(source: str, run: str, flows: dict) -> Iterable[dict]:
    for stage, curve in flows.items():
        if not curve:
            continue
        pairs = zip(curve["relative"], curve["rows"], strict=True)
        for distance, (value, rows) in enumerate(pairs):
            yield {
                "source": source,
                "run": run,
                "stage": stage,
                "distance": distance,
                "relative_norm": value,
                "rows": rows,
            }


def gate_rows(variants: list[dict]) -> list[dict]:
    rows = []
    for variant in variants:
        for stage, gates in variant["gates"].items():
            for gate, stats in (gates or {}).items():
                rows.append(
                    {
                        "variant": variant["name"],
                        "stage": stage,
                        "gate": gate,
                        "near_0": stats["near_0"],
                        "near_1": stats["near_1"],
                        "mean": stats["mean"],
                    }
                )
    return rows


def probe_rows(probe: list[dict], task: str) -> list[dict]:
    return [
        {
            "task": task,
            "cell": r["cell"],
            "length": r["length"],
            "steps": r["steps"],
            "accuracy": r["accuracy"],
            "final_train_loss": r["final_train_loss"],
            "train_seconds": round(r["train_seconds"], 1),
        }
        for r in probe
    ]


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


def fmt(value, pattern: str = "{:.2f}", missing: str = "–") -> str:
    return pattern.format(value) if finite(value) else missing


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def main_table(rows: list[dict], target: float | None) -> list[str]:
    reach = f"steps to dev loss ≤ {target:.2f}" if target is not None else "steps to target"
    header = ["variant", "parameters", "target tok/s", "dev loss", "dev ppl", "dev BLEU", reach]
    body = []
    for r in rows:
        diverged = r["diverged_at_step"]
        body.append(
            [
                f"`{r['variant']}`",
                f"{r['parameters']:,}",
                fmt(r["target_tokens_per_second"], "{:,.0f}"),
                f"diverged (step {diverged})" if diverged else fmt(r["dev_loss"], "{:.3f}"),
                fmt(r["dev_perplexity"], "{:.1f}"),
                fmt(r["dev_bleu"], "{:.1f}"),
                str(r["steps_to_target_loss"]) if r["steps_to_target_loss"] else "not reached",
            ]
        )
    return markdown_table(header, body)


def flow_table(variants: list[dict]) -> list[str]:
    distances = [
        d for d in FLOW_DISTANCES if any(flow_at(v["gradient_flow"]["init"], d) for v in variants)
    ]
    header = ["variant", *(f"k={d} init → trained" for d in distances)]
    body = []
    for v in variants:
        flows = v["gradient_flow"]
        body.append(
            [f"`{v['name']}`"]
            + [
                " → ".join(fmt(flow_at(flows[s], d), "{:.1e}") for s in ("init", "trained"))
                for d in distances
            ]
        )
    return markdown_table(header, body)


def clipping_table(rows: list[dict]) -> list[str]:
    header = ["variant", "clipping", "median norm", "95th pct", "max", "steps over threshold"]
    body = [
        [
            f"`{r['variant']}`",
            f"at {r['clip_threshold']:g}" if r["clipping"] else "off",
            fmt(r["grad_norm_median"]),
            fmt(r["grad_norm_p95"]),
            fmt(r["grad_norm_max"]),
            f"{100 * r['share_over_clip_threshold']:.0f}%"
            + (" clipped" if r["clipping"] else " (would have been clipped)"),
        ]
        for r in rows
    ]
    return markdown_table(header, body)


def gates_table(rows: list[dict]) -> list[str]:
    trained = {(r["variant"], r["gate"]): r for r in rows if r["stage"] == "trained"}
    body = []
    for r in rows:
        if r["stage"] != "init" or (r["variant"], r["gate"]) not in trained:
            continue
        t = trained[(r["variant"], r["gate"])]
        body.append(
            [
                f"`{r['variant']}`",
                r["gate"],
                f"{100 * r['near_0']:.0f}% / {100 * r['near_1']:.0f}% (mean {r['mean']:.2f})",
                f"{100 * t['near_0']:.0f}% / {100 * t['near_1']:.0f}% (mean {t['mean']:.2f})",
            ]
        )
    header = ["variant", "gate", "init: < 0.1 / > 0.9", "trained: < 0.1 / > 0.9"]
    return markdown_table(header, body)


def probe_table(probe: list[dict]) -> list[str]:
    lengths = sorted({r["length"] for r in probe})
    cells = list(dict.fromkeys(r["cell"] for r in probe))  # probe runs come in CELLS order
    found = {(r["cell"], r["length"]): r for r in probe}
    body = [
        [cell]
        + [
            f"{100 * found[(cell, n)]['accuracy']:.0f}%" if (cell, n) in found else "–"
            for n in lengths
        ]
        for cell in cells
    ]
    return markdown_table(["cell", *(f"L={n}" for n in lengths)], body)


def describe_settings(settings: StudySettings) -> str:
    config = settings.config()
    data, model, train = config.data, config.model, config.train
    source = settings.preset or settings.config_file or "defaults"
    overrides = f" with `{' '.join(settings.overrides)}`" if settings.overrides else ""
    return (
        f"Preset `{source}`{overrides}: corpus `{data.corpus}`"
        + (" (reversed)" if data.reverse else "")
        + f", {data.tokenizer} vocabularies {data.source_vocab_size}/{data.target_vocab_size}, "
        f"embedding {model.embedding_dim}, hidden {model.hidden_size}, batch {train.batch_size}, "
        f"learning rate {train.learning_rate:g} (constant), dropout {model.dropout:g}, "
        f"seed {train.seed}. Budget: {settings.budget.describe()}, dev loss measured "
        f"{settings.budget.evals} times."
    )


def target_sentence(target: float | None, settings: StudySettings) -> str:
    if target is None:
        return ""
    origin = "set by --target-loss" if settings.target_loss is not None else "the median final"
    return (
        f"The dev-loss target {target:.2f} is {origin} dev loss, checked at each of "
        f"the {settings.budget.evals} evaluations."
    )


def write_report(folder: str | Path) -> dict:
    """Write report.md, the PNGs, the CSVs and results.json; return results.json's content."""
    folder = Path(folder)
    settings, variants, probe = load_results(folder)
    target = choose_target_loss(variants, settings.target_loss)
    rows = [result_row(v, target) for v in variants]
    gates = gate_rows(variants)
    task = settings.probe.task if settings.probe else "copy"
    flows = [row for v in variants for row in curve_rows("grid", v["name"], v["gradient_flow"])] + [
        row
        for r in probe
        for row in curve_rows("probe", f"{r['cell']}-{r['length']}", r["gradient_flow"])
    ]
    write_csv(folder / "results.csv", rows)
    write_csv(
        folder / "dev_curves.csv",
        [{"variant": v["name"], **p} for v in variants for p in v["dev_curve"]],
    )
    write_csv(folder / "gradient_flow.csv", flows)
    write_csv(
        folder / "gradient_norms.csv",
        [
            {"variant": v["name"], "step": i + 1, "norm": n, "train_loss": loss}
            for v in variants
            for i, (n, loss) in enumerate(zip(v["gradient_norms"], v["train_loss"], strict=True))
        ],
    )
    write_csv(folder / "gates.csv", gates)
    write_csv(folder / "probe.csv", probe_rows(probe, task))
    figures = {}
    if variants:
        figures["dev_loss"] = dev_loss_figure(variants, target)
        figures["gradient_norms"] = gradient_norms_figure(variants)
        figures["gates"] = gates_figure(variants)
    if variants or probe:
        figures["gradient_flow"] = gradient_flow_figure(variants, probe)
    if probe:
        figures["probe"] = probe_figure(probe, task)
    for key, figure in figures.items():
        if figure is not None:
            save_figure(figure, folder / FIGURES[key])
    timing = {
        "grid_seconds": sum(v["wall_seconds"] for v in variants),
        "probe_seconds": sum(r.get("wall_seconds", r["train_seconds"]) for r in probe),
    }
    results = {
        "settings": settings.to_dict(),
        "machine": machine(),
        "target_loss": target,
        "timing": timing,
        "table": rows,
        "gates": gates,
        "probe": probe_rows(probe, task),
        "variants": variants,
    }
    write_text_atomically(
        folder / "results.json", json.dumps(results, indent=1, allow_nan=True) + "\n"
    )
    text = markdown(settings, rows, variants, gates, probe, target, timing, figures)
    write_text_atomically(folder / REPORT, text)
    return results


def markdown(settings, rows, variants, gates, probe, target, timing, figures) -> str:
    def image(key: str, alt: str) -> list[str]:
        return [f"![{alt}]({FIGURES[key]})", ""] if figures.get(key) is not None else []

    lines = [
        "# Recurrent architecture study",
        "",
        describe_settings(settings),
        "",
        f"Measured on {machine()}: the grid took {timing['grid_seconds'] / 60:.1f} min, "
        f"the probe {timing['probe_seconds'] / 60:.1f} min (training and measurements).",
        "",
    ]
    if variants:
        lines += [
            "## Equal-budget comparison",
            "",
            "Dev loss and perplexity are teacher-forced on the whole dev split; BLEU is greedy "
            "on its first sentences. Target tokens/s leaves out the first steps (tracing). "
            + target_sentence(target, settings),
            "",
            *main_table(rows, target),
            "",
            *image("dev_loss", "dev loss against training steps and seconds"),
            "## Gradient flow through time",
            "",
            "Norm of ∂(u·h_T)/∂x_t for the first encoder layer (its forward half when "
            "bidirectional), u random unit vectors, relative to distance 0, geometric mean over "
            "the longest dev sentences. It isolates the path through the recurrence: attention "
            "gives every position a direct path as well.",
            "",
            *flow_table(variants),
            "",
            *image("gradient_flow", "gradient norm against distance"),
            "## Exploding gradients and clipping",
            "",
            "Global gradient norm of every training step, before clipping; for variants "
            "without clipping, the share of steps that the others' threshold would have "
            "clipped.",
            "",
            *clipping_table(rows),
            "",
            *image("gradient_norms", "distribution of gradient norms per variant"),
        ]
        if gates:
            lines += [
                "## Gate saturation",
                "",
                "Share of gate activations below 0.1 or above 0.9, first encoder layer, real "
                "dev sentences, before and after training.",
                "",
                *gates_table(gates),
                "",
                *image("gates", "gate saturation"),
            ]
    if probe and settings.probe:
        p = settings.probe
        lines += [
            f"## Long-dependency probe ({p.task})",
            "",
            f"Recall the first {p.payload} of {p.symbols} symbols "
            + ("in reverse order " if p.task == "reverse" else "")
            + f"after L − {p.payload} distractors ({p.distractors} kinds); unidirectional "
            f"encoder, no attention, hidden {p.hidden_size}, {p.steps} steps of batch "
            f"{p.batch_size} per cell and length; sequence accuracy on 256 new sequences "
            "(chance is " + f"{100 / p.symbols**p.payload:.2g}%).",
            "",
            *probe_table(probe),
            "",
            *image("probe", "probe accuracy against length"),
        ]
    lines += [
        "## Files",
        "",
        "`results.json` (everything), "
        + ", ".join(f"`{name}`" for name in (*TABLES, "gates.csv", "probe.csv"))
        + f", `{STUDY_FILE}` (settings), `variants/`, `probe/` (one file per run).",
        "",
    ]
    return "\n".join(lines)
