"""The web app's Chat tab: a conversation with a chat run, streamed as it is decoded."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import gradio as gr

from apps.common import (
    CHAT_START,
    MMI_LAMBDA_START,
    RUN_PICKER,
    check_text,
    decode_settings,
    decoding_controls,
    find_run,
    keep_quality_fresh,
    load_translator,
    refuse,
    show_method_sliders,
)
from apps.registry import Registry, UnknownModelError

CHAT_EXAMPLES = ["Hi! How are you?", "What are you doing this weekend?", "Thank you so much."]
START = CHAT_START
THINKING = "(thinking…)"  # shown while beam search or MMI reranking runs (no stream); no emoji:
# Debian's Chromium has no emoji font


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


def chat(
    registry: Registry,
    message: str,
    history: list,
    run_name: str,
    method: str = START.method,
    beam_size: int = START.beam_size,
    n_best: int = START.n_best,
    temperature: float = START.temperature,
    top_k: int = START.top_k,
    top_p: float = START.top_p,
    max_length: int = START.max_length,
    mmi: bool = False,
    mmi_lambda: float = MMI_LAMBDA_START,
    mmi_gamma: float = START.mmi_gamma,
    mmi_candidates: int = START.mmi_candidates,
) -> Iterator[str]:
    """Streams the reply as the decoder produces it (greedy search and sampling, chunk by
    chunk: ``ChatSession.stream_reply``); beam search and MMI reranking show "thinking…"
    until the whole reply is found. The source is built from the visible history. Stop
    cancels this generator: decoding ends within one chunk and the partial reply stays in
    the conversation."""
    from seq2seq.data.dialogue import ChatSession
    from seq2seq.inference.translator import STREAMABLE, InputError

    message = check_text(message, registry.max_input_chars, what="message")
    run = find_run(registry, run_name, "dialogue")
    controls = (beam_size, n_best, temperature, top_k, top_p, max_length)
    decode = decode_settings(run, method, *controls, mmi, mmi_lambda, mmi_gamma, mmi_candidates)
    translator = load_translator(registry, run)
    if mmi and translator.backward_dir is None:
        raise refuse(
            f"MMI reranking needs the backward model {run.name}-backward beside {run.name} "
            f"in the models folder: train it with `{train_backward_command(registry, run.name)}`."
        )
    session = ChatSession(translator)
    session.history = history_turns(history)
    if method not in STREAMABLE or mmi:
        yield THINKING
    try:
        for text in session.stream_reply(message, decode):
            yield text or "…"
    except InputError as error:
        raise refuse(str(error)) from error
    except ValueError as error:  # RunError: a damaged backward run
        raise refuse(f"Invalid decoding setting: {error}") from error


def backward_of(registry: Registry, run_name: Any):
    """The backward run beside the chat run ``run_name`` (``RUN-backward``), or None."""
    from seq2seq.inference.mmi import find_backward

    try:
        run = registry.resolve(run_name, "dialogue")
    except UnknownModelError:
        return None
    return find_backward(run.path)


def train_backward_command(registry: Registry, run_name: Any) -> str:
    """The command that trains the backward model MMI needs beside the chat run."""
    return (
        f"python -m seq2seq.train --preset chat-backward "
        f"--output {registry.models_dir.name}/{run_name}-backward"
    )


def mmi_switch(registry: Registry, run_name: Any) -> dict[str, Any]:
    """The MMI switch's settings for the chat run ``run_name``: usable with a backward model
    beside it; without one, off and disabled, its one line saying why and the command
    that trains one (no chat run: hidden)."""
    backward = backward_of(registry, run_name)
    if backward is not None:
        label = f"rerank by MMI (backward model: {backward.name})"
        return {"visible": True, "interactive": True, "label": label, "info": None}
    if not isinstance(run_name, str) or not run_name:
        return {"visible": False, "value": False}
    command = train_backward_command(registry, run_name)
    info = f"No backward model beside {run_name}; train one with: {command}"
    label = "rerank by MMI (unavailable)"
    return {"visible": True, "interactive": False, "value": False, "label": label, "info": info}


def mmi_controls(registry: Registry, run_name: Any) -> list[dict[str, Any]]:
    """Updates of the MMI controls: the switch and its sliders for a chat run with a
    backward model beside it; otherwise the switch, off and disabled, says why and how to
    train one, and the sliders are hidden (so MMI never applies without one)."""
    switch = mmi_switch(registry, run_name)
    usable = switch.get("interactive", False)
    return [gr.update(**switch), *(gr.update(visible=usable),) * 3]


def chat_choices(registry: Registry) -> list[tuple[str, str]]:
    """(label, name) of the chat runs, labels short enough for a phone's dropdown:
    ``quickstart-chat (daily_dialog, 2 turns)``; the tab says they are chat runs, and the
    quality line under the dropdown says when one is still training."""
    choices = []
    for run in registry.runs("dialogue"):
        turns = run.config.data.context_turns
        context = f", {turns} turn{'s' if turns != 1 else ''}" if turns else ""
        choices.append((f"{run.name} ({run.config.data.corpus}{context})", run.name))
    return choices


def build_chat_tab(registry: Registry) -> gr.Dropdown:
    """The tab's components and events; call inside ``gr.Tab``. Returns its model
    dropdown (the app refreshes its choices)."""
    choices = chat_choices(registry)
    first = choices[0][1] if choices else None
    model = gr.Dropdown(
        choices, value=first, label="chat model", elem_id="chat-model", **RUN_PICKER
    )
    # How good the chosen model is (metrics.json), read again on each page load, and every
    # few seconds (a model still training gets better: its line says which epoch is in use).
    quality = gr.Markdown(lambda: registry.quality(None, "dialogue"), elem_id="chat-quality")
    keep_quality_fresh(registry, "dialogue", model, quality)
    switch = {"value": False, "visible": False, "label": "rerank by MMI"}
    switch.update(mmi_switch(registry, first))
    has_mmi = {"visible": backward_of(registry, first) is not None, "render": False}
    mmi = [
        gr.Checkbox(elem_id="chat-mmi", render=False, **switch),
        gr.Slider(0, 2, value=MMI_LAMBDA_START, step=0.05, label="MMI λ (backward)", **has_mmi),
        gr.Slider(-1, 5, value=START.mmi_gamma, step=0.05, label="MMI γ (per token)", **has_mmi),
        gr.Slider(2, 20, value=START.mmi_candidates, step=1, label="MMI candidates", **has_mmi),
    ]
    controls = decoding_controls(CHAT_START, render=False)
    interface = gr.ChatInterface(
        functools.partial(chat, registry),
        additional_inputs=[model, *controls, *mmi],
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
    model.change(functools.partial(mmi_controls, registry), [model], mmi, api_visibility="private")
    model.change(
        lambda name: registry.quality(name, "dialogue"),
        [model],
        [quality],
        api_visibility="private",
        queue=False,
    )
    show_method_sliders(controls)
    unlock_after_errors(interface)
    return model


def after_error(message: Any, history: Any):
    """The chat after a refused or failed message: the textbox usable again (not left
    disabled with a Stop button), and a message that got no reply back in it, for another
    try, instead of in the conversation without an answer."""
    history = list(history or [])
    text = ""
    if history and isinstance(history[-1], dict) and history[-1].get("role") == "user":
        history.pop()
        text = message if isinstance(message, str) else message_text(message)
    textbox = gr.Textbox(value=text, interactive=True, submit_btn=True, stop_btn=False)
    return textbox, history, history, history


def unlock_after_errors(interface: gr.ChatInterface) -> None:
    """Undo the lock ChatInterface puts on its textbox when the reply fails.

    ChatInterface disables the textbox and shows Stop while a reply runs, and frees them in
    ``.then()`` steps after the reply. Gradio's front end (6.x) runs ``.then()`` steps only
    after a success, not after an error, so a raised ``gr.Error`` (no model yet, an empty
    or too long message, a bad setting) left the chat disabled until the page was
    reloaded. Here every reply step of this interface gets a ``failure`` step that frees
    the textbox (``after_error``)."""
    from gradio.context import Context
    from gradio.events import EventListener

    root = Context.root_block or interface
    steps = [
        index
        for index, block_fn in root.fns.items()
        if getattr(block_fn.fn, "__name__", "") == "_submit_fn"
        and interface.chatbot in block_fn.outputs
    ]
    chats = [interface.chatbot, interface.chatbot_state, interface.chatbot_value]
    outputs = [interface.textbox, *chats]
    for index in steps:
        EventListener(
            "failure",
            trigger_after=index,
            trigger_only_on_success=False,
            trigger_only_on_failure=True,
            has_trigger=False,
        ).listener(
            interface.textbox,
            after_error,
            [interface.saved_input, interface.chatbot],
            outputs,
            api_visibility="undocumented",
            queue=False,
        )
