"""The run folder: one place per training run holding everything needed to use it again.

Layout: ``config.yaml``, ``FORMAT`` (run-folder format version), ``source_vocab/``,
``target_vocab/``, ``model.keras`` (best by the selection metric), ``last.keras``,
``backup/`` (the training state of the last completed epochs, for ``--resume``, and the
epoch so far after Ctrl-C or SIGTERM, ``seq2seq.training.mid_epoch``),
``checkpoints/`` (the last ``train.keep_checkpoints`` epochs' weights, for averaging),
``vocabularies.sha256`` (a fingerprint of both tokenizer folders, checked whenever the
model is loaded with them), ``metrics.json``, ``history.csv``, ``progress.json`` (where
training is now: epoch, step, loss, for the app and the quickstart's progress bars),
``logs/`` (TensorBoard) and ``.lock`` (held by the one process writing the folder, see
``seq2seq.run_lock``).

Every file is written under a temporary name in the same folder, flushed and renamed, so a
run killed at any instant keeps the previous complete version of each file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_FORMAT = 1


class RunError(ValueError):
    """A run folder is missing, incomplete or from an incompatible version."""


class DiskFullError(RunError):
    """A save found too little free space, or the disk filled up while writing."""


FREE_SPACE_MARGIN = 16 << 20  # bytes kept free beyond a save's estimated size


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC or EDQUOT, also as h5py and Keras word them (their errno is often lost)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return "No space left on device" in text or "Disk quota exceeded" in text


def megabytes(size: float) -> str:
    return f"{size / 1e6:,.1f} MB"


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """``DiskFullError`` before a save of about ``needed`` bytes that would not fit."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell: the write itself reports a full disk
    if free < needed + FREE_SPACE_MARGIN:
        raise DiskFullError(
            f"disk full: {what} needs about {megabytes(needed)} but {folder} has "
            f"{megabytes(free)} free; free some space"
        )


def disk_full(path: Path, error: BaseException) -> DiskFullError:
    return DiskFullError(f"disk full while writing {path}: {type(error).__name__}: {error}")


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
    def fingerprint(self) -> Path:
        return self.root / "vocabularies.sha256"

    @property
    def source_words(self) -> Path:
        """The training sources' words (``seq2seq.data.source_words``)."""
        return self.root / "source_words.txt"

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
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def progress(self) -> Path:
        return self.root / "progress.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def create(self) -> RunPaths:
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.format, f"{RUN_FORMAT}\n")
        return self


def temporary_name(path: Path) -> Path:
    """A hidden sibling that keeps the suffixes Keras checks (``.keras``, ``.weights.h5``).

    Only the chief writes a run folder, so the name need not be unique per process.
    """
    return path.with_name(f".partial-{path.name}")


# -- test seam --------------------------------------------------------------------------
# Three environment variables exist for the tests only, so that a kill, a full disk or a
# SIGTERM can be made to happen at one exact point and the recovery tested deterministically
# (tests/test_runs.py, tests/test_checkpoints.py, tests/test_mid_epoch.py). Nothing
# outside the tests sets them; unset, ``fault_seam`` returns at once.
KILL_AT = "SEQ2SEQ_KILL_AT"  # NAME:N: SIGKILL the process the N-th time it reaches NAME
FULL_DISK_AT = "SEQ2SEQ_FULL_DISK_AT"  # NAME:N: raise ENOSPC there instead
TERM_AT = "SEQ2SEQ_TERM_AT"  # NAME:N: send the process SIGTERM there (as a scheduler would)


