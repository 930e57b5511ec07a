"""Gradio app: translate, chat and inspect trained runs.

``python -m apps.web [--models runs/] [--host 127.0.0.1] [--port N] [--share]
[--max-input-chars 1000] [--concurrency 2]``

Thin by design: the handlers below call ``Translator``, ``ChatSession``,
``seq2seq.search.options``, ``parameter_counts_per_cell`` and ``read_metrics`` and only
turn their results into components. Handlers are plain module-level functions that take
a ``Registry`` first, so tests call them without a server; ``build_app`` binds them to one
models folder.

Safe defaults: it listens on 127.0.0.1, makes no share link unless ``--share``, sends no
analytics, caps the input length, and accepts run names only from the models folder.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported

import argparse  # noqa: E402
import functools  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402

from apps import plots  # noqa: E402
from apps.jobs import TrainingJobs  # noqa: E402
from apps.registry import (  # noqa: E402
    TRAIN_CHAT,
    TRAIN_TRANSLATION,
    Registry,
    RunInfo,
    UnknownModelError,
)
from apps.study_tab import build_study_tab  # noqa: E402
from apps.training_tab import build_training_tab, keep_fresh, training_banner  # noqa: E402
from seq2seq.cli import quiet  # noqa: E402
from seq2seq.config import DEFAULT_MMI_GAMMA, ConfigError  # noqa: E402
from seq2seq.runs import RunPaths  # noqa: E402
from seq2seq.search.options import METHODS, control_overrides  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_MAX_INPUT_CHARS = 1000
PRELOAD_WAIT_S = 60  # longest the app waits for its first model before opening anyway
CHAT_EXAMPLES = ["Hi! How are you?", "What are you doing this weekend?", "Thank you so much."]
TRANSLATE_EXAMPLES = ["Hola, ¿cómo estás?", "Tengo hambre.", "¿Dónde está la estación?"]

# Layout fixes Gradio's defaults need (pass to launch(css=CSS); checked in a real browser
# at 1280 and 390 px by tests/test_browser.py): outputs keep their place while empty (no
# jumping), the heat map scrolls sideways inside its box on a phone instead of shrinking
# to unreadable, and commands in notices wrap instead of widening the page.
CSS = """
#header { align-items: center; flex-wrap: wrap; }
#header h1 { margin-bottom: 0.2em; }
#title { min-width: min(100%, 420px) !important; }
#translate-notes { min-height: 1.6em; }
#attention-plot { min-height: 320px; padding-top: 2em; }
#attention-plot .matplotlib { justify-content: flex-start; height: auto; overflow-x: auto; }
#attention-plot img { margin: 0 auto; max-width: 100%; min-width: 560px; height: auto;
  max-height: none; }
.prose pre, .prose pre code { white-space: pre-wrap !important; word-break: break-word; }
@media (max-width: 640px) {
  #header h1 { font-size: 1.6em; }
}
"""


# ---------------------------------------------------------------------------------------
# Shared helpers


def refuse(message: str) -> gr.Error:
    """The error shown to the user for a refused input or setting. The server log gets
    one line (not a traceback: a refusal is not a server fault)."""
    log.warning("refused: %s", message.replace("\n", " ")[:300])
    return gr.Error(message, print_exception=False)


def check_text(text: Any, limit: int, what: str = "sentence") -> str:
    """The user's text, or a gr.Error that says what is wrong (empty, too long)."""
    if not isinstance(text, str) or not text.strip():
        raise refuse(f"Type a {what} first: the input is empty.")
    if len(text) > limit:
        raise refuse(
            f"The input is {len(text)} characters long; the limit is {limit} characters. "
            "Shorten it and try again."
        )
    return text


def find_run(registry: Registry, name: Any, kind: str) -> RunInfo:
    try:
        return registry.resolve(name, kind)
    except UnknownModelError as error:
        raise refuse(str(error)) from error


def load_translator(registry: Registry, run: RunInfo):
    try:
        return registry.translator(run)
    except ValueError as error:  # RunError (without server paths): damaged or incompatible
        raise refuse(f"Could not load {run.name}: {error}") from error


def decode_overrides(method: Any, *controls: Any) -> dict[str, Any]:
    """The decoding controls as ``DecodeConfig`` overrides (``seq2seq.search.options``)."""
    try:
        return control_overrides(method, *controls)
    except ConfigError as error:
        raise refuse(f"Invalid decoding setting: {error}") from error


