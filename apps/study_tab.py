"""The web app's Study tab: the report of a ``python -m seq2seq.study`` run in the models folder.

A study is a folder directly inside the models folder that holds ``study.json`` and
``report.md``. The report's text and tables are shown as Markdown and its plots in a
gallery (read here and handed to Gradio as images, so no file path is served). As with
runs, a study name from the browser is only looked up in the listing, never joined onto a
path.
"""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from apps.common import RUN_PICKER, refuse
from seq2seq.study.report import REPORT
from seq2seq.study.settings import STUDY_FILE

IMAGE_LINE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<file>[^)\s]+)\)\s*$")
RUN_STUDY = "python -m seq2seq.study --preset es-en-small --output runs/study"
STUDY_SENTENCE = (
    "A *study* trains several small models that differ in one design choice each (plain "
    "RNN, GRU or LSTM cells, one or two directions, depth, gradient clipping, residual "
    "connections, attention) on the same data for the same budget, and compares their "
    "BLEU, how gradients flow back through time and how well each remembers long inputs."
)


def list_studies(models_dir: str | Path) -> list[Path]:
    """Study folders directly inside ``models_dir`` that have a report, sorted by name."""
    folder = Path(models_dir)
    if not folder.is_dir():
        return []
    return sorted(
        child
        for child in folder.iterdir()
        if (child / STUDY_FILE).is_file() and (child / REPORT).is_file()
    )


def no_study_notice(models_dir: str | Path) -> str:
    return (
        f"**No study in `{models_dir}`.** Run one (about 20 minutes on a laptop CPU) with:"
        f"\n\n```\n{RUN_STUDY}\n```\n\nThen press *Refresh studies*."
    )


def split_report(text: str, folder: Path) -> tuple[str, list[tuple[np.ndarray, str]]]:
    """Markdown without its image lines, and those images (only PNGs inside ``folder``)."""
    lines, images = [], []
    for line in text.splitlines():
        match = IMAGE_LINE.match(line)
        if not match:
            lines.append(line)
            continue
        path = (folder / match["file"]).resolve()
        if path.suffix == ".png" and path.parent == folder.resolve() and path.is_file():
            with Image.open(path) as image:
                images.append((np.asarray(image.convert("RGB")), match["alt"]))
            lines.append(f"*Plot: {match['alt']} (in the gallery below).*")
    return "\n".join(lines), images


def show_study(models_dir: str | Path, name: str | None):
    """-> (report Markdown, gallery items [(image, caption)])."""
    studies = {path.name: path for path in list_studies(models_dir)}
    if not studies:
        return no_study_notice(models_dir), []
    if name not in studies:
        shown = repr(name)[:60] if name else "none"
        raise refuse(f"Unknown study {shown}; choose one of: {', '.join(studies)}.")
    folder = studies[name]
    return split_report((folder / REPORT).read_text(encoding="utf-8"), folder)


def refresh_studies(models_dir: str | Path) -> gr.Dropdown:
    names = [path.name for path in list_studies(models_dir)]
    return gr.Dropdown(choices=names, value=names[0] if names else None)


def build_study_tab(models_dir: str | Path) -> None:
    """The tab's components and events; call inside ``gr.Tab``. With no study yet, only
    the notice (how to run one) and the refresh button show."""
    gr.Markdown(STUDY_SENTENCE, elem_id="study-about")
    names = [path.name for path in list_studies(models_dir)]
    with gr.Row(visible=bool(names)) as picker:
        choice = gr.Dropdown(
            names,
            value=names[0] if names else None,
            label="study",
            elem_id="study-name",
            **RUN_PICKER,
        )
        show = gr.Button("Show", variant="primary")
    refresh = gr.Button("Refresh studies", size="sm")
    # The first study is shown at once: an empty tab waiting for a click reads as broken.
    text, images = show_study(models_dir, names[0] if names else None)
    report = gr.Markdown(text, elem_id="study-report")
    plots = gr.Gallery(
        images,
        label="plots",
        columns=1,
        height="auto",
        elem_id="study-plots",
        visible=bool(images),
    )

    def show_report(name: str | None):
        text, images = show_study(models_dir, name)
        return text, gr.Gallery(images, visible=bool(images))

    def refresh_tab():
        """A new study shows through ``choice.change``; with none left, the notice."""
        dropdown = refresh_studies(models_dir)
        if dropdown.choices:
            return gr.Row(visible=True), dropdown, gr.skip(), gr.skip()
        notice = no_study_notice(models_dir)
        return gr.Row(visible=False), dropdown, notice, gr.Gallery([], visible=False)

    show.click(show_report, [choice], [report, plots], api_name="study")
    choice.change(show_report, [choice], [report, plots], api_visibility="private")
    refresh.click(refresh_tab, None, [picker, choice, report, plots], api_visibility="private")
