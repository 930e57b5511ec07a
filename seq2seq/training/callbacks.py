"""Training callbacks: the run's record of each epoch, the best model, resumable patience,
and where training is right now (``progress.json``)."""

from __future__ import annotations

import json
import math
import os
import socket
import time

import keras

from seq2seq.runs import (
    RunPaths,
    check_free_space,
    read_metrics,
    write_atomically,
    write_metrics,
    write_text_atomically,
)
from seq2seq.training.checkpoints import save_model_only, variables_bytes


class RunRecorder(keras.callbacks.Callback):
    """The chief's record of each epoch: ``metrics.json``, ``history.csv`` and the best model.

    It runs after the dev scores are in the epoch logs. "Best" is by dev BLEU or by dev loss
    (``select_best_by``); the best epoch lives in ``metrics.json`` so that a resumed run keeps
    comparing against it. ``history.csv`` is rewritten whole from ``metrics.json`` each epoch
    (never appended), so a kill cannot leave half a row or a row twice.
    """

    def __init__(self, paths: RunPaths, select_best_by: str = "bleu"):
        super().__init__()
        self.paths = paths
        self.select_best_by = select_best_by
        self.started = time.time()

    def on_train_begin(self, logs=None):
        self.started = time.time()

    def score(self, logs) -> float:
        if self.select_best_by == "bleu" and "dev_bleu" in logs:
            return float(logs["dev_bleu"])
        return -float(logs.get("val_loss", logs.get("loss", math.inf)))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        metrics = read_metrics(self.paths)
        epochs = [e for e in metrics.get("epochs", []) if e["epoch"] < epoch + 1]
        entry = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}
        epochs.append(entry)
        metrics["epochs"] = epochs
        metrics["train_seconds"] = metrics.get("train_seconds", 0.0) + (time.time() - self.started)
        self.started = time.time()
        score = self.score(logs)
        if score > metrics.get("best_score", -math.inf):
            metrics["best_score"] = score
            metrics["best"] = entry
            check_free_space(
                self.paths.root, variables_bytes(self.model.weights), self.paths.best_model.name
            )
            write_atomically(self.paths.best_model, lambda path: save_model_only(self.model, path))
        write_metrics(self.paths, metrics)
        write_history(self.paths, epochs)


def write_history(paths: RunPaths, epochs: list[dict]) -> None:
    """``history.csv``: one row per epoch (0-based ``epoch`` as Keras's CSVLogger wrote it)."""
    keys = sorted({k for e in epochs for k in e if k != "epoch"})
    rows = [",".join(["epoch", *keys])]
    for entry in epochs:
        values = [str(entry["epoch"] - 1), *(repr(entry[k]) if k in entry else "" for k in keys)]
        rows.append(",".join(values))
    write_text_atomically(paths.history, "\n".join(rows) + "\n")


def recorded_values(
    paths: RunPaths, monitor: str, replay_epochs: int | None
) -> list[tuple[int, float]]:
    """(epoch, value) of ``monitor`` for the epochs ``metrics.json`` recorded (up to
    ``replay_epochs``), for callbacks whose state must survive ``--resume``."""
    return [
        (entry["epoch"], entry[monitor])
        for entry in read_metrics(paths).get("epochs", [])
        if (replay_epochs is None or entry["epoch"] <= replay_epochs)
        and entry.get(monitor) is not None
    ]


class ReplaysRecordedEpochs:
    """Mixin for a Keras monitor callback whose state must survive ``--resume``: Keras
    resets it at every start, so ``replayed`` gives the (epoch, value) pairs of the
    monitored metric that ``RunRecorder`` wrote to ``metrics.json`` (up to
    ``replay_epochs``) for ``on_train_begin`` to run through."""

    def __init__(self, paths: RunPaths, replay_epochs: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.paths = paths
        self.replay_epochs = replay_epochs

    def replayed(self) -> list[tuple[int, float]]:
        if self.monitor_op is None:
            self._set_monitor_op()
        return recorded_values(self.paths, self.monitor, self.replay_epochs)


class ResumableEarlyStopping(ReplaysRecordedEpochs, keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience survives ``--resume``: an interrupted and resumed run
    stops at the same epoch as an uninterrupted one."""

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for epoch, value in self.replayed():
            self.wait += 1
            if self._is_improvement(value, self.best):
                self.best, self.best_epoch, self.wait = value, epoch - 1, 0


class ResumablePlateau(ReplaysRecordedEpochs, keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose best value and wait survive ``--resume``.

    The learning rate itself comes back with the optimizer's state; without replaying the
    recorded epochs, the first resumed epoch would always count as an improvement and a
    plateau reached before the interruption would be waited out again.
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for _, value in self.replayed():
            if self._is_improvement(value, self.best):
                self.best, self.wait = value, 0
            else:
                self.wait += 1
                if self.wait >= self.patience:  # the rate was lowered then (cooldown is 0)
                    self.wait = 0


class ProgressRecorder(keras.callbacks.Callback):
    """``progress.json``: the epoch and step training is at, its running loss and times.

    Rewritten atomically every ``every_s`` seconds and at each epoch's start and end, so the
    app's Training tab and the quickstart's progress bars can follow any run, also one
    started from the command line, by reading its folder. ``pid`` and ``host`` let a reader
    tell a live run from one that was killed. ``steps`` is the epoch's step count when it is
    known (``train.steps_per_epoch``, or the length of an epoch already run), else ``None``.
    """

    def __init__(self, paths: RunPaths, every_s: float = 2.0):
        super().__init__()
        self.paths = paths
        self.every_s = every_s
        self.state: dict = {}
        self.written = 0.0

    def on_train_begin(self, logs=None):
        now = time.time()
        self.state = {
            "state": "training",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "epochs": self.params.get("epochs"),
            "steps": self.params.get("steps"),
            "started": now,
            "epoch_started": now,
            "updated": now,
        }

    def on_epoch_begin(self, epoch, logs=None):
        self.state.update(epoch=epoch + 1, step=0, epoch_started=time.time())
        self.state.pop("loss", None)
        self.write()

    def on_train_batch_end(self, batch, logs=None):
        self.state["step"] = batch + 1
        if logs and "loss" in logs:
            self.state["loss"] = float(logs["loss"])
        if time.time() - self.written >= self.every_s:
            self.write()

    def on_epoch_end(self, epoch, logs=None):
        self.state["steps"] = self.params.get("steps") or self.state.get("step")
        self.write()

    def on_train_end(self, logs=None):
        self.state["state"] = "finished"
        self.write()

    def write(self) -> None:
        self.written = self.state["updated"] = time.time()
        write_text_atomically(self.paths.progress, json.dumps(self.state, sort_keys=True))