def run_translation(translator, source: str, overrides: dict[str, Any]):
    from seq2seq.inference.translator import InputError

    try:
        return translator.translate_one(source, **overrides)
    except InputError as error:
        raise refuse(str(error)) from error
    except ValueError as error:  # ConfigError: a decoding setting out of range
        raise refuse(f"Invalid decoding setting: {error}") from error


def message_text(content: Any) -> str:
    """Plain text of a chat message's content (a string or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", "")) if content.get("type", "text") == "text" else ""
    if isinstance(content, list | tuple):
        return " ".join(t for t in (message_text(part) for part in content) if t)
    return ""


def history_turns(history: Any) -> list[str]:
    """The conversation so far as alternating turns (user, bot, user, ...)."""
    turns = []
    for message in history or []:
        if isinstance(message, dict):
            turns.append(message_text(message.get("content", "")))
        elif isinstance(message, list | tuple):  # a legacy [user, bot] pair
            turns.extend(message_text(part) for part in message if part is not None)
    return turns


# ---------------------------------------------------------------------------------------
# Handlers


def translate(
    registry: Registry,
    text: str,
    run_name: str,
    method: str = "greedy",
    beam_size: int = 5,
    n_best: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    max_length: int = 60,
):
    """-> (translation text, n-best rows [rank, text, score], attention figure, notes)."""
    text = check_text(text, registry.max_input_chars)
    run = find_run(registry, run_name, "translation")
    overrides = decode_overrides(method, beam_size, n_best, temperature, top_k, top_p, max_length)
    translator = load_translator(registry, run)
    started = time.perf_counter()
    result = run_translation(translator, text, overrides)
    elapsed = time.perf_counter() - started
    rows = [
        [i + 1, hypothesis, round(float(score), 4)]
        for i, (hypothesis, score) in enumerate(result.n_best or [(result.text, result.score)])
    ]
    figure = plots.attention_figure(result.attention, result.source_tokens, result.tokens)
    notes = f"{run.label} · {method} · score {result.score:.3f} · {elapsed * 1000:.0f} ms"
    if result.truncated:
        notes += (
            f" · ⚠️ the input was cut to {run.config.data.max_source_length} tokens "
            "(the longest the model was trained on)"
        )
    return result.text, rows, figure, notes


THINKING = "💭 thinking…"  # shown while beam search or MMI reranking runs (no stream)


def chat(
    registry: Registry,
    message: str,
    history: list,
    run_name: str,
    method: str = "sample",
    beam_size: int = 5,
    n_best: int = 1,
    temperature: float = 0.8,
    top_k: int = 0,
    top_p: float = 0.9,
    max_length: int = 40,
    mmi: bool = False,
    mmi_lambda: float = 1.0,
    mmi_gamma: float = DEFAULT_MMI_GAMMA,
    mmi_candidates: int = 10,
) -> Iterator[str]:
    """Streams the reply as the decoder produces it (greedy search and sampling, chunk by
    chunk: ``ChatSession.stream_reply``); beam search and MMI reranking show "thinking…"
    until the whole reply is found. The source is built from the visible history. Stop
    cancels this generator: decoding ends within one chunk and the partial reply stays in
    the conversation."""
    from seq2seq.data.dialogue import ChatSession
    from seq2seq.inference.translator import InputError
    from seq2seq.search.searcher import STREAMABLE

    message = check_text(message, registry.max_input_chars, what="message")
    run = find_run(registry, run_name, "dialogue")
    controls = (beam_size, n_best, temperature, top_k, top_p, max_length)
    overrides = decode_overrides(method, *controls, mmi, mmi_lambda, mmi_gamma, mmi_candidates)
    translator = load_translator(registry, run)
    if mmi and translator.backward_dir is None:
        raise refuse(
            f"MMI reranking needs the backward model {run.name}-backward beside {run.name} "
            f"in the models folder: train it with `python -m seq2seq.train --preset "
            f"chat-backward --output {registry.models_dir.name}/{run.name}-backward`."
        )
    session = ChatSession(translator)
    session.history = history_turns(history)
    if method not in STREAMABLE or mmi:
        yield THINKING
    try:
        for text in session.stream_reply(message, **overrides):
            yield text or "…"
    except InputError as error:
        raise refuse(str(error)) from error
    except ValueError as error:  # ConfigError; RunError: a damaged backward run
        raise refuse(f"Invalid decoding setting: {error}") from error


def backward_of(registry: Registry, run_name: Any):
    """The backward run beside the chat run ``run_name`` (``RUN-backward``), or None."""
    from seq2seq.inference.mmi import find_backward

    try:
        run = registry.resolve(run_name, "dialogue")
    except UnknownModelError:
        return None
    return find_backward(run.path)


def mmi_controls(registry: Registry, run_name: Any) -> list[dict[str, Any]]:
    """Updates of the MMI controls: shown only for a chat run with a backward model
    beside it; hidden, the switch is off, so MMI never applies without one."""
    backward = backward_of(registry, run_name)
    if backward is None:
        return [gr.update(visible=False, value=False), *(gr.update(visible=False),) * 3]
    label = f"rerank by MMI (backward model: {backward.name})"
    return [gr.update(visible=True, label=label), *(gr.update(visible=True),) * 3]


def prepare_model(registry: Registry, run_name: Any) -> None:
    """Load the chosen run in the background as soon as it is picked (no output): the
    first translation then finds it loaded."""
    try:
        registry.preload([registry.resolve(run_name, "all")])
    except UnknownModelError:
        pass  # the translate button reports it


def parameter_table(registry: Registry, run: RunInfo) -> list[list[Any]]:
    """Rows [part, gru, lstm, rnn]: this run's counts and the same shape with other cells."""
    from seq2seq.model import CELLS, parameter_counts_per_cell

    translator = load_translator(registry, run)
    counts = registry.cached(run, "parameters", lambda: parameter_counts_per_cell(translator.model))
    parts = list(counts[run.config.model.cell])
    return [[part, *(counts[cell].get(part, 0) for cell in CELLS)] for part in parts]


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


