"""The web app's Training tab: follow every run of the models folder, start one, cancel it.

Every run folder that is training or has trained is listed with its epoch, a step progress
bar, its loss and dev BLEU (or perplexity) curves and the time left, read from the folder
(``apps.run_status``), so a run started from the command line shows up too; a timer keeps
the tab live. A preset can be trained with a small budget (``apps.jobs``: one training at a
time, in a ``nice``d subprocess); Cancel leaves a run that Resume continues. Run names from
the browser are only looked up in the folder listing, and new ones must match a strict
pattern, so nothing is read or written outside the models folder.

``keep_fresh`` also tells the other tabs which models are still training, and refreshes their
model lists the moment a run is complete.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from apps import plots
from apps.common import RUN_PICKER
from apps.jobs import JobError, Request, TrainingJobs
from apps.registry import Registry
from apps.run_status import FINISHED, STARTING, STOPPED, TRAINING, RunStatus, format_duration
from seq2seq.config import RANGES, preset_names
from seq2seq.runs import RunPaths, read_metrics

POLL_S = 2.0
DEFAULT_PRESET = "quickstart"
TABLE_HEADERS = ["run", "state", "epoch", "progress", "loss", "best dev BLEU", "time left"]


def refuse(message: str) -> gr.Error:
    return gr.Error(message, print_exception=False)


def best_bleu(path: Path) -> float | None:
    try:
        best = read_metrics(RunPaths(path)).get("best") or {}
    except (ValueError, OSError):
        return None
    value = best.get("dev_bleu")
    return round(float(value), 1) if isinstance(value, int | float) else None


def runs_table(jobs: TrainingJobs) -> list[list[Any]]:
    """One row per run: name, state, epoch, progress %, loss, best dev BLEU, time left."""
    rows = []
    for status in jobs.statuses():
        left = status.seconds_left
        rows.append(
            [
                status.name,
                status.state,
                f"{status.epoch}/{status.epochs}",
                f"{status.fraction:.0%}",
                round(status.loss, 3) if status.loss is not None else None,
                best_bleu(jobs.models_dir / status.name),
                format_duration(left) if left is not None and status.state == TRAINING else "",
            ]
        )
    return rows


def find_status(jobs: TrainingJobs, name: Any) -> RunStatus:
    """The run called ``name`` from the folder listing (never a path built from it)."""
    statuses = {status.name: status for status in jobs.statuses()}
    if isinstance(name, str) and name in statuses:
        return statuses[name]
    if not statuses:
        raise JobError(f"There is no run in {jobs.models_dir} yet; start one above.")
    shown = repr(name)[:60] if name else "none"
    raise JobError(
        f"The run {shown} is not in the models folder (deleted or renamed?); choose one of: "
        f"{', '.join(statuses)}."
    )


def progress_bar(status: RunStatus) -> str:
    """An HTML progress bar for the current epoch's steps (the whole budget when done)."""
    if status.state == FINISHED:
        value, maximum, text = 1, 1, status.summary
    else:
        maximum = status.steps or 1
        value = min(status.step, maximum)
        text = status.summary
    return (
        f'<div class="training-progress"><progress value="{value}" max="{maximum}" '
        f'style="width:100%;height:1.2em"></progress>'
        f"<div>{html.escape(text)}</div></div>"
    )


def run_detail(jobs: TrainingJobs, name: Any):
    """-> (Markdown summary, progress-bar HTML, training-curves figure) for one run.
    A run that has vanished reads as a message, not an error: the timer asks every few
    seconds and the user may have deleted it on purpose."""
    try:
        status = find_status(jobs, name)
    except JobError as error:
        return str(error), "", plots.training_figure([])
    path = jobs.models_dir / status.name
    try:
        metrics = read_metrics(RunPaths(path))
    except (ValueError, OSError):
        metrics = {}
    rows = plots.epoch_rows(metrics, RunPaths(path).history)
    bleu = best_bleu(path)
    text = f"### {status.name}" + (f"\n\nbest dev BLEU {bleu}" if bleu is not None else "")
    return text, progress_bar(status), plots.training_figure(rows, title=status.name)


