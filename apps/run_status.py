"""Where a run folder's training stands, read from the folder alone.

``progress.json`` (written by ``seq2seq.training.callbacks.ProgressRecorder`` every few seconds),
``metrics.json`` and ``config.yaml`` say everything the Training tab and the quickstart's
progress bars show: the state, the epoch, the step, the running loss and the time left. Only
files are read, so a run started from the command line is followed like one started by the
app. Nothing here raises on a damaged or vanishing folder: it reads as what is left of it.
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from seq2seq.config import Config, load_run_config
from seq2seq.runs import RunPaths, read_metrics, read_progress

TRAINING, FINISHED, STOPPED, STARTING = "training", "finished", "stopped", "starting"
# A live trainer rewrites progress.json every few seconds and at least once per epoch; one
# on another host (no pid to check) that has been silent this long is taken as stopped.
SILENT_AFTER_S = 600.0


@dataclass(frozen=True)
class RunStatus:
    """A run folder's training at one moment. ``steps`` may be an estimate (``estimated``)
    during a first epoch, whose length the length buckets only reveal at its end."""

    name: str
    state: str  # training, finished, stopped (resumable) or starting (no progress yet)
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int | None = None
    estimated: bool = False
    loss: float | None = None
    seconds_left: float | None = None
    epochs_done: int = 0

    @property
    def fraction(self) -> float:
        """How much of the whole budget is done, 0..1."""
        if self.state == FINISHED:
            return 1.0
        if not self.epochs:
            return 0.0
        within = min(self.step / self.steps, 1.0) if self.steps else 0.0
        return min((max(self.epoch - 1, 0) + within) / self.epochs, 1.0)

    @property
    def summary(self) -> str:
        """One line for a person: ``training: epoch 2/8, step 120/≈313, loss 3.21, ~4 min left``."""
        if self.state == FINISHED:
            return f"finished: {self.epochs_done} epoch{'s' if self.epochs_done != 1 else ''}"
        if self.state == STARTING:
            return "starting (loading the corpus and fitting the vocabularies)"
        parts = [f"epoch {self.epoch}/{self.epochs}"]
        if self.steps:
            parts.append(f"step {self.step}/{'≈' if self.estimated else ''}{self.steps}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3f}")
        if self.state == TRAINING and self.seconds_left is not None:
            parts.append(f"{format_duration(self.seconds_left)} left")
        word = "training" if self.state == TRAINING else "stopped (resumable)"
        return f"{word}: " + ", ".join(parts)


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"~{max(round(seconds), 1)} s"
    if seconds < 5400:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def trainer_alive(progress: dict, now: float) -> bool:
    """Is the process that writes this progress.json still running?"""
    pid, host = progress.get("pid"), progress.get("host")
    if host == socket.gethostname() and isinstance(pid, int):
        return process_alive(pid)
    updated = progress.get("updated")
    return isinstance(updated, int | float) and now - updated < SILENT_AFTER_S


def estimated_steps(config: Config | None, metrics: dict) -> int | None:
    """Steps of an epoch before one has run: training pairs (after the length filter) over
    the batch size."""
    if config is None:
        return None
    pairs = (metrics.get("pairs") or {}).get("train")
    dropped = (metrics.get("dropped_by_length") or {}).get("train", 0)
    if not isinstance(pairs, int) or pairs <= dropped:
        return None
    kept, data = pairs - dropped, config.data
    # Each length bucket ends its epoch with one partly filled batch.
    buckets = math.ceil(max(data.max_source_length, data.max_target_length) / data.bucket_width)
    return min(math.ceil(kept / config.train.batch_size) + buckets, kept)


def seconds_left(
    progress: dict, metrics: dict, steps: int | None, epochs: int, now: float
) -> float | None:
    """The rest of this epoch at its own pace, plus the epochs to come at the pace of the
    finished ones (dev scoring included) or, before one has finished, of this one."""
    step, epoch = progress.get("step") or 0, progress.get("epoch") or 1
    begun = progress.get("epoch_started")
    if not steps or not step or not isinstance(begun, int | float) or now <= begun:
        return None
    per_step = (now - begun) / step
    done = metrics.get("epochs") or []
    per_epoch = steps * per_step
    if done and isinstance(metrics.get("train_seconds"), int | float):
        per_epoch = metrics["train_seconds"] / len(done)
    return max(steps - step, 0) * per_step + max(epochs - epoch, 0) * per_epoch


def run_status(path: Path, now: float | None = None) -> RunStatus | None:
    """The training status of the run folder ``path``; None when it is not a run (yet)."""
    paths = RunPaths(path)
    now = time.time() if now is None else now
    progress = read_progress(paths)
    try:
        config = load_run_config(paths.config) if paths.config.is_file() else None
    except (ValueError, OSError):
        config = None
    try:
        metrics = read_metrics(paths)
    except (ValueError, OSError):
        metrics = {}
    if config is None and not progress:
        return None
    done = metrics.get("epochs") or []
    epochs_done = len(done)
    epochs = progress.get("epochs") or (config.train.epochs if config else 0)
    last_loss = done[-1].get("loss") if done and isinstance(done[-1], dict) else None
    if metrics.get("finished") and (epochs_done >= epochs or metrics.get("stopped_early")):
        return RunStatus(
            path.name, FINISHED, epochs_done, epochs, loss=last_loss, epochs_done=epochs_done
        )
    if not progress:
        return RunStatus(
            path.name, STOPPED, epochs_done, epochs, loss=last_loss, epochs_done=epochs_done
        )
    # "finished" in progress.json while metrics.json is not yet: the last model is being saved.
    alive = progress.get("state") in (TRAINING, FINISHED) and trainer_alive(progress, now)
    steps = progress.get("steps")
    estimated = not steps
    if estimated:
        steps = estimated_steps(config, metrics)
    loss = progress.get("loss")
    return RunStatus(
        name=path.name,
        state=TRAINING if alive else STOPPED,
        epoch=int(progress.get("epoch") or 1),
        epochs=int(epochs),
        step=int(progress.get("step") or 0),
        steps=steps,
        estimated=estimated and steps is not None,
        loss=float(loss) if isinstance(loss, int | float) else None,
        seconds_left=seconds_left(progress, metrics, steps, epochs, now) if alive else None,
        epochs_done=epochs_done,
    )


def is_training(path: Path) -> bool:
    """A live trainer is writing this run folder (its model is not final yet)."""
    status = run_status(path)
    return status is not None and status.state == TRAINING


def training_runs(models_dir: str | Path) -> list[RunStatus]:
    """Every run folder directly inside ``models_dir`` that is training, was or has been,
    sorted by name (the Training tab's list)."""
    folder = Path(models_dir)
    statuses = []
    for child in sorted(folder.iterdir()) if folder.is_dir() else []:
        if child.is_dir() and not child.name.startswith("."):
            status = run_status(child)
            if status is not None:
                statuses.append(status)
    return statuses
