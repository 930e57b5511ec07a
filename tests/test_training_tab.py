"""Training progress and the Training tab: progress.json, run status, jobs started and
cancelled from the app, the tab's data functions and bad input, and the quickstart flow; no
"train one" advice for a model that is training or queued, Resume and Cancel only where they
apply."""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"

import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import pytest  # noqa: E402
from conftest import REPO, SAMPLE_RUN  # noqa: E402

from apps import quickstart, training_tab, web  # noqa: E402
from apps.jobs import Job, JobError, Request, TrainingJobs  # noqa: E402
from apps.registry import TRAIN_CHAT, TRAIN_TRANSLATION, Registry, survey  # noqa: E402
from apps.run_status import FINISHED, STOPPED, TRAINING, run_status  # noqa: E402
from seq2seq.config import config_yaml, load_config  # noqa: E402
from seq2seq.runs import RunPaths, read_progress, write_metrics  # noqa: E402
from seq2seq.training.callbacks import ProgressRecorder  # noqa: E402

TINY = SAMPLE_RUN  # a run of the sample file that trains in seconds


def wait_for(condition, timeout: float = 240.0, every: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {condition}")


def fake_run(folder: Path, progress: dict | None = None, metrics: dict | None = None) -> Path:
    """A run folder as training leaves it mid-way: FORMAT, config.yaml, metrics, progress."""
    paths = RunPaths(folder).create()
    paths.config.write_text(config_yaml(load_config("quickstart")), encoding="utf-8")
    write_metrics(paths, metrics or {"pairs": {"train": 6400}, "dropped_by_length": {"train": 0}})
    if progress is not None:
        paths.progress.write_text(json.dumps(progress), encoding="utf-8")
    return folder


def live_progress(**fields) -> dict:
    now = time.time()
    progress = {
        "state": "training",
        "pid": os.getpid(),
        "host": __import__("socket").gethostname(),
        "epochs": 8,
        "steps": None,
        "epoch": 1,
        "step": 50,
        "loss": 3.5,
        "started": now - 100,
        "epoch_started": now - 100,
        "updated": now,
    }
    progress.update(fields)
    return progress


# ---------------------------------------------------------------------------------------
# progress.json and run status (no training)


def test_progress_recorder_writes_the_epoch_step_and_loss(tmp_path):
    paths = RunPaths(tmp_path).create()
    recorder = ProgressRecorder(paths, every_s=0.0)
    recorder.set_params({"epochs": 3, "steps": None, "verbose": 0})
    recorder.on_train_begin()
    recorder.on_epoch_begin(1)  # a resumed run starting at its second epoch
    for step in range(5):
        recorder.on_train_batch_end(step, {"loss": 2.0 - step / 10})
    progress = read_progress(paths)
    assert progress["state"] == "training" and progress["pid"] == os.getpid()
    assert (progress["epoch"], progress["epochs"], progress["step"]) == (2, 3, 5)
    assert progress["loss"] == pytest.approx(1.6) and progress["steps"] is None
    recorder.on_epoch_end(1)
    assert read_progress(paths)["steps"] == 5  # an epoch's length, known once one has run
    recorder.on_train_end()
    assert read_progress(paths)["state"] == "finished"
    assert not list(tmp_path.glob(".partial-*"))


def test_progress_recorder_writes_at_most_every_few_seconds(tmp_path):
    paths = RunPaths(tmp_path).create()
    recorder = ProgressRecorder(paths, every_s=3600.0)
    recorder.set_params({"epochs": 1, "steps": 100})
    recorder.on_train_begin()
    recorder.on_epoch_begin(0)
    for step in range(10):
        recorder.on_train_batch_end(step, {"loss": 1.0})
    assert read_progress(paths)["step"] == 0  # written at the epoch's start, not per step


def test_damaged_progress_file_reads_as_empty(tmp_path):
    paths = RunPaths(tmp_path).create()
    paths.progress.write_text('{"epoch": 3, "st', encoding="utf-8")
    assert read_progress(paths) == {}
    paths.progress.write_text("[1, 2]", encoding="utf-8")
    assert read_progress(paths) == {}


def test_status_of_a_live_run_estimates_steps_and_time_left(tmp_path):
    run = fake_run(tmp_path / "run", live_progress())
    status = run_status(run)
    assert status.state == TRAINING and status.estimated
    # 6,400 pairs / batch 64, plus at most one partly filled batch per length bucket
    assert 100 < status.steps <= 100 + 40 // 4 + 1
    assert (status.epoch, status.epochs, status.step) == (1, 8, 50)
    # 2 s a step: the rest of this epoch, then 7 more epochs
    steps = status.steps
    assert status.seconds_left == pytest.approx((steps - 50) * 2 + 7 * steps * 2, rel=0.05)
    assert "epoch 1/8" in status.summary and "left" in status.summary
    assert 0 < status.fraction < 1 / 8


def test_status_of_a_killed_run_is_stopped_and_of_a_finished_one_finished(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    run = fake_run(tmp_path / "killed", live_progress(pid=int(dead.stdout)))
    assert run_status(run).state == STOPPED
    assert "resumable" in run_status(run).summary
    done = {"finished": True, "epochs": [{"epoch": e, "loss": 1.0} for e in (1, 2, 3, 4)]}
    finished = fake_run(tmp_path / "done", live_progress(epochs=4), metrics=done)
    assert run_status(finished).state == FINISHED and run_status(finished).fraction == 1.0
    assert run_status(tmp_path / "not-a-run") is None


def test_registry_leaves_out_a_run_in_training_until_its_first_model(tmp_path):
    fake_run(tmp_path / "busy", live_progress())
    fake_run(tmp_path / "half", live_progress(pid=2**22 + 7, host="elsewhere", updated=0))
    runs, broken = survey(tmp_path)
    assert not runs
    assert [b.name for b in broken] == ["half"]  # stopped without a model: shown as unusable


def as_training_chat(folder: Path, perplexity: float) -> RunPaths:
    """The tiny chat run made a quickstart-chat run that is training, one epoch saved."""
    paths = RunPaths(folder)
    text = paths.config.read_text(encoding="utf-8")
    lines = [
        ("name: quickstart-chat" if line.startswith("name:") else line)
        for line in text.splitlines()
    ]
    paths.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    metrics = {"epochs": [{"epoch": 1, "loss": 4.0, "val_perplexity": perplexity}]}
    metrics["best"] = metrics["epochs"][0]
    write_metrics(paths, metrics)
    paths.progress.write_text(json.dumps(training_now(epoch=2, epochs=60)), encoding="utf-8")
    return paths


@pytest.mark.slow
def test_a_chat_run_is_offered_from_its_first_epoch_and_each_better_model_is_loaded(
    tiny_models, tmp_path
):
    """The quickstart's chat run is in the Chat tab from its first saved model.keras,
    labelled as training with the epoch and dev perplexity in use; a better model.keras
    (written atomically, as training does) is loaded in the background and answers from
    then on, while the model in use keeps answering meanwhile."""
    import numpy as np

    from apps.chat_tab import chat, chat_choices
    from seq2seq.inference.translator import Translator
    from seq2seq.runs import write_atomically
    from seq2seq.training.checkpoints import save_model_only

    models = tmp_path / "models"
    shutil.copytree(tiny_models / "tiny-chat", models / "quickstart-chat")
    paths = as_training_chat(models / "quickstart-chat", 48.07)
    fake_run(models / "starting", live_progress())  # training, no model yet: not offered
    registry = Registry(models)
    [run] = registry.runs("dialogue")
    assert run.training and run.name == "quickstart-chat" and not registry.broken()
    assert [name for _, name in chat_choices(registry)] == ["quickstart-chat"]
    assert registry.quality(None, "dialogue") == (
        "quickstart model, still training: epoch 1, dev perplexity 48.1 — replies improve as "
        "training continues (each better checkpoint is loaded as it is saved)"
    )
    jobs = TrainingJobs(models)
    assert "in the Chat tab now, improving as it trains" in training_tab.training_banner_text(jobs)
    assert web.empty_notice(registry, jobs) == ""  # no advice, nothing broken
    assert "".join(chat(registry, "hello", [], "quickstart-chat"))
    first = registry.translator(run)
    assert registry.reload_all_changed() == []  # nothing new: no reload

    # epoch 2 is better: training saves its model.keras (a temporary file renamed over it)
    better = Translator.from_run(paths.root).model
    better.set_weights([weight + 0.01 for weight in better.get_weights()])
    write_atomically(paths.best_model, lambda path: save_model_only(better, path))
    epochs = [{"epoch": 1, "val_perplexity": 48.07}, {"epoch": 2, "val_perplexity": 40.0}]
    write_metrics(paths, {"epochs": epochs, "best": epochs[1]})
    assert registry.translator(run) is first  # answers at once, while the new one loads
    [thread] = registry.reload_all_changed()  # the one reload already under way
    thread.join(120)
    second = registry.translator(run)
    assert second is not first
    for new, old in zip(second.model.get_weights(), better.get_weights(), strict=True):
        np.testing.assert_allclose(new, old)
    assert "".join(chat(registry, "hello", [], "quickstart-chat"))
    assert "epoch 2, dev perplexity 40.0" in registry.quality("quickstart-chat", "dialogue")

    # training ends: the run is offered as a finished one (its label changes, no reload)
    paths.progress.unlink()
    write_metrics(paths, {"epochs": epochs, "best": epochs[1], "finished": True})
    [run] = registry.runs("dialogue")
    assert not run.training and registry.translator(run) is second
    assert "still training" not in registry.quality(None, "dialogue")


# ---------------------------------------------------------------------------------------
# Bad input to the jobs and the tab


@pytest.mark.parametrize("name", ["", "../x", "/tmp/x", "a b", ".hidden", "x" * 65, None, 3])
def test_bad_run_names_are_refused(tmp_path, name):
    jobs = TrainingJobs(tmp_path)
    with pytest.raises(JobError, match="Invalid run name"):
        jobs.start(Request(name, preset="quickstart", epochs=1))
    with pytest.raises(gr.Error, match="Invalid run name"):
        training_tab.start_training(jobs, "quickstart", name, 1, 0)
    assert list(tmp_path.iterdir()) == []


def test_a_run_name_that_is_a_link_out_of_the_models_folder_is_refused(tmp_path):
    models, outside = tmp_path / "models", tmp_path / "outside"
    models.mkdir()
    outside.mkdir()
    (models / "link").symlink_to(outside)
    with pytest.raises(JobError, match="models folder"):
        TrainingJobs(models).start(Request("link", preset="quickstart", epochs=1))
    assert list(outside.iterdir()) == []


def test_unknown_preset_bad_budget_and_existing_run_are_refused(tmp_path):
    jobs = TrainingJobs(tmp_path)
    with pytest.raises(gr.Error, match="Unknown preset 'no-such'; choose one of: .*quickstart"):
        training_tab.start_training(jobs, "no-such", "new", 1, 0)
    for epochs in (0, -1, 1.5, "many", 10_000):
        with pytest.raises(gr.Error, match="Epochs must be a whole number"):
            training_tab.start_training(jobs, "quickstart", "new", epochs, 0)
    for steps in (-5, 1.5, 1e12, float("nan"), float("inf")):  # 1e12 used to start, then die
        with pytest.raises(gr.Error, match="Steps per epoch must be 0 .* to 10,000,000"):
            training_tab.start_training(jobs, "quickstart", "new", 1, steps)
    fake_run(tmp_path / "taken")
    with pytest.raises(gr.Error, match="already exists"):
        training_tab.start_training(jobs, "quickstart", "taken", 1, 0)
    assert jobs.job is None


def test_a_models_folder_that_is_not_writable_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(gr.Error, match="not writable"):
        training_tab.start_training(TrainingJobs(blocker), "quickstart", "run", 1, 0)
    assert blocker.read_text(encoding="utf-8") == "not a folder"
    if os.geteuid() != 0:  # root writes into a read-only folder anyway
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(gr.Error, match="not writable"):
            training_tab.start_training(TrainingJobs(locked), "quickstart", "run", 1, 0)


def test_a_run_being_trained_elsewhere_cannot_be_started_or_resumed(tmp_path):
    fake_run(tmp_path / "busy", live_progress())
    jobs = TrainingJobs(tmp_path)
    with pytest.raises(gr.Error, match="another process"):
        training_tab.resume_training(jobs, "busy", 1)


def test_a_deleted_run_reads_as_a_message_and_cannot_be_resumed(tmp_path):
    jobs = TrainingJobs(tmp_path)
    fake_run(tmp_path / "gone", live_progress(pid=2**22 + 7, host="elsewhere", updated=0))
    fake_run(tmp_path / "kept")
    assert [row[0] for row in training_tab.runs_table(jobs)] == ["gone", "kept"]
    shutil.rmtree(tmp_path / "gone")
    text, bar, figure = training_tab.run_detail(jobs, "gone")
    assert "not in the models folder (deleted or renamed?)" in text and bar == ""
    assert [row[0] for row in training_tab.runs_table(jobs)] == ["kept"]
    with pytest.raises(gr.Error, match="not in the models folder"):
        training_tab.resume_training(jobs, "gone", 1)
    with pytest.raises(gr.Error, match="not in the models folder"):
        training_tab.resume_training(jobs, "../kept", 1)
    with pytest.raises(gr.Error, match="nothing to cancel"):
        training_tab.cancel_training(jobs)


# ---------------------------------------------------------------------------------------
# Real trainings in a subprocess (seconds each)


@pytest.mark.slow
def test_start_cancel_resume_a_training(tmp_path):
    jobs = TrainingJobs(tmp_path)
    # Patience above the budget: the run cannot stop early before it is cancelled (a fast
    # machine ended patience 3 first), so only the budget ends the resumed run.
    job = jobs.start(
        Request("tiny", preset="quickstart", epochs=30, overrides=(*TINY, "train.patience=100"))
    )
    assert "tiny" in training_tab.job_text(jobs) and "running" in training_tab.job_text(jobs)
    with pytest.raises(gr.Error, match="already running"):
        training_tab.start_training(jobs, "quickstart", "other", 1, 0)
    with pytest.raises(gr.Error, match="already running"):
        training_tab.resume_training(jobs, "tiny", 1)
    # live progress read from the folder, then one completed epoch
    wait_for(lambda: (s := run_status(tmp_path / "tiny")) and s.epochs_done >= 1)
    rows = training_tab.runs_table(jobs)
    assert rows[0][0] == "tiny" and rows[0][1] == TRAINING and rows[0][2].endswith("/30")
    text, bar, _ = training_tab.run_detail(jobs, "tiny")
    assert "<progress" in bar and "epoch" in bar and "### tiny" in text
    assert "tiny" in training_tab.training_banner_text(jobs)

    assert "cancelled" in training_tab.cancel_training(jobs)
    assert not job.running
    stopped = run_status(tmp_path / "tiny")
    assert stopped.state == STOPPED and stopped.epochs_done >= 1
    assert "Resume" in training_tab.job_text(jobs)
    assert training_tab.training_banner_text(jobs) == ""

    # Resume keeps the budget (30 epochs) and ends there
    training_tab.resume_training(jobs, "tiny", 1)
    wait_for(lambda: not jobs.job.running)
    assert jobs.job.outcome == "finished", jobs.job.log_tail()
    finished = run_status(tmp_path / "tiny")
    assert finished.state == FINISHED and finished.epochs_done == 30 > stopped.epochs_done
    assert "finished" in training_tab.runs_table(jobs)[0][1]
    with pytest.raises(gr.Error, match="is finished"):
        training_tab.resume_training(jobs, "tiny", 1)


@pytest.mark.slow
def test_a_failed_training_shows_its_error(tmp_path):
    jobs = TrainingJobs(tmp_path)
    jobs.start(Request("bad", preset="quickstart", epochs=1, overrides=(*TINY, "data.path=/nope")))
    wait_for(lambda: not jobs.job.running)
    text = training_tab.job_text(jobs)
    assert "failed (exit 2)" in text and "/nope" in text


# quickstart's flags, for both presets (the chat preset's 60 short epochs made 2 full ones)
QUICK = (*TINY, "train.epochs=2", "train.steps_per_epoch=null")
SETTINGS = [arg for setting in QUICK for arg in ("--set", setting)]


@pytest.mark.slow
def test_quickstart_opens_the_app_before_training_ends_and_reuses_models(tmp_path, capsys):
    from test_app import free_port

    models, port = tmp_path / "models", free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "apps.quickstart", "--models", str(models), *SETTINGS]
        + ["--set", "train.epochs=200", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    try:

        def app_up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(app_up, timeout=180)
        wait_for(lambda: (s := run_status(models / "quickstart")) and s.state == TRAINING)
        assert app_up()  # the app came first: it answers while the model is still training
        trainer = read_progress(RunPaths(models / "quickstart"))["pid"]
    finally:
        app.send_signal(signal.SIGINT)  # Ctrl-C
        # Bounded, but generous: the app stops its trainer (SIGTERM, SIGKILL after 15 s),
        # then Gradio and TensorFlow tear down, which took over 60 s inside the full suite
        app.wait(180)
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(trainer, 0)  # the trainer stopped with the app
    assert run_status(models / "quickstart").state == STOPPED  # resumable

    # train only: the stopped run is resumed (200 epochs is its budget: raise none, so
    # finish it by hand with a smaller one), the chat run is new
    resumed = TrainingJobs(models)
    done = run_status(models / "quickstart").epochs_done
    resumed.start(Request("quickstart", epochs=done + 1, resume=True))
    wait_for(lambda: not resumed.job.running)
    assert run_status(models / "quickstart").state == FINISHED
    assert quickstart.main(["--models", str(models), "--no-app", *SETTINGS]) == 0
    assert run_status(models / "quickstart-chat").state == FINISHED
    capsys.readouterr()
    assert quickstart.main(["--models", str(models), "--no-app"]) == 0
    out = capsys.readouterr().out
    assert "quickstart: trained, reused" in out and "quickstart-chat: trained, reused" in out
    assert "training in the background" not in out


def test_the_timer_redraws_only_what_changed(tmp_path):
    from matplotlib.figure import Figure

    jobs = TrainingJobs(tmp_path)
    done = {"finished": True, "epochs": [{"epoch": 1, "loss": 2.0, "val_perplexity": 9.0}]}
    fake_run(tmp_path / "chat", live_progress(epochs=1), metrics=done)
    table, choices, job, summary, bar, figure, epochs, names = training_tab.tick(jobs, "chat", -2)
    assert table[0][:3] == ["chat", FINISHED, "1/1"] and names == ["chat"]
    assert isinstance(choices, gr.Dropdown) and isinstance(figure, Figure)
    assert "### chat" in summary and "finished" in bar and "<progress" in bar and epochs == 1
    assert "perplexity" in figure.axes[1].get_ylabel()  # no dev BLEU: perplexity instead
    again = training_tab.tick(jobs, "chat", epochs, names)
    assert not isinstance(again[1], gr.Dropdown) and not isinstance(again[5], Figure)
    fake_run(tmp_path / "new")
    assert isinstance(training_tab.tick(jobs, "chat", epochs, names)[1], gr.Dropdown)


def test_a_new_run_cancelled_before_it_trains_leaves_no_folder(tmp_path):
    """Issue 24: cancelled starts left empty folders (only train.log) behind."""
    import sys

    class Sleeper(TrainingJobs):
        def command(self, request, path):
            return [sys.executable, "-c", "import time; time.sleep(120)"]

    jobs = Sleeper(tmp_path)
    job = jobs.start(Request("early", preset="quickstart", epochs=1))
    assert job.path.is_dir() and job.running
    assert "cancelled" in training_tab.cancel_training(jobs)
    assert not job.path.exists()
    job = jobs.start(Request("begun", preset="quickstart", epochs=1))
    (job.path / "config.yaml").write_text("name: begun\n")  # training had begun
    training_tab.cancel_training(jobs)
    assert (job.path / "config.yaml").is_file() and (job.path / "train.log").is_file()


# -- notices while training (issue 23, bug 3) and Resume/Cancel (bug 5) -------------------


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
