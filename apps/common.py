"""Helpers the app's tabs share: refusing bad input with one clear message, finding and
loading a run by name, and the decoding controls.

Handlers are plain module-level functions that take a ``Registry`` first, so tests call
them without a server; ``apps.web.build_app`` binds them to one models folder.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from apps.registry import Registry, RunInfo, UnknownModelError
from seq2seq.config import ConfigError
from seq2seq.search.options import METHODS, control_overrides

log = logging.getLogger("apps.web")


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


# The run pickers hand any value on to the handlers, which refuse an unknown name in one
# line (``find_run``); Gradio's own check of a value outside the choices logs a traceback.
RUN_PICKER = {"allow_custom_value": True}


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


def prepare_model(registry: Registry, run_name: Any) -> None:
    """Load the chosen run in the background as soon as it is picked (no output): the
    first translation then finds it loaded."""
    try:
        registry.preload([registry.resolve(run_name, "all")])
    except UnknownModelError:
        pass  # the translate button reports it


# Which decoding sliders each method uses (the others are hidden): beam size, n-best,
# temperature, top-k, top-p, max length.
SLIDERS_OF = {
    "greedy": (False, False, False, False, False, True),
    "beam": (True, True, False, False, False, True),
    "sample": (False, False, True, True, True, True),
}


def sliders_shown(method: Any) -> list[dict[str, Any]]:
    """Visibility updates of the decoding sliders: only those of ``method``."""
    shown = SLIDERS_OF.get(method, (True,) * 6)
    return [gr.update(visible=visible) for visible in shown]


def decoding_controls(default_method: str, render: bool = True) -> list[gr.components.Component]:
    """The method radio and its sliders (only the chosen method's are shown; call
    ``show_method_sliders`` once they are rendered)."""
    shown = SLIDERS_OF[default_method]
    common = {"render": render}
    return [
        gr.Radio(list(METHODS), value=default_method, label="decoding method", **common),
        gr.Slider(1, 16, value=5, step=1, label="beam size", visible=shown[0], **common),
        gr.Slider(
            1,
            16,
            value=3 if default_method == "beam" else 1,
            step=1,
            label="n-best (≤ beam size)",
            visible=shown[1],
            **common,
        ),
        gr.Slider(0.1, 2.0, value=0.8, step=0.05, label="temperature", visible=shown[2], **common),
        gr.Slider(0, 100, value=0, step=1, label="top-k (0 = off)", visible=shown[3], **common),
        gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="top-p", visible=shown[4], **common),
        gr.Slider(
            1,
            200,
            value=60 if default_method != "sample" else 40,
            step=1,
            label="max output length (tokens)",
            visible=shown[5],
            **common,
        ),
    ]


def show_method_sliders(controls: list[gr.components.Component]) -> None:
    """Choosing a decoding method shows its sliders and hides the others."""
    method, *sliders = controls
    method.change(sliders_shown, [method], sliders, api_visibility="private", queue=False)
