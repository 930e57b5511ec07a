"""Training callbacks: the run's record of each epoch, the best model, resumable patience."""

from __future__ import annotations

import math
import time

import keras

from seq2seq.runs import (
    RunPaths,
    read_metrics,
    write_atomically,
    write_metrics,
    write_text_atomically,
)


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
            write_atomically(self.paths.best_model, self.model.save)
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


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience survives ``--resume``.

    Keras resets the counter at every ``fit``; this one first replays the epochs that
    ``RunRecorder`` recorded in ``metrics.json``, so an interrupted and resumed run
    stops at the same epoch as an uninterrupted one.
    """

    def __init__(self, paths: RunPaths, replay_epochs: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.paths = paths
        self.replay_epochs = replay_epochs

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.monitor_op is None:
            self._set_monitor_op()
        for entry in read_metrics(self.paths).get("epochs", []):
            if self.replay_epochs is not None and entry["epoch"] > self.replay_epochs:
                continue
            value = entry.get(self.monitor)
            if value is None:
                continue
            self.wait += 1
            if self._is_improvement(value, self.best):
                self.best, self.best_epoch, self.wait = value, entry["epoch"] - 1, 0
