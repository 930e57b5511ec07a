"""The run folder: one place per training run holding everything needed to use it again.

Layout: ``config.yaml``, ``FORMAT`` (run-folder format version), ``source_vocab/``,
``target_vocab/``, ``model.keras`` (best by the selection metric), ``last.keras``,
``backup/`` (Keras ``BackupAndRestore`` state for ``--resume``), ``metrics.json``,
``history.csv`` and ``logs/`` (TensorBoard).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_FORMAT = 1


class RunError(ValueError):
    """A run folder is missing, incomplete or from an incompatible version."""


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def format(self) -> Path:
        return self.root / "FORMAT"

    @property
    def source_vocab(self) -> Path:
        return self.root / "source_vocab"

    @property
    def target_vocab(self) -> Path:
        return self.root / "target_vocab"

    @property
    def best_model(self) -> Path:
        return self.root / "model.keras"

    @property
    def last_model(self) -> Path:
        return self.root / "last.keras"

    @property
    def backup(self) -> Path:
        return self.root / "backup"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def create(self) -> RunPaths:
        self.root.mkdir(parents=True, exist_ok=True)
        self.format.write_text(f"{RUN_FORMAT}\n", encoding="utf-8")
        return self


def open_run(path: str | Path) -> RunPaths:
    """Check that ``path`` is a usable, compatible run folder with a trained model."""
    paths = RunPaths(Path(path))
    if not paths.root.is_dir():
        raise RunError(
            f"run folder not found: {paths.root} (train one with "
            f"`python -m seq2seq.train --preset quickstart --output {paths.root}`)"
        )
    if not paths.format.is_file() or not paths.config.is_file():
        raise RunError(f"{paths.root} is not a seq2seq run folder (no FORMAT or config.yaml)")
    found = paths.format.read_bytes()[:64].decode("utf-8", "replace").strip()
    if not found.isdigit():
        raise RunError(f"{paths.format} is damaged: it holds {found[:20]!r}, not a format number")
    if found != str(RUN_FORMAT):
        raise RunError(
            f"{paths.root} was written by a seq2seq with run format {found!r}; this version "
            f"reads format {RUN_FORMAT}. Retrain it with this version."
        )
    for required in (paths.source_vocab, paths.target_vocab):
        if not required.is_dir():
            raise RunError(f"{paths.root} is incomplete: {required.name}/ is missing")
    if not paths.best_model.is_file() and not paths.last_model.is_file():
        raise RunError(
            f"{paths.root} has no trained model yet (model.keras); finish or resume training "
            f"with `python -m seq2seq.train --output {paths.root} --resume`"
        )
    return paths


def model_file(paths: RunPaths) -> Path:
    return paths.best_model if paths.best_model.is_file() else paths.last_model


def read_metrics(paths: RunPaths) -> dict[str, Any]:
    if not paths.metrics.is_file():
        return {}
    return json.loads(paths.metrics.read_text(encoding="utf-8"))


def write_metrics(paths: RunPaths, metrics: dict[str, Any]) -> None:
    temporary = paths.metrics.with_suffix(".tmp")
    temporary.write_text(json.dumps(metrics, indent=2, sort_keys=True), encoding="utf-8")
    temporary.replace(paths.metrics)


def list_runs(folder: str | Path) -> list[Path]:
    """Run folders directly inside ``folder`` that hold a trained model, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    runs = []
    for child in sorted(folder.iterdir()):
        try:
            runs.append(open_run(child).root)
        except RunError:
            continue
    return runs
