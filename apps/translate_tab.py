"""The web app's Translate tab: a sentence in, its translation, the n-best list and the
attention heat map out."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import gradio as gr

from apps import plots
from apps.common import (
    RUN_PICKER,
    TRANSLATE_START,
    check_text,
    decode_settings,
    decoding_controls,
    find_run,
    keep_quality_fresh,
    load_translator,
    prepare_model,
    refuse,
    show_method_sliders,
)
from apps.registry import Registry, UnknownModelError

TRANSLATE_EXAMPLES = ["Hola, ¿cómo estás?", "Tengo hambre.", "¿Dónde está la estación?"]


GLOSSARY_MAX_BYTES = 1_000_000  # an uploaded glossary file, read into the text box
GLOSSARY_NAME = "glossary"  # how errors name the text box's lines ("glossary:3: ...")


def parse_glossary_box(text, method: str):
    """The glossary text box's ``source<TAB>target`` lines, or ``None`` when empty; a bad
    line, or a glossary with another search than beam, is refused in one line."""
    from seq2seq.inference.glossary import GlossaryError, check_method, parse_glossary

    if not isinstance(text, str) or not text.strip():
        return None
    try:
        glossary = parse_glossary(text, GLOSSARY_NAME)
        check_method(GLOSSARY_NAME, method)
    except GlossaryError as error:
        raise refuse(f"Glossary: {error}") from error
    return glossary


def read_glossary_upload(file) -> str:
    """An uploaded glossary file's text, for the text box (UTF-8, at most 1 MB)."""
    if file is None:
        return ""
    path = Path(getattr(file, "name", file))
    try:
        data = path.read_bytes()[: GLOSSARY_MAX_BYTES + 1]
    except OSError as error:
        raise refuse(f"Glossary: the uploaded file cannot be read ({error.strerror})") from error
    if len(data) > GLOSSARY_MAX_BYTES:
        raise refuse("Glossary: the file is over 1 MB; a glossary is a list of terms")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise refuse("Glossary: the file is not UTF-8 text; save it as UTF-8") from error


def run_copies_names(registry: Registry, run_name: Any = None) -> bool:
    """Whether the run (by default the first translation run, which the tab opens on) has
    ``decode.copy_names`` on: where the tab's copy switch starts."""
    try:
        run = registry.resolve(run_name, "translation") if run_name else None
        run = run or registry.runs("translation")[0]
    except (UnknownModelError, IndexError):
        return False
    return bool(run.config.decode.copy_names)


def copy_overrides(method: Any, copy_names: Any) -> dict[str, bool]:
    """The copy switch as a decode override: beam search only (the switch is hidden for the
    other methods, and a run's own ``copy_names`` applies to its beam search only);
    ``None`` keeps the run's setting."""
    if method != "beam" or copy_names is None:
        return {}
    if not isinstance(copy_names, bool):
        raise refuse(f"Invalid decoding setting: copy names is {copy_names!r}; use true or false")
    return {"copy_names": copy_names}


def run_translation(translator, source: str, decode, glossary=None):
    from seq2seq.inference.glossary import GlossaryError
    from seq2seq.inference.translator import InputError
    from seq2seq.runs import RunError

    try:
        return translator.translate_one(source, decode, glossary=glossary)
    except (InputError, RunError) as error:  # RunError: copy_names without the run's words
        raise refuse(str(error)) from error
    except GlossaryError as error:  # a target term the run's vocabulary cannot spell
        raise refuse(f"Glossary: {error}") from error
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
    glossary: str = "",
    copy_names: bool | None = None,
):
    """-> (translation text, n-best rows [rank, text, score], attention figure, notes).

    ``glossary``: ``source term<TAB>target term`` lines (beam search only): the target
    terms of the source terms the text holds are put in the translation. ``copy_names``
    (beam search only): names and numbers the translation lacks are searched again as
    constraints (``decode.copy_names``); ``None`` (a Python caller that leaves it out) keeps
    the run's setting, while the HTTP API, like every control, fills in the switch's start
    value (the first translation run's setting) when it is left out."""
    text = check_text(text, registry.max_input_chars)
    run = find_run(registry, run_name, "translation")
    controls = (beam_size, n_best, temperature, top_k, top_p, max_length)
    decode = decode_settings(run, method, *controls, extra=copy_overrides(method, copy_names))
    terms = parse_glossary_box(glossary, decode.method)
    translator = load_translator(registry, run)
    started = time.perf_counter()
    result = run_translation(translator, text, decode, terms)
    elapsed = time.perf_counter() - started
    rows = [
        [i + 1, hypothesis, round(float(score), 4)]
        for i, (hypothesis, score) in enumerate(result.n_best or [(result.text, result.score)])
    ]
    figure = plots.attention_figure(result.attention, result.source_tokens, result.tokens)
    notes = f"{run.label} · {method} · score {result.score:.3f} · {elapsed * 1000:.0f} ms"
    if decode.copy_names:
        notes += " · copy names: on"
    if terms is not None:
        matched = [term.target for term in terms.matches(text)]
        notes += f" · glossary: {', '.join(matched)}" if matched else " · glossary: no term"
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
            # How good the chosen model is (metrics.json), read again on each page load and
            # every few seconds (a model still training gets better).
            quality = gr.Markdown(
                lambda: registry.quality(None, "translation"), elem_id="translate-quality"
            )
            keep_quality_fresh(registry, "translation", model, quality)
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
                glossary = gr.Textbox(
                    "",  # a default, so API callers may leave it out
                    lines=2,
                    label="glossary (beam search): source term<TAB>target term, one a line",
                    placeholder="médico\tphysician",
                    elem_id="translate-glossary",
                )
                upload = gr.UploadButton(
                    "load a glossary file (.tsv)", file_types=[".tsv", ".txt"], size="sm"
                )
                upload.upload(read_glossary_upload, [upload], [glossary], api_visibility="private")
                # Starts at the chosen run's own setting (read on each page load, and again
                # when another run is picked); shown with beam search only.
                copy_names = gr.Checkbox(
                    functools.partial(run_copies_names, registry),
                    label="copy names and numbers the translation misses (beam search)",
                    visible=TRANSLATE_START.method == "beam",
                    elem_id="translate-copy-names",
                )
                controls[0].change(
                    lambda method: gr.Checkbox(visible=method == "beam"),
                    [controls[0]],
                    [copy_names],
                    api_visibility="private",
                    queue=False,
                )
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
        label="attention: source across, output down",  # one line on a phone
        elem_id="attention-plot",
    )
    gr.Markdown(plots.ATTENTION_LEGEND, elem_id="attention-legend")
    inputs = [source, model, *controls, glossary, copy_names]
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
    model.change(
        lambda name: registry.quality(name, "translation"),
        [model],
        [quality],
        api_visibility="private",
        queue=False,
    )
    model.change(
        functools.partial(run_copies_names, registry),
        [model],
        [copy_names],
        api_visibility="private",
        queue=False,
    )
    return model