def job_text(jobs: TrainingJobs) -> str:
    """What the app's own training is doing (Markdown)."""
    job = jobs.job
    if job is None:
        return "No training started from the app. Pick a preset and a budget, then *Start*."
    outcome = job.outcome
    text = f"**{job.request.name}**: {outcome}."
    if outcome == "running":
        text += " *Cancel* beside it below stops it; the run can be resumed later."
    elif outcome == "cancelled":
        text += " Select it below and press *Resume* to continue from its last epoch."
    elif outcome.startswith("failed"):
        if not job.path.is_dir():
            text += " Its run folder was deleted while it trained."
        tail = job.log_tail()
        if tail:
            text += f"\n\n```\n{tail}\n```"
    if jobs.waiting:
        text += "\n\nWaiting their turn: " + ", ".join(r.name for r in jobs.waiting) + "."
    return text


def start_training(jobs: TrainingJobs, preset: Any, name: Any, epochs: Any, steps: Any) -> str:
    """Start ``preset`` as the run ``name`` with a budget of ``epochs`` (of at most ``steps``
    steps each; 0 or empty: whole passes over the data)."""
    overrides = []
    try:
        if steps not in (None, "", 0):
            allowed = RANGES["train.steps_per_epoch"]
            whole = isinstance(steps, int | float) and float(steps).is_integer()
            if not whole or int(steps) not in allowed:
                raise JobError(
                    "Steps per epoch must be 0 (whole passes over the data) or a whole "
                    f"number from {allowed.low:,} to {allowed.high:,}; got {steps!r}."
                )
            overrides.append(f"train.steps_per_epoch={int(steps)}")
        name = name.strip() if isinstance(name, str) else name
        request = Request(
            name, preset=preset, epochs=epochs_value(epochs), overrides=tuple(overrides)
        )
        jobs.start(request)
    except JobError as error:
        raise refuse(str(error)) from error
    return job_text(jobs)


def epochs_value(epochs: Any) -> Any:
    """gr.Number sends floats; a whole float is the int it stands for."""
    if isinstance(epochs, float) and epochs.is_integer():
        return int(epochs)
    return epochs


def resume_training(jobs: TrainingJobs, name: Any, epochs: Any) -> str:
    """Continue the listed run ``name``; ``epochs`` above its budget raises it."""
    try:
        status = find_status(jobs, name)
        epochs = epochs_value(epochs)
        wanted = epochs if isinstance(epochs, int) and epochs > status.epochs else None
        jobs.start(Request(status.name, epochs=wanted, resume=True))
    except JobError as error:
        raise refuse(str(error)) from error
    return job_text(jobs)


def cancel_training(jobs: TrainingJobs, name: Any = None) -> str:
    """Stop the app's running training; with ``name`` (the run selected in the tab), only
    if that is the one running, so one click cannot stop a training by mistake."""
    job = jobs.current()
    if job is None:
        raise refuse("No training started from the app is running: nothing to cancel.")
    if name is not None and name != job.request.name:
        shown = repr(name)[:60] if name else "none"
        raise refuse(
            f"The selected run {shown} is not the running training; select "
            f"{job.request.name} to cancel it."
        )
    jobs.cancel()
    return job_text(jobs)


def run_buttons(jobs: TrainingJobs, name: Any):
    """Updates of Resume and Cancel for the selected run: Resume only for a stopped run
    (not a finished or running one), Cancel only for the app's own running training."""
    try:
        status = find_status(jobs, name)
    except JobError:
        status = None
    job = jobs.current()
    running = job is not None and status is not None and job.request.name == status.name
    resumable = status is not None and status.state == STOPPED and job is None
    cancel = gr.Button(f"Cancel {status.name}" if running else "Cancel", interactive=running)
    return gr.Button(interactive=resumable), cancel


def run_choices(jobs: TrainingJobs, current: Any, known: list[str] | None = None):
    """The run dropdown with the folder's runs; ``gr.skip()`` when they are still ``known``
    (re-sending the same list every tick would close a dropdown the user has open)."""
    names = [status.name for status in jobs.statuses()]
    if names == known:
        return gr.skip(), names
    value = current if current in names else (names[0] if names else None)
    return gr.Dropdown(choices=names, value=value), names


def tick(jobs: TrainingJobs, name: Any, shown_epochs: int, known: list[str] | None = None):
    """The timer: table, run list, job line and, when the chosen run moved on, its detail.
    The figure is only redrawn when an epoch was added (or the run changed)."""
    summary, bar, _ = run_detail(jobs, name) if name else ("", "", None)
    epochs = -1
    if name:
        try:
            epochs = find_status(jobs, name).epochs_done
        except JobError:
            epochs = -1
    figure = gr.skip()
    if epochs != shown_epochs:
        figure = run_detail(jobs, name)[2] if name else plots.training_figure([])
    choices, names = run_choices(jobs, name, known)
    return runs_table(jobs), choices, job_text(jobs), summary, bar, figure, epochs, names


