"""Training callbacks: dev-set BLEU/chrF each epoch, the best model, resumable patience."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import keras

from seq2seq.config import DecodeConfig
from seq2seq.decoding import Searcher
from seq2seq.prediction import corpus_scores, decode_corpus, perplexity
from seq2seq.runs import RunPaths, read_metrics, write_metrics


class DevEvaluation(keras.callbacks.Callback):
    """Adds ``dev_bleu``/``dev_chrf`` to the epoch logs and saves the best model.

    It must run before EarlyStopping and the CSV/TensorBoard loggers so they see the
    scores. "Best" is by dev BLEU or by dev loss (``select_best_by``); the record of the
    best epoch lives in ``metrics.json`` so a resumed run keeps comparing against it.
    """

    def __init__(
        self,
        paths: RunPaths,
        source_ids: list[list[int]],
        references: list[str],
        detokenize: Callable[[list[int]], str],
        select_best_by: str = "bleu",
        max_length: int = 60,
        jit_compile: bool = True,
    ):
        super().__init__()
        self.paths = paths
        self.source_ids = source_ids
        self.references = references
        self.detokenize = detokenize
        self.select_best_by = select_best_by
        self.max_length = max_length
        self.jit_compile = jit_compile
        self.searcher: Searcher | None = None

    def on_train_begin(self, logs=None):
        self.searcher = Searcher(self.model, jit_compile=self.jit_compile)
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.source_ids:
            greedy = DecodeConfig(method="greedy", max_length=self.max_length)
            hypotheses = decode_corpus(
                self.searcher, self.source_ids, greedy, self.detokenize, batch_size=128
            )
            scores = corpus_scores(hypotheses, self.references)
            logs["dev_bleu"], logs["dev_chrf"] = scores["bleu"], scores["chrf"]
        if "val_loss" in logs:
            logs["val_perplexity"] = perplexity(float(logs["val_loss"]))
        self.record(epoch, logs)

    def score(self, logs) -> float:
        if self.select_best_by == "bleu" and "dev_bleu" in logs:
            return float(logs["dev_bleu"])
        return -float(logs.get("val_loss", logs.get("loss", math.inf)))

    def record(self, epoch: int, logs) -> None:
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
            self.model.save(self.paths.best_model)
        write_metrics(self.paths, metrics)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience survives ``--resume``.

    Keras resets the counter at every ``fit``; this one first replays the epochs that
    ``DevEvaluation`` recorded in ``metrics.json``, so an interrupted and resumed run
    stops at the same epoch as an uninterrupted one.
    """

    def __init__(self, paths: RunPaths, **kwargs):
        super().__init__(**kwargs)
        self.paths = paths

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.monitor_op is None:
            self._set_monitor_op()
        for entry in read_metrics(self.paths).get("epochs", []):
            value = entry.get(self.monitor)
            if value is None:
                continue
            self.wait += 1
            if self._is_improvement(value, self.best):
                self.best, self.best_epoch, self.wait = value, entry["epoch"] - 1, 0
