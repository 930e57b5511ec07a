"""The run folder as training sees it: opened or refused before anything is written,
created by the chief only, its record reset on resume, and closed when training ends.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import keras

from seq2seq import run_lock
from seq2seq.config import Config, ConfigError, config_yaml, load_run_config
from seq2seq.data.source_words import training_source_words, write_source_words
from seq2seq.data.tokenizers import Tokenizer
from seq2seq.runs import (
    RunError,
    RunPaths,
    check_fingerprint,
    check_free_space,
    read_metrics,
    remove_partial_files,
    write_atomically,
    write_fingerprint,
    write_metrics,
    write_text_atomically,
)
from seq2seq.training.callbacks import write_history
from seq2seq.training.checkpoints import save_model_only, variables_bytes
from seq2seq.training.data import PreparedData


def open_run_config(
    config: Config | None, output: str | Path, resume: bool, epochs: int | None = None
) -> tuple[Config, RunPaths]:
    """The config to train with; nothing is written yet (bad input leaves no folder behind).

    A resumed run keeps its saved config; only its epoch budget can be raised (``epochs``).
    """
    paths = RunPaths(Path(output))
    if resume:
        if not paths.config.is_file():
            raise RunError(f"cannot resume: {paths.root} has no config.yaml (nothing to resume)")
        saved = load_run_config(paths.config)
        if epochs is not None:
            saved = saved.replace(train=dataclasses.replace(saved.train, epochs=epochs))
        return saved, paths
    if config is None:
        raise ConfigError("a new run needs a config (a preset, a file or overrides)")
    if paths.config.is_file():
        raise RunError(
            f"{paths.root} already holds a run; pass --resume to continue it, "
            "or choose another --output"
        )
    if paths.root.exists() and not paths.root.is_dir():
        raise RunError(f"--output {paths.root} exists and is not a folder")
    return config, paths


def finished_run(paths: RunPaths, config: Config) -> bool:
    """A finished run whose epoch budget was not raised has nothing left to do."""
    metrics = read_metrics(paths)
    done = len(metrics.get("epochs", []))
    return bool(metrics.get("finished")) and (
        done >= config.train.epochs or metrics.get("stopped_early", False)
    )


def create_run_folder(
    paths: RunPaths, config: Config, prepared: PreparedData, new: bool = False
) -> None:
    """Chief only: lock the folder, then FORMAT, config.yaml and the tokenizers, each
    written atomically. A ``new`` run re-checks under the lock that no other training
    wrote a run there since ``open_run_config`` looked."""
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunError(f"cannot create the run folder {paths.root}: {error.strerror}") from None
    run_lock.acquire(paths.root, "training")
    if new and paths.config.is_file():
        raise RunError(
            f"{paths.root} already holds a run (written while this one prepared its data); "
            "pass --resume to continue it, or choose another --output"
        )
    try:
        paths.create()
        if not paths.config.is_file():
            write_text_atomically(paths.config, config_yaml(config))
        for tokenizer, folder in (
            (prepared.source_tokenizer, paths.source_vocab),
            (prepared.target_tokenizer, paths.target_vocab),
        ):
            if not folder.is_dir():
                save_tokenizer_atomically(tokenizer, folder)
        if not paths.fingerprint.is_file():
            write_fingerprint(paths)
        if not paths.source_words.is_file():  # what decode.copy_names takes as known
            words = training_source_words(prepared.folder.files("train"), prepared.source_tokenizer)
            write_source_words(paths.source_words, words)
    except OSError as error:
        raise RunError(f"cannot write the run folder {paths.root}: {error.strerror}") from None


def lock_existing_folder(paths: RunPaths) -> None:
    """Refuse at once, before any work, when another process writes this folder, or when
    the tokenizers of the run to resume are not the ones it recorded."""
    if paths.root.is_dir():
        run_lock.acquire(paths.root, "training")
        if paths.source_vocab.is_dir() and paths.target_vocab.is_dir():
            check_fingerprint(paths)


def save_tokenizer_atomically(tokenizer: Tokenizer, folder: Path) -> None:
    partial = folder.with_name(f".partial-{folder.name}")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer.save(partial)
    partial.rename(folder)


def record_start(
    paths: RunPaths, prepared: PreparedData, policy: str, replicas: int, start: int
) -> None:
    """Facts about the data and hardware; epochs after the restored state are forgotten."""
    for folder in (paths.root, paths.checkpoints, paths.backup):
        remove_partial_files(folder)  # the chief alone writes them, and it is not writing
    metrics = read_metrics(paths)
    metrics["epochs"] = [e for e in metrics.get("epochs", []) if e["epoch"] <= start]
    best = metrics.get("best")
    if best and best["epoch"] > start:  # its model.keras came from an epoch being redone
        metrics.pop("best", None)
        metrics.pop("best_score", None)
    metrics.pop("finished", None)
    metrics.update(
        {
            "pairs": prepared.pairs,
            "dropped": prepared.dropped,
            "prepared": str(prepared.folder.root),
            "train_target_tokens": prepared.train_target_tokens,
            "source_vocab_size": prepared.source_tokenizer.vocab_size,
            "target_vocab_size": prepared.target_tokenizer.vocab_size,
            "precision": policy,
            "replicas": replicas,
        }
    )
    write_metrics(paths, metrics)
    write_history(paths, metrics["epochs"])


def finish_run(paths: RunPaths, model: keras.Model, stopped_early: bool) -> dict:
    check_free_space(paths.root, 2 * variables_bytes(model.weights), "the final models")
    write_atomically(paths.last_model, lambda path: save_model_only(model, path))
    if not paths.best_model.is_file():
        write_atomically(paths.best_model, lambda path: save_model_only(model, path))
    metrics = read_metrics(paths)
    metrics["finished"] = True
    metrics["stopped_early"] = stopped_early
    metrics["perplexity"] = math.exp(min(metrics.get("best", {}).get("val_loss", 50.0), 50.0))
    write_metrics(paths, metrics)
    return metrics
