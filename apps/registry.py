"""The models folder as the app sees it: which runs exist, what they do, loaded lazily.

A run that is still training is offered as soon as it has saved a first ``model.keras`` (the
best epoch so far), marked as training; when training writes a better one (atomically: a
temporary file renamed over it), the loaded model is replaced by it in the background, and
requests keep the model they started with.

Run names only ever come from the folder listing (``survey``): a name sent by a browser or a
client is looked up in that list (never joined onto a path), so ``../x`` or an absolute
path can't reach anything outside the configured folder.
"""

from __future__ import annotations

import logging
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apps.run_status import is_training
from seq2seq.config import Config, load_run_config
from seq2seq.data.corpora.spec import BY_NAME, TFDS_PREFIX, corpus_languages
from seq2seq.data.corpora.spec import is_dialogue as corpus_is_dialogue
from seq2seq.runs import RunError, RunPaths, model_file, open_run, read_metrics

log = logging.getLogger(__name__)

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


QUICKSTART_PRESETS = ("quickstart", "quickstart-chat")
QUICK_EPOCHS = 2  # a run trained this few epochs is labelled a quick demo model


def real_preset(config: Config) -> str | None:
    """The preset that trains a model of this kind for real quality, where one exists."""
    data = config.data
    if is_dialogue(config):
        return {"daily_dialog": "chat", "cornell_dialogs": "chat-cornell"}.get(data.corpus)
    if data.corpus == "anki/spa-eng":
        return "es-en-gru" if data.reverse else "en-es-gru"
    return None


def quality_line(config: Config, metrics: dict[str, Any], training: bool = False) -> str:
    """One line on how good a trained run is, from its ``metrics.json``: a translation
    run's best dev BLEU (and its epoch), a chat run's dev perplexity; a run of the
    quickstart presets, or one trained at most two epochs, is called a quick demo model
    and the preset that trains one for real quality is named. A run still ``training`` is
    shown with the epoch and score of the model in use (its best so far), and a note that
    its outputs improve as training continues."""
    best = metrics.get("best") if isinstance(metrics.get("best"), dict) else {}
    count = len([e for e in metrics.get("epochs") or [] if isinstance(e, dict)])
    after = f"after {count} epoch{'s' if count != 1 else ''}" if count else ""
    if is_dialogue(config):
        value = metrics.get("perplexity", best.get("val_perplexity"))
        if training:  # a test perplexity is only measured at the end: the best dev one
            value = best.get("val_perplexity", value)
        score = f"dev perplexity {value:.1f}" if isinstance(value, int | float) else ""
    else:
        value, epoch = best.get("dev_bleu"), best.get("epoch")
        score = f"dev BLEU {value:.1f}" if isinstance(value, int | float) else ""
        if isinstance(epoch, int) and count > 1:
            after = f"(best epoch {epoch} of {count})"
    if not score:
        return "quality: no dev scores recorded yet (metrics.json has none)"
    quickstart = config.name in QUICKSTART_PRESETS
    if training:
        kind = "quickstart model" if quickstart else "model"
        epoch = best.get("epoch")
        at = f"epoch {epoch}, " if isinstance(epoch, int) else ""
        outputs = "replies" if is_dialogue(config) else "translations"
        return (
            f"{kind}, still training: {at}{score} — {outputs} improve as training continues "
            "(each better checkpoint is loaded as it is saved)"
        )
    if not quickstart and count > QUICK_EPOCHS:
        return f"quality: {score} {after}"
    kind = "quickstart model" if quickstart else "quick demo model"
    after = f"after {count} epoch{'s' if count != 1 else ''}" if count else ""
    preset = real_preset(config)
    advice = f"train {preset} for real quality" if preset else "train longer for real quality"
    if preset == config.name:  # a real preset stopped early: it needs its epochs
        advice = "train it longer for real quality"
    return " ".join(part for part in (f"{kind}: {score}", after, f"— {advice}") if part)