def build_training_tab(jobs: TrainingJobs, demo: gr.Blocks | None = None) -> None:
    """The tab's components and events; call inside ``gr.Tab`` of ``demo`` (whose page
    load then reads the folder afresh)."""
    presets = preset_names()
    job = gr.Markdown(job_text(jobs), elem_id="training-job")
    with gr.Row():
        preset = gr.Dropdown(
            presets,
            value=DEFAULT_PRESET if DEFAULT_PRESET in presets else presets[0],
            label="preset",
            elem_id="training-preset",
        )
        name = gr.Textbox(label="new run name", placeholder="e.g. my-run", elem_id="training-name")
        epochs = gr.Number(1, label="epochs", precision=0, minimum=1, elem_id="training-epochs")
        steps = gr.Number(
            200,
            label="steps per epoch (0: whole data)",
            precision=0,
            minimum=0,
            elem_id="training-steps",
        )
    start = gr.Button("Start", variant="primary", elem_id="training-start")
    table = gr.Dataframe(
        runs_table(jobs),
        headers=TABLE_HEADERS,
        label="runs in the models folder",
        interactive=False,
        wrap=True,
        # shares that fit a phone's width: every column in sight, none behind a scroll
        column_widths=["23%", "14%", "12%", "14%", "10%", "12%", "15%"],
        elem_id="training-runs",
    )
    names = [status.name for status in jobs.statuses()]
    with gr.Row():
        chosen = gr.Dropdown(
            names,
            value=names[0] if names else None,
            label="run",
            elem_id="training-run",
            **RUN_PICKER,
        )
        # Enabled for the selected run only when they apply (``run_buttons``); Cancel sits
        # away from Start, so a click meant for Start never stops a training.
        resume = gr.Button("Resume", interactive=False, elem_id="training-resume")
        cancel = gr.Button("Cancel", variant="stop", interactive=False, elem_id="training-cancel")
    detail_text, detail_bar, detail_figure = (
        run_detail(jobs, names[0]) if names else ("", "", plots.training_figure([]))
    )
    summary = gr.Markdown(detail_text, elem_id="training-summary")
    bar = gr.HTML(detail_bar, elem_id="training-bar")
    curves = gr.Plot(
        detail_figure,
        label="loss and dev BLEU / perplexity per epoch (on a phone it scrolls sideways)",
        elem_id="training-curves",
    )
    shown, known = gr.State(-2), gr.State(names)  # epochs drawn, runs offered
    timer = gr.Timer(POLL_S)
    outputs = [table, chosen, job, summary, bar, curves, shown, known]
    update = functools.partial(tick, jobs)
    timer.tick(update, [chosen, shown, known], outputs, show_progress="hidden")
    chosen.change(update, [chosen, gr.State(-2), known], outputs, show_progress="hidden")
    buttons = functools.partial(run_buttons, jobs)
    timer.tick(buttons, [chosen], [resume, cancel], show_progress="hidden")
    chosen.change(buttons, [chosen], [resume, cancel], show_progress="hidden")
    if demo is not None:  # the page shows the folder as it is when it loads
        demo.load(update, [chosen, gr.State(-2), known], outputs, show_progress="hidden")
        demo.load(buttons, [chosen], [resume, cancel], show_progress="hidden")
    started = start.click(
        functools.partial(start_training, jobs),
        [preset, name, epochs, steps],
        [job],
        api_name="start_training",
    )
    # the new run is selected, so its progress shows and Cancel applies to it
    started.success(lambda run: select_run(jobs, run), [name], [chosen, known]).then(
        buttons, [chosen], [resume, cancel]
    )
    cancel.click(
        functools.partial(cancel_training, jobs), [chosen], [job], api_name="cancel_training"
    ).then(buttons, [chosen], [resume, cancel])
    resume.click(
        functools.partial(resume_training, jobs),
        [chosen, epochs],
        [job],
        api_name="resume_training",
    ).then(buttons, [chosen], [resume, cancel])


def select_run(jobs: TrainingJobs, name: Any):
    """The run dropdown with ``name`` (a run just started) selected."""
    names = [status.name for status in jobs.statuses()]
    name = name.strip() if isinstance(name, str) else name
    value = name if name in names else (names[0] if names else None)
    return gr.Dropdown(choices=names, value=value), names


