"""What a newcomer met in the app (issue 23), checked without a browser: no "train one"
advice for a model that is training, a compact banner, Resume and Cancel only where
they apply, whole epochs on a one-epoch plot, decoding sliders of the chosen method,
separated parameter counts, what a study is, no emoji, no log line per page load, and
Ctrl-C ending the app with status 130."""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"

import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import pytest  # noqa: E402

from apps import common, model_tab, plots, study_tab, training_tab, web  # noqa: E402
from apps.jobs import Job, Request, TrainingJobs  # noqa: E402
from apps.registry import TRAIN_CHAT, TRAIN_TRANSLATION, Registry  # noqa: E402
from seq2seq.config import config_yaml, load_config  # noqa: E402
from seq2seq.runs import RunPaths, write_metrics  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run_folder(folder: Path, preset: str, progress: dict | None = None, metrics=None) -> Path:
    """A run folder as training leaves it: config.yaml, metrics, maybe progress.json."""
    paths = RunPaths(folder).create()
    paths.config.write_text(config_yaml(load_config(preset)), encoding="utf-8")
    write_metrics(paths, metrics or {"pairs": {"train": 6400}, "dropped_by_length": {"train": 0}})
    if progress is not None:
        paths.progress.write_text(json.dumps(progress), encoding="utf-8")
    return folder


def training_now(**fields) -> dict:
    """progress.json of a trainer that is alive (this process stands in for it)."""
    now = time.time()
    progress = {
        "state": "training",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "epochs": 1,
        "steps": 400,
        "epoch": 1,
        "step": 100,
        "loss": 3.5,
        "started": now - 100,
        "epoch_started": now - 100,
        "updated": now,
    }
    progress.update(fields)
    return progress


# -- notices while training (issue 23, bug 3) --------------------------------------------


def test_no_advice_to_train_a_model_that_is_training_or_queued(tmp_path):
    """While the quickstart trains, the notice does not tell the user to train it again
    (nor lists its folder as "not offered"); the banner shows its progress in one line.
    The queued chat model likewise gets no "train one" advice."""
    run_folder(tmp_path / "quickstart", "quickstart", training_now())
    registry, jobs = Registry(tmp_path), TrainingJobs(tmp_path)
    notice = web.empty_notice(registry, jobs)
    assert TRAIN_TRANSLATION not in notice and "quickstart`" not in notice
    assert TRAIN_CHAT in notice  # the chat model is neither trained nor coming

    jobs.waiting = [Request("quickstart-chat", preset="quickstart-chat")]
    assert web.empty_notice(registry, jobs) == ""
    banner = training_tab.training_banner_text(jobs)
    lines = banner.split("\n\n")
    assert len(lines) == 2
    assert lines[0].startswith("**Training:** quickstart (es → en) 25%")
    assert "step 100/400" in lines[0] and "Translate tab" in lines[0]
    assert lines[1].startswith("**Queued:** quickstart-chat (chat:") and "Chat tab" in lines[1]
    assert "⏳" not in banner and "No trained" not in banner


def test_no_emoji_in_the_app():
    """Debian's Chromium has no emoji font: an emoji shows as an empty box."""
    emoji = re.compile("[\u231a-\u23ff\u2600-\u27bf\U0001f000-\U0001faff]")
    for path in sorted((REPO / "apps").glob("*.py")):
        found = emoji.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name}: {found}"


# -- the Training tab (bug 5) ------------------------------------------------------------


