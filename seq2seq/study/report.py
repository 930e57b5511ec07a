"""The study's report: Markdown with PNG plots, and every number as CSV and JSON.

Everything is rebuilt from the files in the study folder (``study.json``,
``variants/*.json``, ``probe/*.json``), so a resumed or extended study gets one report over
all its runs. Figures use Matplotlib's object API (no pyplot state).
"""

from __future__ import annotations

import csv
import json
import os
import platform
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from seq2seq.runs import write_atomically, write_text_atomically  # noqa: E402
from seq2seq.study.figures import (  # noqa: E402
    MIN_ROWS,
    dev_loss_figure,
    finite,
    gates_figure,
    gradient_flow_figure,
    gradient_norms_figure,
    probe_figure,
    save_figure,
)
from seq2seq.study.settings import (  # noqa: E402
    CELLS,  # noqa: E402
    STUDY_FILE,
    StudySettings,
    load_settings,
)

REPORT = "report.md"
FIGURES = {
    "dev_loss": "dev_loss.png",
    "gradient_flow": "gradient_flow.png",
    "gradient_norms": "gradient_norms.png",
    "gates": "gate_saturation.png",
    "probe": "probe_accuracy.png",
}
TABLES = ("results.csv", "dev_curves.csv", "gradient_flow.csv", "gradient_norms.csv")
# Distances at which the gradient-flow table samples each curve.
FLOW_DISTANCES = (1, 5, 10, 20, 40, 80)


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
