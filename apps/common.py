"""Helpers the app's tabs share: refusing bad input with one clear message, finding and
loading a run by name, and the decoding controls.

Handlers are plain module-level functions that take a ``Registry`` first, so tests call
them without a server; ``apps.web.build_app`` binds them to one models folder.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import gradio as gr

from apps.registry import Registry, RunInfo, UnknownModelError
from seq2seq.config import ConfigError, DecodeConfig
from seq2seq.search.options import METHODS, control_overrides, resolve_decode

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


QUALITY_POLL_S = 5.0  # how often a tab reads its model's quality line again


def fresh_quality(registry: Registry, kind: str, run_name: Any, shown: Any):
    """The quality line of the run ``run_name`` when it differs from the one ``shown`` (a
    run still training saved a better epoch, or finished), else no update."""
    line = registry.quality(run_name, kind)
    return gr.skip() if line == shown else line


def keep_quality_fresh(
    registry: Registry, kind: str, model: gr.Dropdown, quality: gr.Markdown
) -> None:
    """Read the chosen model's quality line again every few seconds (``fresh_quality``)."""
    gr.Timer(QUALITY_POLL_S).tick(
        functools.partial(fresh_quality, registry, kind),
        [model, quality],
        [quality],
        show_progress="hidden",
        api_visibility="private",
        queue=False,
    )


def load_translator(registry: Registry, run: RunInfo):
    try:
        return registry.translator(run)
    except ValueError as error:  # RunError (without server paths): damaged or incompatible
        raise refuse(f"Could not load {run.name}: {error}") from error


# Where each tab's decoding controls (and its handler's defaults) start: DecodeConfig's
# defaults, with sampling a little cooler (temperature 0.8, nucleus 0.9); the chat samples
# its replies and keeps them shorter; MMI's λ starts at 1 when its switch is turned on.
TRANSLATE_START = DecodeConfig(temperature=0.8, top_p=0.9)
CHAT_START = TRANSLATE_START.replace(method="sample", max_length=40)
MMI_LAMBDA_START = 1.0


def decode_overrides(method: Any, *controls: Any) -> dict[str, Any]:
    """The decoding controls as ``DecodeConfig`` overrides (``seq2seq.search.options``)."""
    try:
        return control_overrides(method, *controls)
    except ConfigError as error:
        raise refuse(f"Invalid decoding setting: {error}") from error


def decode_settings(
    run: RunInfo, method: Any, *controls: Any, extra: dict[str, Any] | None = None
) -> DecodeConfig:
    """The decoding controls resolved once, against ``run``'s decode settings, into the
    ``DecodeConfig`` the handler decodes with; ``extra``: a tab's own settings (the
    Translate tab's copy switch). A bad setting is refused in one line."""
    overrides = {**decode_overrides(method, *controls), **(extra or {})}
    try:
        return resolve_decode(run.config, overrides)
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


def decoding_controls(start: DecodeConfig, render: bool = True) -> list[gr.components.Component]:
    """The method radio and its sliders, set to ``start`` (only the chosen method's sliders
    are shown; call ``show_method_sliders`` once they are rendered)."""
    shown = SLIDERS_OF[start.method]
    sliders = (  # (low, high, step, label, value), in the handlers' order
        (1, 16, 1, "beam size", start.beam_size),
        (1, 16, 1, "n-best (≤ beam size)", start.n_best),
        (0.1, 2.0, 0.05, "temperature", start.temperature),
        (0, 100, 1, "top-k (0 = off)", start.top_k),
        (0.05, 1.0, 0.05, "top-p", start.top_p),
        (1, 200, 1, "max output length (tokens)", start.max_length),
    )
    return [
        gr.Radio(list(METHODS), value=start.method, label="decoding method", render=render),
        *(
            gr.Slider(low, high, value=value, step=step, label=label, visible=show, render=render)
            for (low, high, step, label, value), show in zip(sliders, shown, strict=True)
        ),
    ]


def show_method_sliders(controls: list[gr.components.Component]) -> None:
    """Choosing a decoding method shows its sliders and hides the others."""
    method, *sliders = controls
    method.change(sliders_shown, [method], sliders, api_visibility="private", queue=False)
