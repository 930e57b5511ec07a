"""Training runs started by the app: one ``python -m seq2seq.train`` subprocess at a time.

The Training tab and the quickstart start, cancel and resume trainings through ``TrainingJobs``,
bound to one models folder. The rules are the app's (``apps.registry``): a run name is checked
against a strict pattern and must stay a direct child of the models folder; outputs only go
there; a preset must be one that ships. Only one training runs at a time (two would halve each
other's speed on a laptop and starve the app), also counting a run that another process, such
as a command-line ``seq2seq.train``, is training in the same folder.

The trainer runs ``nice``d in its own session, so that the app stays responsive and a Ctrl-C
in the app's terminal reaches the app, which then cancels the trainer. Cancelling kills it
(SIGTERM): the run folder's atomic writes make any moment a safe one, the trainer keeps the
epoch so far, and ``--resume`` continues at the next batch. Its output goes to ``train.log``
in the run folder.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from apps.run_status import STARTING, STOPPED, RunStatus, is_training, run_status, training_runs
from seq2seq.config import preset_names

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_EPOCHS = 1000
LOG_FILE = "train.log"
CANCEL_WAIT_S = 15.0


class JobError(ValueError):
    """A training request that cannot be carried out, with the reason for the user."""


@dataclass(frozen=True)
class Request:
    """One training to run: a new run from ``preset``, or ``resume`` of the run ``name``.
    ``overrides`` are ``section.field=value`` settings for a new run (the epoch budget is
    ``epochs``, which on resume raises the run's budget)."""

    name: str
    preset: str | None = None
    epochs: int | None = None
    overrides: tuple[str, ...] = ()
    resume: bool = False


@dataclass(frozen=True)
class Failure:
    """A queued training that could not run: the trainer's exit code (2: bad input) and why."""

    code: int
    message: str


@dataclass
class Job:
    request: Request
    path: Path
    process: subprocess.Popen
    started: float = field(default_factory=time.time)
    cancelled: bool = False

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def outcome(self) -> str:
        """``running``, ``finished``, ``cancelled`` or ``failed (exit N)``."""
        code = self.process.poll()
        if code is None:
            return "running"
        if self.cancelled:
            return "cancelled"
        return "finished" if code == 0 else f"failed (exit {code})"

    def log_tail(self, lines: int = 8) -> str:
        """The last lines of the trainer's output (its error message, when it failed)."""
        try:
            text = (self.path / LOG_FILE).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def remove_unstarted(job: Job) -> None:
    """A new run cancelled before training wrote its config.yaml leaves nothing worth
    keeping: only this app's train.log. Its folder goes, so the name can be used again."""
    if job.request.resume or (job.path / "config.yaml").exists():
        return
    leftovers = {entry.name for entry in job.path.iterdir()} if job.path.is_dir() else set()
    if leftovers <= {LOG_FILE, ".lock"}:
        shutil.rmtree(job.path, ignore_errors=True)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        shown = repr(name)[:60]
        raise JobError(
            f"Invalid run name {shown}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no folders, no spaces)."
        )
    return name


def check_preset(preset: object) -> str:
    names = preset_names()
    if preset not in names:
        shown = repr(preset)[:60] if preset else "none"
        raise JobError(f"Unknown preset {shown}; choose one of: {', '.join(names)}.")
    return str(preset)


def check_epochs(epochs: object) -> int | None:
    if epochs is None:
        return None
    if isinstance(epochs, float) and epochs.is_integer():
        epochs = int(epochs)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or not 1 <= epochs <= MAX_EPOCHS:
        raise JobError(f"Epochs must be a whole number from 1 to {MAX_EPOCHS}; got {epochs!r}.")
    return epochs


def check_writable(folder: Path) -> None:
    """The models folder exists (it is created if missing) and a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise JobError(
            f"The models folder {folder} is not writable ({reason}); start the app with "
            "--models on a folder you can write to."
        ) from None


class TrainingJobs:
    """Trainings of one models folder, one at a time; ``run_queue`` runs several in turn."""

    def __init__(self, models_dir: str | Path, niceness: int = 10, env: dict | None = None):
        self.models_dir = Path(models_dir)
        self.niceness = niceness
        self.env = env
        self.job: Job | None = None
        self.waiting: list[Request] = []  # queued behind the current job (quickstart)
        self.failures: dict[str, Failure] = {}  # a queued run that failed: exit code, why
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def run_path(self, name: str) -> Path:
        """``models_dir/name``; a name that would lead anywhere else is refused."""
        path = self.models_dir / check_name(name)
        if path.resolve().parent != self.models_dir.resolve():
            raise JobError(
                f"Invalid run name {name!r}: it must name a folder in the models folder."
            )
        return path

    def command(self, request: Request, path: Path) -> list[str]:
        command = [sys.executable, "-m", "seq2seq.train", "--output", str(path.absolute())]
        if request.resume:
            command.append("--resume")
        else:
            command[3:3] = ["--preset", str(request.preset)]
        if request.epochs is not None:
            command.append(f"train.epochs={request.epochs}")
        command.extend(request.overrides)
        nice = shutil.which("nice")
        return [nice, "-n", str(self.niceness), *command] if nice and self.niceness else command

    def check(self, request: Request) -> Path:
        """The run folder ``request`` would write, or a ``JobError`` saying why it cannot run."""
        path = self.run_path(request.name)
        check_epochs(request.epochs)
        busy = self.current()
        if busy is not None:
            raise JobError(
                f"A training is already running ({busy.request.name}); cancel it or wait for "
                "it to finish: one training runs at a time."
            )
        if is_training(path):
            raise JobError(
                f"{request.name} is being trained by another process (started outside this "
                "app); wait for it to finish or stop it there."
            )
        check_writable(self.models_dir)
        if request.resume:
            status = run_status(path)
            if status is None:
                raise JobError(
                    f"Nothing to resume in {request.name}: the run has no config.yaml (it "
                    "stopped before training began, or was deleted). Start it again."
                )
            if status.state == "finished" and (request.epochs or 0) <= status.epochs_done:
                raise JobError(
                    f"{request.name} is finished ({status.epochs_done} epochs); give more "
                    "epochs to train it further."
                )
        else:
            check_preset(request.preset)
            if (path / "config.yaml").is_file():
                raise JobError(
                    f"A run called {request.name} already exists; choose another name, or "
                    "select it and press Resume."
                )
        return path

    def start(self, request: Request) -> Job:
        """Start ``request`` now (``JobError`` when it cannot run)."""
        with self._lock:
            path = self.check(request)
            path.mkdir(exist_ok=True)
            log_mode = "a" if request.resume else "w"
            env = dict(os.environ if self.env is None else self.env, PYTHONUNBUFFERED="1")
            with open(path / LOG_FILE, log_mode, encoding="utf-8") as log:
                process = subprocess.Popen(
                    self.command(request, path),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            self.job = Job(request, path, process)
            return self.job

    def current(self) -> Job | None:
        """The job still running, if any."""
        job = self.job
        return job if job is not None and job.running else None

    def statuses(self) -> list[RunStatus]:
        """``training_runs`` of the models folder, where the run of a job that has not yet
        reached its first step reads as starting (not stopped), even before its folder has
        a config.yaml."""
        statuses = training_runs(self.models_dir)
        job = self.current()
        if job is None:
            return statuses
        for index, status in enumerate(statuses):
            if status.name == job.request.name:
                if status.state == STOPPED:
                    statuses[index] = replace(status, state=STARTING)
                return statuses
        statuses.append(RunStatus(job.request.name, STARTING))
        return sorted(statuses, key=lambda status: status.name)

    def cancel(self) -> Job | None:
        """Stop the running job and the queue behind it (the next quickstart start trains
        what is left); the run stays resumable."""
        self._stop.set()
        self.waiting.clear()
        job = self.current()
        if job is None:
            return None
        job.cancelled = True
        job.process.send_signal(signal.SIGTERM)
        try:
            job.process.wait(CANCEL_WAIT_S)
        except subprocess.TimeoutExpired:
            job.process.kill()
            job.process.wait()
        remove_unstarted(job)
        return job

    def run_queue(self, requests: list[Request], poll_s: float = 1.0) -> threading.Thread:
        """Run ``requests`` one after the other in a background thread (the quickstart).
        A run another process is already training is waited for, not started twice. A failure
        (reported in ``failures``) stops the queue: it is most often a setting or a corpus
        folder that the next run shares, and the message should not scroll away."""
        self._stop.clear()
        self.waiting = list(requests)
        self.failures.clear()

        def work() -> None:
            while self.waiting and not self._stop.is_set():
                request = self.waiting[0]
                path = self.models_dir / request.name
                # another process's training of this run, or a job the Training tab started
                while (is_training(path) or self.current()) and not self._stop.wait(poll_s):
                    pass
                if self._stop.is_set():
                    break
                try:
                    job = self.start(request)
                except JobError as error:
                    self.failures[request.name] = Failure(2, str(error))
                    self.waiting.clear()
                    break
                if self.waiting and self.waiting[0] is request:
                    self.waiting.pop(0)
                code = job.process.wait()
                if job.outcome.startswith("failed"):
                    self.failures[request.name] = Failure(code, job.log_tail())
                    self.waiting.clear()

        thread = threading.Thread(target=work, name="training-queue", daemon=True)
        thread.start()
        return thread