def model_tab_opened(registry: Registry, run_name: Any):
    """``model_info`` for the selected run, or (with no runs) what to do: opening a tab
    shows no error."""
    if not registry.runs("all"):
        notice = f"**No trained run in `{registry.models_dir}` yet.** Train one with:"
        return f"{notice}\n\n```\n{TRAIN_TRANSLATION}\n```", [], None, ""
    return model_info(registry, run_name)


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


def empty_notice(registry: Registry) -> str:
    """What to do when the models folder has no (translation/chat) runs, and which run
    folders cannot be used and why; '' when there is nothing to say."""
    translation, dialogue = registry.runs("translation"), registry.runs("dialogue")
    lines = []
    if not translation:
        lines.append(
            f"**No trained translation model in `{registry.models_dir}`.** Train one "
            f"(a few minutes on a CPU) with:\n\n```\n{TRAIN_TRANSLATION}\n```"
        )
    if not dialogue:
        lines.append(
            f"**No trained chat model in `{registry.models_dir}`.** Train the chat "
            f"quickstart with:\n\n```\n{TRAIN_CHAT}\n```"
        )
    if lines:
        lines.append("Then reload this page (or press *Refresh model list*).")
    broken = registry.broken()
    if broken:
        rows = "\n".join(f"- `{run.name}`: {run.reason}" for run in broken)
        lines.append(f"**Run folders not offered** (still training, or damaged):\n\n{rows}")
    return "\n\n".join(lines)


def refresh(registry: Registry):
    """New choices for the three dropdowns and the notice, read from the models folder."""

    def dropdown(kind: str) -> gr.Dropdown:
        choices = registry.choices(kind)
        return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)

    notice = empty_notice(registry)
    return (
        gr.Markdown(notice, visible=bool(notice)),
        dropdown("translation"),
        dropdown("dialogue"),
        dropdown("all"),
    )


# ---------------------------------------------------------------------------------------
# Layout


def decoding_controls(default_method: str, render: bool = True) -> list[gr.components.Component]:
    return [
        gr.Radio(list(METHODS), value=default_method, label="decoding method", render=render),
        gr.Slider(1, 16, value=5, step=1, label="beam size (beam)", render=render),
        gr.Slider(
            1,
            16,
            value=3 if default_method == "beam" else 1,
            step=1,
            label="n-best (beam; ≤ beam size)",
            render=render,
        ),
        gr.Slider(0.1, 2.0, value=0.8, step=0.05, label="temperature (sample)", render=render),
        gr.Slider(0, 100, value=0, step=1, label="top-k (sample; 0 = off)", render=render),
        gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="top-p (sample)", render=render),
        gr.Slider(
            1,
            200,
            value=60 if default_method != "sample" else 40,
            step=1,
            label="max output length (tokens)",
            render=render,
        ),
    ]


