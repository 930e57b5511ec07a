"""The models folder as the app sees it: which runs exist, what they do, loaded lazily.

Run names only ever come from ``list_runs(models_dir)``: a name sent by a browser or a
client is looked up in that list (never joined onto a path), so ``../x`` or an absolute
path can't reach anything outside the configured folder.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq.config import Config, load_run_config
from seq2seq.corpora.spec import BY_NAME, TFDS_PREFIX, corpus_languages
from seq2seq.corpora.spec import is_dialogue as corpus_is_dialogue
from seq2seq.runs import RunPaths, list_runs, read_metrics

TRAIN_TRANSLATION = "python -m seq2seq.train --preset quickstart --output runs/quickstart"
TRAIN_CHAT = "python -m seq2seq.train --preset quickstart-chat --output runs/quickstart-chat"


class UnknownModelError(ValueError):
    """A run name that is not a trained run in the configured models folder."""


def is_dialogue(config: Config) -> bool:
    """Dialogue runs: a dialogue corpus, or any corpus trained with context turns."""
    return corpus_is_dialogue(config.data.corpus, config.data.context_turns)


def direction(config: Config) -> str:
    """A short human label for what the run maps: ``es → en``, ``chat: ...``, ..."""
    data = config.data
    if is_dialogue(config):
        turns = data.context_turns
        context = f", {turns} context turn{'s' if turns != 1 else ''}" if turns else ""
        return f"chat: {data.corpus}{context}"
    if data.corpus in BY_NAME:
        source, target = corpus_languages(data.corpus, data.reverse)
        return f"{source} → {target}"
    if data.corpus.startswith(TFDS_PREFIX):
        keys = (data.tfds_source_key, data.tfds_target_key)
        if data.reverse:
            keys = keys[::-1]
        arrow = f" ({keys[0]} → {keys[1]})" if all(keys) else ""
        return f"{data.corpus}{arrow}"
    if data.corpus == "tsv":
        return "tsv: " + ("target → source" if data.reverse else "source → target")
    return data.corpus


@dataclass(frozen=True)
class RunInfo:
    name: str
    path: Path
    config: Config

    @property
    def dialogue(self) -> bool:
        return is_dialogue(self.config)

    @property
    def label(self) -> str:
        return f"{self.name} ({direction(self.config)})"


def discover(models_dir: str | Path) -> list[RunInfo]:
    """Every trained run directly inside ``models_dir`` with a readable config."""
    runs = []
    for path in list_runs(models_dir):
        try:
            config = load_run_config(RunPaths(path).config)
        except ValueError:  # ConfigError: an unreadable or future config; not offered
            continue
        runs.append(RunInfo(path.name, path, config))
    return runs


class Registry:
    """The runs of one models folder and a cache of their loaded ``Translator``s."""

    def __init__(self, models_dir: str | Path, max_input_chars: int = 1000):
        self.models_dir = Path(models_dir)
        self.max_input_chars = max_input_chars
        self._translators: dict[str, Any] = {}
        self._extras: dict[tuple[str, str], Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def runs(self, kind: str = "all") -> list[RunInfo]:
        """``kind``: ``translation``, ``dialogue`` or ``all``."""
        runs = discover(self.models_dir)
        if kind == "translation":
            return [r for r in runs if not r.dialogue]
        if kind == "dialogue":
            return [r for r in runs if r.dialogue]
        return runs

    def choices(self, kind: str = "all") -> list[tuple[str, str]]:
        """(label, name) pairs for a dropdown."""
        return [(r.label, r.name) for r in self.runs(kind)]

    def resolve(self, name: Any, kind: str = "all") -> RunInfo:
        """The run called ``name`` (exact match against the folder listing) or an error."""
        runs = self.runs(kind)
        if isinstance(name, str):
            for run in runs:
                if run.name == name:
                    return run
        what = {"translation": "translation model", "dialogue": "chat model"}.get(kind, "model")
        if not runs:
            command = TRAIN_CHAT if kind == "dialogue" else TRAIN_TRANSLATION
            raise UnknownModelError(
                f"No trained {what} in {self.models_dir}. Train one with `{command}`."
            )
        shown = repr(name)[:60] if name else "none"
        names = ", ".join(r.name for r in runs)
        raise UnknownModelError(f"Unknown {what} {shown}; choose one of: {names}.")

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def translator(self, run: RunInfo):
        """The run's ``Translator``, loaded on first use (``safe_mode=True``) and kept."""
        cached = self._translators.get(run.name)
        if cached is not None:
            return cached
        with self._lock(run.name):
            if run.name not in self._translators:
                from seq2seq.translator import Translator

                # The app checks the user's text against max_input_chars itself; a chat
                # source also carries earlier turns, so the translator gets head-room.
                limit = self.max_input_chars * (run.config.data.context_turns + 2)
                self._translators[run.name] = Translator.from_run(run.path, max_input_chars=limit)
            return self._translators[run.name]

    def cached(self, run: RunInfo, key: str, build):
        """Memoise ``build()`` per run (parameter counts, for instance)."""
        slot = (run.name, key)
        if slot not in self._extras:
            with self._lock(run.name):
                if slot not in self._extras:
                    self._extras[slot] = build()
        return self._extras[slot]

    def metrics(self, run: RunInfo) -> dict[str, Any]:
        return read_metrics(RunPaths(run.path))