def fault_seam(name: str, torn: Path | None = None) -> None:
    """The tests' fault seam at a write's commit point ``name`` (a run file's name, e.g.
    ``model.keras``, or ``state`` / ``state-renamed`` for a training state), or after a
    training step (``step``): with ``SEQ2SEQ_KILL_AT=name:N`` it SIGKILLs the process the
    N-th time it passes ``name``, first cutting the file ``torn`` in half as a write stopped
    mid-way would; with ``SEQ2SEQ_FULL_DISK_AT=name:N`` it raises ENOSPC there; with
    ``SEQ2SEQ_TERM_AT=name:N`` it sends the process SIGTERM. Unset: does nothing."""
    if _nth_pass(FULL_DISK_AT, name):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(torn or name))
    if _nth_pass(TERM_AT, name):
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if not _nth_pass(KILL_AT, name):
        return
    if torn is not None and torn.is_file():
        with open(torn, "rb+") as handle:
            handle.truncate(torn.stat().st_size // 2)
    os.kill(os.getpid(), signal.SIGKILL)


def _nth_pass(variable: str, name: str) -> bool:
    """Whether the seam ``variable`` (``NAME:N``) names ``name`` and this is its N-th pass."""
    wanted = os.environ.get(variable)
    if not wanted or wanted.rpartition(":")[0] != name:
        return False
    key = f"{variable}:{name}"
    _FAULT_COUNTS[key] = _FAULT_COUNTS.get(key, 0) + 1
    return str(_FAULT_COUNTS[key]) == wanted.rpartition(":")[2]


_FAULT_COUNTS: dict[str, int] = {}


def sync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (the directory entry itself is flushed)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)``, flush it to disk, then rename it over ``path`` in one step."""
    path = Path(path)
    temporary = temporary_name(path)
    try:
        write(temporary)
        fault_seam(path.name, torn=temporary)
        if temporary.is_file():
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except Exception as error:  # h5py and Keras wrap ENOSPC in their own types
        if is_disk_full(error):
            raise disk_full(path, error) from None
        raise
    finally:
        if temporary.is_file():
            temporary.unlink()
    sync_folder(path.parent)


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def remove_partial_files(folder: Path) -> None:
    """Leftovers of writes that a kill interrupted (never a complete file)."""
    if folder.is_dir():
        for leftover in folder.glob(".partial-*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


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


def vocabulary_digest(paths: RunPaths) -> str:
    """SHA-256 over every file of ``source_vocab/`` and ``target_vocab/`` (names and bytes)."""
    digest = hashlib.sha256()
    for folder in (paths.source_vocab, paths.target_vocab):
        digest.update(f"{folder.name}\0".encode())
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(folder).as_posix()}\0".encode())
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            digest.update(b"\0")
    return digest.hexdigest()


def write_fingerprint(paths: RunPaths) -> None:
    """Bind the model to its tokenizers: record their fingerprint (once per run)."""
    write_text_atomically(paths.fingerprint, vocabulary_digest(paths) + "\n")


def check_fingerprint(paths: RunPaths) -> None:
    """``RunError`` when the tokenizers are not those the run recorded (swapped in from
    another run, or changed on disk). Runs from before fingerprints have none to check."""
    if not paths.fingerprint.is_file():
        return
    recorded = paths.fingerprint.read_text(encoding="utf-8", errors="replace").strip()
    found = vocabulary_digest(paths)
    if recorded != found:
        raise RunError(
            f"{paths.root}: source_vocab/ and target_vocab/ are not the tokenizers this model "
            f"was trained with (vocabulary fingerprint {found[:12]}, recorded "
            f"{recorded[:12]} in {paths.fingerprint.name}); restore the run's own tokenizers"
        )


def copy_fingerprint(source: RunPaths, target: RunPaths) -> None:
    """A copy of a run (averaged, exported) keeps the run's fingerprint."""
    if source.fingerprint.is_file():
        shutil.copy2(source.fingerprint, target.fingerprint)


def model_file(paths: RunPaths) -> Path:
    return paths.best_model if paths.best_model.is_file() else paths.last_model


def read_metrics(paths: RunPaths) -> dict[str, Any]:
    """``metrics.json``; {} before the first epoch. A damaged file (training writes it
    atomically, so only something else can damage it) is a ``RunError`` naming it."""
    if not paths.metrics.is_file():
        return {}
    try:
        metrics = json.loads(paths.metrics.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # ValueError: bad JSON or bad UTF-8
        raise RunError(
            f"{paths.metrics} cannot be read ({type(error).__name__}: {error}); restore it, "
            "or delete it to resume without the record of the earlier epochs"
        ) from None
    if not isinstance(metrics, dict):
        raise RunError(f"{paths.metrics} is damaged: it holds a {type(metrics).__name__}")
    return metrics


def write_metrics(paths: RunPaths, metrics: dict[str, Any]) -> None:
    write_text_atomically(paths.metrics, json.dumps(metrics, indent=2, sort_keys=True))


def read_progress(paths: RunPaths) -> dict[str, Any]:
    """``progress.json``: {} when there is none yet, or it cannot be read (it is rewritten
    every few seconds, and a reader must never take a run down with it)."""
    try:
        progress = json.loads(paths.progress.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return progress if isinstance(progress, dict) else {}


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