def build_app(
    models_dir: str | Path,
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
    jobs: TrainingJobs | None = None,
) -> gr.Blocks:
    """The whole app for one models folder (call ``.queue()``/``.launch()`` on it);
    ``jobs``: the trainings it starts and follows (the quickstart passes its own)."""
    registry = Registry(models_dir, max_input_chars=max_input_chars)
    jobs = jobs or TrainingJobs(registry.models_dir)
    translation_choices = registry.choices("translation")
    dialogue_choices = registry.choices("dialogue")
    all_choices = registry.choices("all")
    notice_text = empty_notice(registry)
    # The runs the tabs open on are loaded (and their searches built) at once, in the background.
    registry.preload_at_start(
        [runs[0] for runs in (registry.runs("translation"), registry.runs("dialogue")) if runs]
    )

    def first(choices):
        return choices[0][1] if choices else None

    with gr.Blocks(title="seq2seq: translate and chat") as demo:
        with gr.Row(elem_id="header"):
            gr.Markdown(
                "# seq2seq\nRecurrent encoder-decoder models (GRU/LSTM + attention) trained "
                f"with this toolkit. Models folder: `{registry.models_dir}`.",
                elem_id="title",
            )
            refresh_btn = gr.Button(
                "Refresh model list", size="sm", scale=0, min_width=170, elem_id="refresh-models"
            )
        notice = gr.Markdown(notice_text, visible=bool(notice_text), elem_id="empty-notice")
        banner = training_banner(jobs)
        with gr.Tabs(overflow_behavior="wrap"):  # every tab in sight on a phone, no "More" menu
            with gr.Tab("Translate", id="translate", elem_id="translate-tab"):
                with gr.Row(equal_height=False):
                    with gr.Column(min_width=300):
                        t_model = gr.Dropdown(
                            translation_choices,
                            value=first(translation_choices),
                            label="translation model",
                            elem_id="translate-model",
                        )
                        source = gr.Textbox(
                            lines=3,
                            label=f"text (up to {max_input_chars} characters)",
                            placeholder="Type a sentence…",
                            elem_id="translate-input",
                        )
                        go = gr.Button(
                            "Translate",
                            variant="primary",
                            interactive=bool(translation_choices),  # the notice says why not
                            elem_id="translate-btn",
                        )
                        gr.Examples(TRANSLATE_EXAMPLES, inputs=[source])
                        with gr.Accordion("decoding", open=False, elem_id="translate-decoding"):
                            t_controls = decoding_controls("greedy")
                    with gr.Column(min_width=300):
                        output = gr.Textbox(
                            label="translation",
                            lines=3,
                            interactive=False,
                            buttons=["copy"],
                            elem_id="translate-output",
                        )
                        notes = gr.Markdown(elem_id="translate-notes")
                        nbest = gr.Dataframe(
                            headers=["rank", "translation", "score"],
                            label="n-best list",
                            interactive=False,
                            wrap=True,
                            column_widths=["17%", "58%", "25%"],
                            elem_id="translate-nbest",
                        )
                heatmap = gr.Plot(
                    label="attention: the source pieces each output piece looked at",
                    elem_id="attention-plot",
                )
                t_inputs = [source, t_model, *t_controls]
                t_outputs = [output, nbest, heatmap, notes]
                t_fn = functools.partial(translate, registry)
                go.click(t_fn, t_inputs, t_outputs, api_name="translate")
                source.submit(t_fn, t_inputs, t_outputs, api_visibility="private")
                t_model.change(
                    lambda name: gr.Button(interactive=bool(name)),
                    [t_model],
                    [go],
                    api_visibility="private",
                    queue=False,
                )
                t_model.change(
                    functools.partial(prepare_model, registry),
                    [t_model],
                    None,
                    api_visibility="private",
                    queue=False,
                )

            with gr.Tab("Chat", id="chat", elem_id="chat-tab"):
                c_model = gr.Dropdown(
                    dialogue_choices,
                    value=first(dialogue_choices),
                    label="chat model",
                    elem_id="chat-model",
                )
                backward = backward_of(registry, first(dialogue_choices))
                mmi_label = f"rerank by MMI (backward model: {backward.name})" if backward else ""
                has_mmi = {"visible": backward is not None, "render": False}
                c_mmi = [
                    gr.Checkbox(value=False, label=mmi_label, elem_id="chat-mmi", **has_mmi),
                    gr.Slider(0, 2, value=1.0, step=0.05, label="MMI λ (backward)", **has_mmi),
                    gr.Slider(
                        -1,
                        5,
                        value=DEFAULT_MMI_GAMMA,
                        step=0.05,
                        label="MMI γ (per token)",
                        **has_mmi,
                    ),
                    gr.Slider(2, 20, value=10, step=1, label="MMI candidates", **has_mmi),
                ]
                gr.ChatInterface(
                    functools.partial(chat, registry),
                    additional_inputs=[c_model, *decoding_controls("sample", render=False), *c_mmi],
                    # An Accordion object (render=False): ChatInterface renders its own copy,
                    # closed like the translate tab's; a rendered one would show twice.
                    additional_inputs_accordion=gr.Accordion(
                        "decoding", open=False, render=False, elem_id="chat-decoding"
                    ),
                    examples=[[example] for example in CHAT_EXAMPLES],
                    api_name="chat",
                    save_history=False,
                    fill_height=False,
                    stop_btn="Stop",
                )
                mmi_fn = functools.partial(mmi_controls, registry)
                c_model.change(mmi_fn, [c_model], c_mmi, api_visibility="private")

            with gr.Tab("Model", id="model", elem_id="model-tab") as model_tab:
                m_model = gr.Dropdown(
                    all_choices, value=first(all_choices), label="run", elem_id="model-run"
                )
                with gr.Row():
                    summary = gr.Markdown()
                    metrics = gr.Markdown()
                params = gr.Dataframe(
                    headers=["part", "gru", "lstm", "rnn"],
                    label="trainable parameters per part (GRU: 3 gate blocks, LSTM: 4)",
                    interactive=False,
                )
                curves = gr.Plot(label="training curves")
                m_fn = functools.partial(model_info, registry)
                # No "Show" button: the tab fills when opened and when another run is chosen.
                m_model.change(
                    m_fn, [m_model], [summary, params, curves, metrics], api_name="model_info"
                )
                # Filled when the tab opens: an empty tab waiting for a click reads as broken.
                model_tab.select(
                    functools.partial(model_tab_opened, registry),
                    [m_model],
                    [summary, params, curves, metrics],
                    api_visibility="private",
                )

            with gr.Tab("Study", id="study", elem_id="study-tab"):
                build_study_tab(registry.models_dir)

            with gr.Tab("Training", id="training", elem_id="training-tab"):
                build_training_tab(jobs)

        r_fn = functools.partial(refresh, registry)
        refresh_btn.click(r_fn, None, [notice, t_model, c_model, m_model], api_visibility="private")
        keep_fresh(registry, jobs, banner, r_fn, [notice, t_model, c_model, m_model])
    # Opened only once the first model is loaded (its load overlapped building the UI).
    if not registry.wait_for_first(PRELOAD_WAIT_S):
        log.warning("the first model is still loading after %d s; opening anyway", PRELOAD_WAIT_S)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m apps.web", description="Translate, chat and inspect trained runs."
    )
    parser.add_argument("--models", default="runs", help="folder of run folders (default runs/)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", help="make a public gradio.live link")
    parser.add_argument(
        "--max-input-chars",
        type=int,
        default=DEFAULT_MAX_INPUT_CHARS,
        help="longest accepted input (default 1000)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="requests decoded at the same time (default 2)"
    )
    quiet.add_verbose_argument(parser)
    args = parser.parse_args(argv)
    if args.max_input_chars < 1:
        parser.error("--max-input-chars must be >= 1")
    if args.concurrency < 1:
        parser.error("--concurrency must be >= 1")
    return args


def main(argv: list[str] | None = None, jobs: TrainingJobs | None = None) -> int:
    args = parse_args(argv)
    quiet.setup(args.verbose)  # before TensorFlow loads (in the background preload)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "listening on %s: the app has no login; anyone who can reach it can use it", args.host
        )
    jobs = jobs or TrainingJobs(args.models)
    demo = build_app(args.models, max_input_chars=args.max_input_chars, jobs=jobs)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    try:
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            ssr_mode=False,
            mcp_server=False,
            show_error=False,
            footer_links=["api"],
            css=CSS,
        )
    finally:
        jobs.cancel()  # a training the app started stops with it, resumable
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