def test_resume_only_for_a_stopped_run_and_cancel_only_for_the_selected_running_job(tmp_path):
    done = {"finished": True, "stopped_early": True, "epochs": [{"epoch": 1, "loss": 2.0}]}
    run_folder(tmp_path / "done", "quickstart", metrics=done)
    run_folder(tmp_path / "halted", "quickstart", training_now(pid=2**22 + 7, updated=0))
    jobs = TrainingJobs(tmp_path)

    resume, cancel = training_tab.run_buttons(jobs, "done")
    assert resume.interactive is False  # finished: nothing to resume
    assert cancel.interactive is False
    resume, cancel = training_tab.run_buttons(jobs, "halted")
    assert resume.interactive is True and cancel.interactive is False

    # the app's own training, running: Cancel applies to it, and only when it is selected
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        jobs.job = Job(Request("halted", resume=True), tmp_path / "halted", sleeper)
        resume, cancel = training_tab.run_buttons(jobs, "done")
        assert cancel.interactive is False and resume.interactive is False
        resume, cancel = training_tab.run_buttons(jobs, "halted")
        assert cancel.interactive is True and cancel.value == "Cancel halted"
        assert resume.interactive is False  # it runs
        with pytest.raises(gr.Error, match="not the running training; select halted"):
            training_tab.cancel_training(jobs, "done")
        assert sleeper.poll() is None
        assert "cancelled" in training_tab.cancel_training(jobs, "halted")
        assert sleeper.poll() is not None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_one_epoch_plots_on_whole_epochs():
    """One epoch read 0.945 ... 1.050 on the x axis (Matplotlib's margins)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for epochs in (1, 2, 14):
        rows = [
            {"epoch": e, "loss": 2.0, "val_loss": 2.1, "dev_bleu": 3.0}
            for e in range(1, epochs + 1)
        ]
        figure = plots.training_figure(rows)
        FigureCanvasAgg(figure).draw()
        for axes in figure.axes:
            low, high = axes.get_xlim()
            ticks = [t for t in axes.get_xticks() if low <= t <= high]
            assert ticks and all(float(t).is_integer() for t in ticks), (epochs, ticks)
            assert low == 0.5 and high == epochs + 0.5


# -- smaller ------------------------------------------------------------------------------


def test_the_decoding_sliders_are_those_of_the_chosen_method():
    with gr.Blocks():
        method, *sliders = common.decoding_controls(common.TRANSLATE_START)
    assert [slider.visible for slider in sliders] == [False] * 5 + [True]
    labels = [slider.label for slider in sliders]
    shown = {
        m: [lab for lab, u in zip(labels, common.sliders_shown(m), strict=True) if u["visible"]]
        for m in ("greedy", "beam", "sample")
    }
    assert shown["greedy"] == ["max output length (tokens)"]
    assert shown["beam"] == ["beam size", "n-best (≤ beam size)", "max output length (tokens)"]
    assert shown["sample"] == [
        "temperature",
        "top-k (0 = off)",
        "top-p",
        "max output length (tokens)",
    ]


def test_parameter_counts_have_thousands_separators():
    rows = [["encoder rnn", 1234567, 1646080, 411520], ["total", 999, 1000, 12]]
    assert model_tab.with_separators(rows) == [
        ["encoder rnn", "1,234,567", "1,646,080", "411,520"],
        ["total", "999", "1,000", "12"],
    ]


def test_the_study_tab_says_what_a_study_is(tmp_path):
    with gr.Blocks() as demo:
        study_tab.build_study_tab(tmp_path)
    texts = json.dumps(demo.get_config_file())
    assert "A *study* trains several small models" in texts


@pytest.mark.slow
def test_a_page_load_logs_no_model_load(tiny_models, caplog):
    """Each page load re-selects the models (and so asks for them to be preloaded); only
    a real load is logged, not "loaded, ready in 0.0 s" per visit."""
    registry = Registry(tiny_models)
    run = registry.resolve("tiny", "translation")
    with caplog.at_level(logging.INFO, logger="apps.registry"):
        registry.preload([run]).join()
        registry.preload([run]).join()
        registry.preload([run]).join()
    loaded = [r for r in caplog.records if "loaded, ready in" in r.getMessage()]
    assert len(loaded) == 1


# -- Ctrl-C (bug 6) -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("when", ["serving", "starting"])
def test_ctrl_c_ends_the_app_with_status_130(tmp_path, when):
    """Ctrl-C once the app serves (its address printed), or while it is still starting
    (its server answers, but Gradio's launch has not returned): status 130 either way."""
    import threading

    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "apps.web", "--models", str(tmp_path), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(app.stdout), daemon=True)
    reader.start()
    address = f"Running on local URL:  http://127.0.0.1:{port}"

    def ready() -> bool:
        if when == "serving":
            return any(address in line for line in lines)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False

    try:
        deadline = time.monotonic() + 180
        while not ready():
            assert app.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "the app did not come up"
            time.sleep(0.2)
        app.send_signal(signal.SIGINT)
        app.wait(timeout=120)
        reader.join(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert app.returncode == 130, "".join(lines)


# -- the app tells the truth about quality ------------------------------------------------


def test_the_quality_line_names_a_quick_model_and_its_score():
    from apps.registry import quality_line

    two = [{"epoch": 1}, {"epoch": 2}]
    bleu = {"best": {"epoch": 2, "dev_bleu": 39.83}, "epochs": two}
    assert quality_line(load_config("quickstart"), bleu) == (
        "quickstart model: dev BLEU 39.8 after 2 epochs — train es-en-gru for real quality"
    )
    chat = {"best": {"epoch": 4, "val_perplexity": 51.2}, "perplexity": 48.07, "epochs": two * 2}
    assert quality_line(load_config("quickstart-chat"), chat) == (
        "quickstart model: dev perplexity 48.1 after 4 epochs — train chat for real quality"
    )
    six = {"best": {"epoch": 4, "dev_bleu": 47.79}, "epochs": [{"epoch": e} for e in range(6)]}
    assert (
        quality_line(load_config("es-en-gru"), six) == "quality: dev BLEU 47.8 (best epoch 4 of 6)"
    )
    assert quality_line(load_config("en-es-gru"), {**six, "epochs": two[:1]}) == (
        "quick demo model: dev BLEU 47.8 after 1 epoch — train it longer for real quality"
    )
    long_chat = {**chat, "epochs": [{}] * 14}
    assert (
        quality_line(load_config("chat"), long_chat)
        == "quality: dev perplexity 48.1 after 14 epochs"
    )
    assert "no dev scores" in quality_line(load_config("es-en-gru"), {})


@pytest.mark.slow
def test_each_tab_shows_the_quality_of_the_chosen_model(tiny_models):
    """Translate, Chat and Model tabs: the line from metrics.json (``tiny`` was trained
    from the quickstart preset, so it is called a quickstart model)."""
    registry = Registry(tiny_models)
    metrics = registry.metrics(registry.resolve("tiny", "translation"))
    bleu = metrics["best"]["dev_bleu"]
    line = registry.quality("tiny", "translation")
    assert line.startswith(f"quickstart model: dev BLEU {bleu:.1f} after 5 epochs")
    assert registry.quality(None, "translation") == line  # the run a page opens on
    assert "dev perplexity" in registry.quality("tiny-chat", "dialogue")
    assert registry.quality("no-such-run", "dialogue") == ""
    assert line in model_tab.model_info(registry, "tiny")[0]
    demo = web.build_app(tiny_models)
    shown = {
        block.elem_id: block.value
        for block in demo.blocks.values()
        if getattr(block, "elem_id", None) in ("translate-quality", "chat-quality")
    }
    assert shown["translate-quality"] == line
    assert shown["chat-quality"] == registry.quality("tiny-chat", "dialogue")


@pytest.mark.slow
def test_the_chat_says_why_mmi_is_unavailable_and_how_to_train_a_backward_model(tiny_models):
    from apps import chat_tab

    registry = Registry(tiny_models)
    switch, *sliders = chat_tab.mmi_controls(registry, "tiny-chat")
    assert switch["visible"] and not switch["interactive"] and switch["value"] is False
    assert "unavailable" in switch["label"]
    command = f"python -m seq2seq.train --preset chat-backward --output {tiny_models.name}/"
    assert command + "tiny-chat-backward" in switch["info"]
    assert not any(slider["visible"] for slider in sliders)


def test_heat_map_labels_are_readable_pieces():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    pieces = ["▁¿", "D", "ónde", "▁está", "?", "▁", "▁I", "'", "m"]
    labels = plots.piece_labels(pieces)
    assert labels == ["¿", "-D", "-ónde", "está", "?", "␣", "I", "'", "-m"]
    assert plots.piece_labels(["hola", "."]) == ["hola", "."]  # word tokens as they are
    figure = plots.attention_figure(plots.np.eye(9, 5), pieces[:5], pieces)
    FigureCanvasAgg(figure).draw()
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert ticks == labels[:5] and not any("▁" in t or "·" in t for t in ticks)
    assert "yellow" in plots.ATTENTION_LEGEND and "purple" in plots.ATTENTION_LEGEND
