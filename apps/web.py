"""Gradio app: translate, chat and inspect trained runs.

``python -m apps.web [--models runs/] [--host 127.0.0.1] [--port N] [--share]
[--max-input-chars 1000] [--concurrency 2]``

Thin by design: one module per tab (``apps.translate_tab``, ``chat_tab``, ``model_tab``,
``study_tab``, ``training_tab``) holds its handlers, which call ``Translator``,
``ChatSession``, ``seq2seq.search.options``, ``Translator.parameter_table`` and
``read_metrics`` and only turn their results into components. Handlers are plain
module-level functions that take a ``Registry`` first, so tests call them without a server;
``build_app`` binds them to one models folder and keeps the page up to date.

Safe defaults: it listens on 127.0.0.1, makes no share link unless ``--share``, sends no
analytics, caps the input length, and accepts run names only from the models folder.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported

import argparse  # noqa: E402
import functools  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

from apps import host_guard  # noqa: E402
from apps.chat_tab import (  # noqa: E402
    THINKING,
    build_chat_tab,
    chat,
    chat_choices,
    history_turns,
    mmi_controls,
)
from apps.common import decode_overrides  # noqa: E402
from apps.jobs import TrainingJobs  # noqa: E402
from apps.model_tab import build_model_tab, model_info  # noqa: E402
from apps.registry import TRAIN_CHAT, TRAIN_TRANSLATION, Registry  # noqa: E402
from apps.study_tab import build_study_tab  # noqa: E402
from apps.training_tab import (  # noqa: E402
    build_training_tab,
    in_training,
    keep_fresh,
    training_banner,
)
from apps.translate_tab import build_translate_tab, translate  # noqa: E402
from seq2seq.cli import quiet  # noqa: E402

# The handlers tests and scripts call as ``web.translate`` etc. live in the tab modules.
__all__ = [
    "THINKING",
    "build_app",
    "chat",
    "decode_overrides",
    "empty_notice",
    "history_turns",
    "main",
    "mmi_controls",
    "model_info",
    "translate",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_INPUT_CHARS = 1000
PRELOAD_WAIT_S = 60  # longest the app waits for its first model before opening anyway

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
#attention-legend p, #translate-quality p, #chat-quality p { font-size: 0.9em; margin: 0; }
#attention-plot .matplotlib { justify-content: flex-start; height: auto; overflow-x: auto; }
#attention-plot img { margin: 0 auto; max-width: 100%; min-width: 560px; height: auto;
  max-height: none; }
.prose pre, .prose pre code { white-space: pre-wrap !important; word-break: break-word; }
#model-curves .matplotlib, #training-curves .matplotlib { justify-content: flex-start;
  overflow-x: auto; }
#model-curves, #training-curves { padding-top: 2em; }
#model-summary td, #model-summary th, #model-metrics td, #model-metrics th,
#model-params td, #model-params th { word-break: normal; overflow-wrap: normal; }
#model-params td:not(:first-child), #model-params th:not(:first-child) { text-align: right; }
@media (max-width: 640px) {
  #header h1 { font-size: 1.6em; }
  #title p { font-size: 0.85em; margin: 0; }
  #model-curves .matplotlib, #training-curves .matplotlib { display: block; }
  #model-curves img, #training-curves img { width: 640px; min-width: 640px; max-width: none;
    height: auto; max-height: none; margin: 0; }
  #training-runs table, #training-runs th, #training-runs td, #training-runs span {
    font-size: 11px; font-family: var(--font); word-break: normal; overflow-wrap: normal; }
  #training-runs .cell-wrap { padding: 2px 3px; }
  #chat-model input, #translate-model input, #model-run input { font-size: 14px; }
}
"""


def empty_notice(registry: Registry, jobs: TrainingJobs | None = None) -> str:
    """What to do when the models folder has no (translation/chat) runs, and which run
    folders cannot be used and why; '' when there is nothing to say. A kind of model that
    is training (or queued) in ``jobs`` gets no "train one" advice: the banner shows its
    progress, and a second training of it would only compete."""
    coming = in_training(jobs) if jobs is not None else []
    kinds = {run.kind for run in coming}
    translation, dialogue = registry.runs("translation"), registry.runs("dialogue")
    lines = []
    if not translation and "translation" not in kinds:
        lines.append(
            f"**No trained translation model in `{registry.models_dir}`.** Train one "
            f"(a few minutes on a CPU) with:\n\n```\n{TRAIN_TRANSLATION}\n```"
        )
    if not dialogue and "dialogue" not in kinds:
        lines.append(
            f"**No trained chat model in `{registry.models_dir}`.** Train the chat "
            f"quickstart with:\n\n```\n{TRAIN_CHAT}\n```"
        )
    if lines:
        lines.append("Then reload this page (or press *Refresh model list*).")
    names = {run.name for run in coming}
    broken = [run for run in registry.broken() if run.name not in names]
    if broken:
        rows = "\n".join(f"- `{run.name}`: {run.reason}" for run in broken)
        lines.append(f"**Run folders not offered** (still training, or damaged):\n\n{rows}")
    return "\n\n".join(lines)


