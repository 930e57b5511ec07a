"""The web app's Translate tab: a sentence in, its translation, the n-best list and the
attention heat map out."""

from __future__ import annotations

import functools
import time

import gradio as gr

from apps import plots
from apps.common import (
    RUN_PICKER,
    TRANSLATE_START,
    check_text,
    decode_settings,
    decoding_controls,
    find_run,
    load_translator,
    prepare_model,
    refuse,
    show_method_sliders,
)
from apps.registry import Registry

TRANSLATE_EXAMPLES = ["Hola, ¿cómo estás?", "Tengo hambre.", "¿Dónde está la estación?"]


def run_translation(translator, source: str, decode):
    from seq2seq.inference.translator import InputError

    try:
        return translator.translate_one(source, decode)
    except InputError as error:
        raise refuse(str(error)) from error
    except ValueError as error:  # a search that refuses its settings
        raise refuse(f"Invalid decoding setting: {error}") from error


START = TRANSLATE_START


def translate(
    registry: Registry,
    text: str,
    run_name: str,
    method: str = START.method,
    beam_size: int = START.beam_size,
    n_best: int = START.n_best,
    temperature: float = START.temperature,
    top_k: int = START.top_k,
    top_p: float = START.top_p,
    max_length: int = START.max_length,
):
    """-> (translation text, n-best rows [rank, text, score], attention figure, notes)."""
    text = check_text(text, registry.max_input_chars)
    run = find_run(registry, run_name, "translation")
    controls = (beam_size, n_best, temperature, top_k, top_p, max_length)
    decode = decode_settings(run, method, *controls)
    translator = load_translator(registry, run)
    started = time.perf_counter()
    result = run_translation(translator, text, decode)
    elapsed = time.perf_counter() - started
    rows = [
        [i + 1, hypothesis, round(float(score), 4)]
        for i, (hypothesis, score) in enumerate(result.n_best or [(result.text, result.score)])
    ]
    figure = plots.attention_figure(result.attention, result.source_tokens, result.tokens)
    notes = f"{run.label} · {method} · score {result.score:.3f} · {elapsed * 1000:.0f} ms"
    if result.truncated:
        notes += (
            f" · note: the input was cut to {run.config.data.max_source_length} tokens "
            "(the longest the model was trained on)"
        )
    return result.text, rows, figure, notes


def build_translate_tab(registry: Registry) -> gr.Dropdown:
    """The tab's components and events; call inside ``gr.Tab``. Returns its model
    dropdown (the app refreshes its choices)."""
    choices = registry.choices("translation")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=300):
            model = gr.Dropdown(
                choices,
                value=choices[0][1] if choices else None,
                label="translation model",
                elem_id="translate-model",
                **RUN_PICKER,
            )
            source = gr.Textbox(
                lines=3,
                label=f"text (up to {registry.max_input_chars} characters)",
                placeholder="Type a sentence…",
                elem_id="translate-input",
            )
            go = gr.Button(
                "Translate",
                variant="primary",
                interactive=bool(choices),  # the notice says why not
                elem_id="translate-btn",
            )
            gr.Examples(TRANSLATE_EXAMPLES, inputs=[source])
            with gr.Accordion("decoding", open=False, elem_id="translate-decoding"):
                controls = decoding_controls(TRANSLATE_START)
                show_method_sliders(controls)
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
        label="attention: the source pieces (across) each output piece (down) looked at; "
        "· marks a piece that continues a word; a wide map scrolls sideways",
        elem_id="attention-plot",
    )
    inputs = [source, model, *controls]
    outputs = [output, nbest, heatmap, notes]
    fn = functools.partial(translate, registry)
    go.click(fn, inputs, outputs, api_name="translate")
    source.submit(fn, inputs, outputs, api_visibility="private")
    model.change(
        lambda name: gr.Button(interactive=bool(name)),
        [model],
        [go],
        api_visibility="private",
        queue=False,
    )
    model.change(
        functools.partial(prepare_model, registry),
        [model],
        None,
        api_visibility="private",
        queue=False,
    )
    return model