@dataclass(frozen=True)
class RunInfo:
    """A usable run; ``training``: still training (its model is the best epoch so far)."""

    name: str
    path: Path
    config: Config
    training: bool = False

    @property
    def dialogue(self) -> bool:
        return is_dialogue(self.config)

    @property
    def label(self) -> str:
        return f"{self.name} ({direction(self.config)}{', training' if self.training else ''})"


def model_signature(path: Path) -> tuple[int, int, int] | None:
    """What identifies the run's model file as written (inode, mtime, size): a new
    ``model.keras`` is renamed over the old one, so each save changes it; None when absent."""
    try:
        stat = model_file(RunPaths(path)).stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def best_epoch_text(metrics: dict[str, Any]) -> str:
    """``epoch 5, dev perplexity 34.4`` (or dev BLEU) of the best epoch in ``metrics``."""
    best = metrics.get("best") if isinstance(metrics.get("best"), dict) else {}
    parts = [f"epoch {best['epoch']}"] if isinstance(best.get("epoch"), int) else []
    for key, name in (("val_perplexity", "dev perplexity"), ("dev_bleu", "dev BLEU")):
        if isinstance(best.get(key), int | float):
            parts.append(f"{name} {best[key]:.1f}")
    return ", ".join(parts) or "no dev scores"


@dataclass(frozen=True)
class BrokenRun:
    """A folder of the models folder that cannot be used, and why (without server paths)."""

    name: str
    reason: str


def without_paths(message: str, path: Path) -> str:
    """``message`` with the run's server paths replaced by its name: a browser user learns
    what is wrong with the run, not where the server keeps it."""
    for where in sorted({str(path.resolve()), str(path.absolute()), str(path)}, key=len)[::-1]:
        message = message.replace(where, path.name)
    return message


def check_run(path: Path) -> Config:
    """The run's config if the folder looks usable (structure, config, tokenizer files,
    a complete model archive); ``ValueError`` saying why not. Cheap: no model is loaded."""
    paths = open_run(path)
    config = load_run_config(paths.config)
    for folder in (paths.source_vocab, paths.target_vocab):
        if not (folder / "tokenizer.json").is_file():
            raise RunError(f"{path}: {folder.name}/tokenizer.json is missing")
    model = model_file(paths)
    if not zipfile.is_zipfile(model):
        raise RunError(f"{model} is corrupt: not a complete .keras archive (truncated?)")
    return config


def survey(models_dir: str | Path) -> tuple[list[RunInfo], list[BrokenRun]]:
    """The usable runs directly inside ``models_dir``, and the run folders that are not
    (a folder with neither FORMAT nor config.yaml is not a run and is left out). A run still
    training is usable, marked ``training``, once it has saved its first ``model.keras``
    (the best epoch so far); before that it is neither (the Training tab shows it)."""
    folder = Path(models_dir)
    runs, broken = [], []
    children = sorted(folder.iterdir()) if folder.is_dir() else []
    for path in children:
        if not path.is_dir() or not any((path / n).exists() for n in ("FORMAT", "config.yaml")):
            continue
        training = is_training(path)
        if training and not RunPaths(path).best_model.is_file():
            continue
        try:
            runs.append(RunInfo(path.name, path, check_run(path), training))
        except (ValueError, OSError) as error:  # RunError, ConfigError, unreadable files
            if not training:  # a training run's folder is still being written: not broken
                broken.append(BrokenRun(path.name, without_paths(str(error), path)))
    return runs, broken


def discover(models_dir: str | Path) -> list[RunInfo]:
    """Every usable trained run directly inside ``models_dir``."""
    return survey(models_dir)[0]


