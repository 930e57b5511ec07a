"""The web app's Model tab: a run's architecture, its parameter counts next to the same
shape with the other cells, its training curves and metrics."""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr

from apps import plots
from apps.common import RUN_PICKER, find_run, load_translator
from apps.registry import TRAIN_TRANSLATION, Registry, RunInfo
from seq2seq.runs import RunPaths


def parameter_table(registry: Registry, run: RunInfo) -> list[list[Any]]:
    """Rows [part, gru, lstm, rnn]: this run's counts and the same shape with other cells."""
    translator = load_translator(registry, run)
    return registry.cached(run, "parameters", translator.parameter_table)


def gate_note(rows: list[list[Any]], cell: str) -> str:
    recurrent = {row[0]: row for row in rows if row[0] in ("encoder rnn", "decoder rnn", "total")}
    lines = []
    for part, row in recurrent.items():
        gru, lstm, rnn = row[1], row[2], row[3]
        if gru:
            why = " (4 gate blocks vs 3)" if part != "total" else ""
            lines.append(
                f"- **{part}**: GRU {gru:,} · LSTM {lstm:,} = {lstm / gru:.2f}× GRU{why} · "
                f"plain RNN {rnn:,} = {rnn / gru:.2f}× GRU"
            )
    head = f"This run uses **{cell.upper()}**; the other columns are the same shape rebuilt "
    head += "with the other cells (counted, not trained)."
    return head + "\n\n" + "\n".join(lines)


def model_info(registry: Registry, run_name: str):
    """-> (architecture markdown, parameter rows, training-curves figure, metrics markdown)."""
    run = find_run(registry, run_name, "all")
    model, data = run.config.model, run.config.data
    rows = parameter_table(registry, run)
    summary = "\n".join(
        [
            f"### {run.label}",
            registry.quality(run.name),
            "",
            "| setting | value |",
            "|---|---|",
            f"| cell | {model.cell} |",
            f"| layers | encoder {model.encoder_layers}, decoder {model.decoder_layers} |",
            f"| bidirectional encoder | {'yes' if model.bidirectional else 'no'} |",
            f"| attention | {model.attention}"
            + (f" ({model.luong_score})" if model.attention == "luong" else "")
            + (", input feeding" if model.input_feeding else "")
            + " |",
            f"| embedding / hidden | {model.embedding_dim} / {model.hidden_size} |",
            f"| tokenizer | {data.tokenizer} ({data.source_vocab_size} / "
            f"{data.target_vocab_size}) |",
            f"| corpus | {data.corpus}" + (" (reversed)" if data.reverse else "") + " |",
            "",
            gate_note(rows, model.cell),
        ]
    )
    metrics = registry.metrics(run)
    epochs = plots.epoch_rows(metrics, RunPaths(run.path).history)
    figure = plots.training_figure(epochs, title=run.name)
    return summary, rows, figure, metrics_markdown(metrics, epochs)


def with_separators(rows: list[list[Any]]) -> list[list[Any]]:
    """Parameter rows as shown: counts with thousands separators (1,234,567)."""
    return [[row[0], *(f"{count:,}" for count in row[1:])] for row in rows]


def parameter_markdown(rows: list[list[Any]]) -> str:
    """The parameter rows as a Markdown table, counts with thousands separators."""
    lines = [
        "**Trainable parameters per part** (GRU: 3 gate blocks, LSTM: 4)",
        "",
        "| part | GRU | LSTM | RNN |",
        "|---|--:|--:|--:|",
    ]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in with_separators(rows)]
    return "\n".join(lines)


def model_view(registry: Registry, run_name: Any):
    """``model_info`` as the tab shows it (a parameter table with separated counts)."""
    summary, rows, figure, metrics = model_info(registry, run_name)
    return summary, parameter_markdown(rows), figure, metrics


def model_tab_opened(registry: Registry, run_name: Any):
    """``model_info`` for the selected run, or (with no runs) what to do: opening a tab
    shows no error."""
    if not registry.runs("all"):
        notice = f"**No trained run in `{registry.models_dir}` yet.** Train one with:"
        return f"{notice}\n\n```\n{TRAIN_TRANSLATION}\n```", "", None, ""
    return model_view(registry, run_name)


def metrics_markdown(metrics: dict[str, Any], epochs: list[dict[str, float]]) -> str:
    best = metrics.get("best") or {}
    lines = ["| metric | value |", "|---|---|"]

    def add(label: str, value: Any, fmt: str = "{:.2f}") -> None:
        if isinstance(value, int | float):
            lines.append(f"| {label} | {fmt.format(value)} |")

    add("best epoch", best.get("epoch"), "{:.0f}")
    add("dev BLEU (best epoch)", best.get("dev_bleu"))
    add("dev chrF (best epoch)", best.get("dev_chrf"))
    add("dev loss (best epoch)", best.get("val_loss"), "{:.3f}")
    add("dev perplexity", metrics.get("perplexity", best.get("val_perplexity")))
    add("epochs run", len(epochs), "{:.0f}")
    add("training time (min)", (metrics.get("train_seconds") or 0) / 60 or None, "{:.1f}")
    pairs = metrics.get("pairs") or {}
    if pairs:
        shown = ", ".join(f"{k} {v:,}" for k, v in sorted(pairs.items()))
        lines.append(f"| sentence pairs | {shown} |")
    if "finished" in metrics:
        lines.append(f"| finished | {'yes' if metrics['finished'] else 'no'} |")
    if len(lines) == 2:
        return "No metrics recorded for this run yet (metrics.json is missing or empty)."
    return "\n".join(lines)


def build_model_tab(registry: Registry, tab: gr.Tab) -> gr.Dropdown:
    """The components and events of ``tab`` (call inside it). Returns its run dropdown
    (the app refreshes its choices)."""
    choices = registry.choices("all")
    run = gr.Dropdown(
        choices,
        value=choices[0][1] if choices else None,
        label="run",
        elem_id="model-run",
        **RUN_PICKER,
    )
    with gr.Row():  # side by side on a wide screen, one under the other on a phone
        with gr.Column(min_width=320):
            summary = gr.Markdown(elem_id="model-summary")
        with gr.Column(min_width=320):
            metrics = gr.Markdown(elem_id="model-metrics")
    # A Markdown table, not a Dataframe: it fits a phone's width (the Dataframe's fixed
    # column widths hid the last columns behind a sideways scroll).
    params = gr.Markdown(elem_id="model-params")
    curves = gr.Plot(
        label="training curves (on a phone they scroll sideways)", elem_id="model-curves"
    )
    outputs = [summary, params, curves, metrics]
    # No "Show" button: the tab fills when opened and when another run is chosen.
    # With no run (a page load over an empty folder sets it to none) it says what to do:
    # an error toast on every page load would read as a fault.
    opened = functools.partial(model_tab_opened, registry)
    run.change(opened, [run], outputs, api_name="model_info")
    # Filled when the tab opens: an empty tab waiting for a click reads as broken.
    tab.select(opened, [run], outputs, api_visibility="private")
    return run