def refresh(registry: Registry, jobs: TrainingJobs | None = None):
    """New choices for the three dropdowns and the notice, read from the models folder."""

    def dropdown(kind: str) -> gr.Dropdown:
        choices = chat_choices(registry) if kind == "dialogue" else registry.choices(kind)
        return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)

    notice = empty_notice(registry, jobs)
    return (
        gr.Markdown(notice, visible=bool(notice)),
        dropdown("translation"),
        dropdown("dialogue"),
        dropdown("all"),
    )


# ---------------------------------------------------------------------------------------
# Layout


def build_app(
    models_dir: str | Path,
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
    jobs: TrainingJobs | None = None,
) -> gr.Blocks:
    """The whole app for one models folder (call ``.queue()``/``.launch()`` on it);
    ``jobs``: the trainings it starts and follows (the quickstart passes its own)."""
    registry = Registry(models_dir, max_input_chars=max_input_chars)
    jobs = jobs or TrainingJobs(registry.models_dir)
    notice_text = empty_notice(registry, jobs)
    # The runs the tabs open on are loaded (and their searches built) at once, in the background.
    registry.preload_at_start(
        [runs[0] for runs in (registry.runs("translation"), registry.runs("dialogue")) if runs]
    )

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
                t_model = build_translate_tab(registry)
            with gr.Tab("Chat", id="chat", elem_id="chat-tab"):
                c_model = build_chat_tab(registry)
            with gr.Tab("Model", id="model", elem_id="model-tab") as model_tab:
                m_model = build_model_tab(registry, model_tab)
            with gr.Tab("Study", id="study", elem_id="study-tab"):
                build_study_tab(registry.models_dir)
            with gr.Tab("Training", id="training", elem_id="training-tab"):
                build_training_tab(jobs, demo)

        r_fn = functools.partial(refresh, registry, jobs)
        refresh_btn.click(r_fn, None, [notice, t_model, c_model, m_model], api_visibility="private")
        keep_fresh(demo, registry, jobs, banner, r_fn, [notice, t_model, c_model, m_model])
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
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (repeatable; .example.org allows its "
        "subdomains). Loopback names and the --host address are always allowed; others are "
        "refused against DNS rebinding (apps/host_guard.py)",
    )
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
    if not 1 <= args.port <= 65535:
        parser.error(f"--port is {args.port}; allowed: 1 to 65535")
    return args


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, no such address), else None."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        return f"--host {host}: {error}"
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as error:
            return f"cannot listen on {host}:{port}: {error.strerror}; choose another --port"
    return None


def main(
    argv: list[str] | None = None,
    jobs: TrainingJobs | None = None,
    announce: Callable[[str], None] = print,
) -> int:
    """Serve the app until Ctrl-C (exit status 130); ``announce`` prints its address (the
    quickstart passes one that keeps its progress bars intact)."""
    args = parse_args(argv)
    quiet.setup(args.verbose)  # before TensorFlow loads (in the background preload)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "listening on %s: the app has no login; anyone who can reach it can use it", args.host
        )
    problem = port_in_use(args.host, args.port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    jobs = jobs or TrainingJobs(args.models)
    demo = build_app(args.models, max_input_chars=args.max_input_chars, jobs=jobs)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    try:
        _, local_url, share_url = demo.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            ssr_mode=False,
            mcp_server=False,
            show_error=False,
            footer_links=["api"],
            css=CSS,
            app_kwargs=host_guard.app_kwargs(args.host, args.allowed_host, args.share),
            prevent_thread_lock=True,  # serve_until_interrupted blocks instead
            quiet=True,  # the address is printed through ``announce``
        )
        announce(f"Running on local URL:  {local_url}")
        if share_url:
            announce(f"Running on public URL: {share_url}")
        return serve_until_interrupted(demo)
    except KeyboardInterrupt:  # Ctrl-C while the server was still starting
        print("interrupted: closing the app", file=sys.stderr)
        demo.close()
        return 130
    finally:
        jobs.cancel()  # a training the app started stops with it, resumable


def serve_until_interrupted(demo: gr.Blocks) -> int:
    """Serve until Ctrl-C (or SIGTERM made KeyboardInterrupt), then close the server and
    return 130, the status of a program ended by SIGINT. (Gradio's own blocking loop
    catches the interrupt and returns normally, so the app used to exit with 0.)"""
    try:
        while demo.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("interrupted: closing the app", file=sys.stderr)
        demo.close()
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