class Registry:
    """The runs of one models folder and a cache of their loaded ``Translator``s."""

    def __init__(self, models_dir: str | Path, max_input_chars: int = 1000):
        self.models_dir = Path(models_dir)
        self.max_input_chars = max_input_chars
        self._translators: dict[str, Any] = {}
        self._extras: dict[tuple[str, str], Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._failed: dict[str, str] = {}  # runs whose model failed to load: the reason
        self._first_loaded = threading.Event()  # set by ``preload_at_start``
        # The model file each loaded translator (or failed load) was read from, and the
        # background reloads of a model file that changed since (a training run's new best).
        self._signatures: dict[str, tuple[int, int, int] | None] = {}
        self._reloads: dict[str, threading.Thread] = {}

    def runs(self, kind: str = "all") -> list[RunInfo]:
        """Usable runs; ``kind``: ``translation``, ``dialogue`` or ``all``. A run whose
        model failed to load is left out until its model file changes (a training run
        writes a new one)."""
        runs = []
        for run in discover(self.models_dir):
            if run.name in self._failed:
                if self._signatures.get(run.name) == model_signature(run.path):
                    continue
                self._failed.pop(run.name, None)
            runs.append(run)
        if kind == "translation":
            return [r for r in runs if not r.dialogue]
        if kind == "dialogue":  # backward (reply -> message) runs only serve MMI reranking
            return [r for r in runs if r.dialogue and not r.config.data.reverse]
        return runs

    def broken(self) -> list[BrokenRun]:
        """Run folders that cannot be used (listed apart in the app), with the reason."""
        _, broken = survey(self.models_dir)
        self.runs()  # forgets the failed loads of model files that changed since
        failed = [BrokenRun(name, reason) for name, reason in sorted(self._failed.items())]
        return sorted(broken + failed, key=lambda run: run.name)

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
        for broken in self.broken():
            if broken.name == name:
                raise UnknownModelError(f"The run {broken.name} cannot be used: {broken.reason}")
        if not runs:
            command = TRAIN_CHAT if kind == "dialogue" else TRAIN_TRANSLATION
            raise UnknownModelError(
                f"No trained {what} in {self.models_dir}. Train one with: {command}"
            )
        shown = repr(name)[:60] if name else "none"
        names = ", ".join(r.name for r in runs)
        raise UnknownModelError(f"Unknown {what} {shown}; choose one of: {names}.")

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def translator(self, run: RunInfo):
        """The run's ``Translator``, loaded on first use (``safe_mode=True``) and kept. When
        the run's model file has changed since (a training run saved a better epoch), the
        kept one is still returned while the new one loads in the background
        (``reload_changed``), and the new one from then on."""
        cached = self._translators.get(run.name)
        if cached is not None:
            if self._signatures.get(run.name) != model_signature(run.path):
                self.reload_changed(run)
            return cached
        with self._lock(run.name):
            if run.name not in self._translators:
                signature = model_signature(run.path)  # before reading: a newer one reloads
                try:
                    translator = self._load(run)
                except ValueError as error:
                    self._failed[run.name] = str(error)
                    self._signatures[run.name] = signature
                    raise
                self._translators[run.name] = translator
                self._signatures[run.name] = signature
            return self._translators[run.name]

    def _load(self, run: RunInfo):
        """A new ``Translator`` of ``run``, its default search built (``RunError``
        without server paths when the run cannot be loaded)."""
        from seq2seq.inference.translator import Translator

        # The app checks the user's text against max_input_chars itself; a chat
        # source also carries earlier turns, so the translator gets head-room.
        limit = self.max_input_chars * (run.config.data.context_turns + 2)
        try:
            translator = Translator.from_run(
                run.path, max_input_chars=limit, jit_compile=False, eager_until_built=True
            )
        except ValueError as error:  # RunError: damaged files, other vocabularies
            raise RunError(without_paths(str(error), run.path)) from error
        # One sentence at a time: the plain graph is within milliseconds of XLA
        # and has no per-shape compiling. Until it is built (the tab's default
        # method now, the others on first use), searches run eagerly.
        translator.searcher.warm_up(("sample",) if run.dialogue else ("greedy",))
        return translator

    def reload_changed(self, run: RunInfo) -> threading.Thread | None:
        """Reload ``run`` in the background if its model file changed since it was loaded
        (one reload at a time per run); the thread, or None when nothing is to reload. The
        loaded translator is swapped once the new one is ready, so a reply in progress
        finishes with the model it began with. A file that fails to load is not tried again
        until it changes; the previous model stays in use meanwhile."""
        with self._guard:
            if run.name not in self._translators:
                return None
            running = self._reloads.get(run.name)
            if running is not None and running.is_alive():
                return running
            signature = model_signature(run.path)
            if signature is None or signature == self._signatures.get(run.name):
                return None

            def reload() -> None:
                started = time.perf_counter()
                try:
                    translator = self._load(run)
                    translator.searcher.wait_until_built()
                except (ValueError, OSError) as error:
                    log.warning("%s: the new model.keras was not loaded: %s", run.name, error)
                    self._signatures[run.name] = signature
                    return
                self._translators[run.name] = translator
                self._signatures[run.name] = signature
                log.info(
                    "%s: switched to its new model.keras (%s), loaded in %.1f s",
                    run.name,
                    best_epoch_text(self.metrics(run)),
                    time.perf_counter() - started,
                )

            thread = threading.Thread(target=reload, name=f"reload-{run.name}", daemon=True)
            self._reloads[run.name] = thread
            thread.start()
            return thread

    def reload_all_changed(self) -> list[threading.Thread]:
        """``reload_changed`` for every loaded run (the app calls it every few seconds)."""
        loaded = [run for run in self.runs() if run.name in self._translators]
        return [thread for run in loaded if (thread := self.reload_changed(run)) is not None]

    def preload_at_start(self, runs: list[RunInfo]) -> threading.Thread:
        """``preload`` the runs the tabs open on; ``wait_for_first`` waits for the first."""
        return self.preload(runs, self._first_loaded)

    def preload(
        self, runs: list[RunInfo], first_loaded: threading.Event | None = None
    ) -> threading.Thread:
        """Load ``runs`` and build their default search, one after the other in a
        background thread, so a first request neither waits for a model load nor for a
        build (nor competes with more than one of them). ``first_loaded`` is set once the
        first run is loaded or has failed."""
        done_loading = first_loaded or threading.Event()

        def load() -> None:
            try:
                for run in runs:
                    if run.name in self._translators:  # loaded before (a page load
                        done_loading.set()  # re-selects it): nothing to do or to log
                        continue
                    started = time.perf_counter()
                    try:
                        translator = self.translator(run)
                        done_loading.set()
                        translator.searcher.wait_until_built()
                        log.info(
                            "%s: loaded, ready in %.1f s", run.name, time.perf_counter() - started
                        )
                    except (ValueError, OSError) as error:  # reported when the run is used
                        log.warning("%s: not preloaded: %s", run.name, error)
            finally:
                done_loading.set()
            from apps.plots import attention_figure, figure_png

            figure_png(attention_figure(np.eye(2), ["a", "b"], ["a", "b"]))  # loads the fonts

        thread = threading.Thread(target=load, name="registry-preload", daemon=True)
        thread.start()
        return thread

    def wait_for_first(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until ``preload_at_start`` has loaded its first run,
        or given up on it. The app opens only then: a person's first sentence should not pay for
        importing TensorFlow and loading the model (2.7 s on a 2-core CPU) but run at once,
        op by op while the search program is built behind it."""
        return self._first_loaded.wait(timeout_s)

    def cached(self, run: RunInfo, key: str, build):
        """Memoise ``build()`` per run (parameter counts, for instance)."""
        slot = (run.name, key)
        if slot not in self._extras:
            with self._lock(run.name):
                if slot not in self._extras:
                    self._extras[slot] = build()
        return self._extras[slot]

    def quality(self, run_name: Any = None, kind: str = "all") -> str:
        """``quality_line`` of the run called ``run_name`` (None: the first run of ``kind``,
        the one a page opens on); '' when there is no such run."""
        runs = self.runs(kind)
        if run_name is None and runs:
            run_name = runs[0].name
        run = next((run for run in runs if run.name == run_name), None)
        return quality_line(run.config, self.metrics(run), run.training) if run else ""

    def metrics(self, run: RunInfo) -> dict[str, Any]:
        """The run's metrics.json; {} (shown as "no metrics") when missing or damaged."""
        try:
            return read_metrics(RunPaths(run.path))
        except (ValueError, OSError) as error:
            log.warning("%s: metrics.json cannot be read: %s", run.name, error)
            return {}