# ---------------------------------------------------------------------------------------
# The other tabs: which models are still training, and fresh model lists when one is done


@dataclass(frozen=True)
class InTraining:
    """A run that trains now or waits its turn, and what it will be once done."""

    name: str
    kind: str  # "translation", "dialogue" or "" (unknown: its config cannot be read)
    label: str  # what it maps, e.g. "es → en" or "chat: daily_dialog"
    status: RunStatus | None  # None while it waits its turn


def in_training(jobs: TrainingJobs) -> list[InTraining]:
    """Every run of the models folder that trains now, then the queued ones."""
    from apps.registry import direction, is_dialogue
    from seq2seq.config import load_config, load_run_config

    def described(name: str, status: RunStatus | None, config_of) -> InTraining:
        try:
            config = config_of()
        except (ValueError, OSError):
            return InTraining(name, "", "", status)
        kind = "dialogue" if is_dialogue(config) else "translation"
        return InTraining(name, kind, direction(config), status)

    runs: list[InTraining] = []
    for status in jobs.statuses():
        if status.state in (TRAINING, STARTING):
            config = jobs.models_dir / status.name / "config.yaml"
            runs.append(described(status.name, status, functools.partial(load_run_config, config)))
    names = {run.name for run in runs}
    for request in jobs.waiting:
        if request.name in names:
            continue
        if request.preset:
            overrides = list(request.overrides)
            config_of = functools.partial(load_config, request.preset, overrides=overrides)
            runs.append(described(request.name, None, config_of))
        else:
            config = jobs.models_dir / request.name / "config.yaml"
            runs.append(described(request.name, None, functools.partial(load_run_config, config)))
        names.add(request.name)
    return runs


def training_banner_text(jobs: TrainingJobs) -> str:
    """One line per run that trains or waits its turn (its progress, and the tab it will
    appear in); '' when nothing trains. Plain text marks (no emoji: Debian's Chromium has
    no emoji font)."""
    lines = []
    for run in in_training(jobs):
        label = f" ({run.label})" if run.label else ""
        tab = {"translation": "Translate", "dialogue": "Chat"}.get(run.kind)
        where = f"; it appears in the {tab} tab at its first saved epoch" if tab else ""
        if tab and (jobs.models_dir / run.name / "model.keras").is_file():
            where = f"; in the {tab} tab now, improving as it trains"
        if run.status is None:
            lines.append(f"**Queued:** {run.name}{label} waits its turn{where}.")
        else:
            status = run.status
            lines.append(
                f"**Training:** {run.name}{label} {status.fraction:.0%} · "
                f"{status.summary.removeprefix('training: ')}{where}."
            )
    return "\n\n".join(lines)


def training_banner(jobs: TrainingJobs) -> gr.Markdown:
    text = training_banner_text(jobs)
    return gr.Markdown(text, visible=bool(text), elem_id="training-banner")


def keep_fresh(
    demo: gr.Blocks,
    registry: Registry,
    jobs: TrainingJobs,
    banner: gr.Markdown,
    refresh: Callable[[], tuple],
    refreshed: list[gr.components.Component],
) -> None:
    """Show the models folder as it is: when the page loads (the app may have been built
    before a model finished training), then every few seconds. Each time the banner is
    updated, and ``refresh`` (the app's model-list refresh, for the ``refreshed``
    components) is called on load and then only when the set of usable runs changed (a run
    saved its first model, or finished training), so a user's choice is not reset for nothing.
    A loaded model whose run saved a better one since is reloaded (``Registry.reload_changed``)."""

    def banner_update() -> gr.Markdown:
        text = training_banner_text(jobs)
        return gr.Markdown(text, visible=bool(text))

    def usable() -> list[str]:  # a run that finishes training changes its label
        return [run.label for run in registry.runs()]

    def loaded():
        return banner_update(), *refresh(), usable()

    def update(known: list[str]):
        registry.reload_all_changed()  # a training run saved a better model: load it
        now = usable()
        fresh = refresh() if now != known else [gr.skip()] * len(refreshed)
        return banner_update(), *fresh, now

    known = gr.State(usable())
    outputs = [banner, *refreshed, known]
    # queue=False: answered at once, not behind translations waiting in the queue
    demo.load(loaded, None, outputs, show_progress="hidden", queue=False)
    timer = gr.Timer(POLL_S * 2)
    timer.tick(update, [known], outputs, show_progress="hidden")
