"""Training state for ``--resume`` and epoch weights for averaging, safe against a kill.

After each completed epoch the chief writes ``backup/epoch-NNNN/`` (model weights, optimizer
state, ``state.json``) into a hidden folder and renames it into place, so a state folder
either is complete or does not exist. The previous state is deleted only after the new one
is in place. On ``--resume`` the newest state that loads is used; a damaged one is reported
and the one before it is tried. The mid-epoch state (``seq2seq.training.mid_epoch``) is
written the same way (``write_state_folder``). ``checkpoints/epoch-NNNN.weights.h5`` keeps
the model weights of the last ``keep`` epochs for ``python -m seq2seq.average``.

Only the backup holds the optimizer state (``optimizer.npz``, Adam's two slots per weight:
twice the model). Keras's ``save_weights`` and ``save`` would add it to every file they
write, so the epoch checkpoints, ``model.keras`` and ``last.keras`` are written without it
(``save_weights_only``, ``save_model_only``): a third of the size.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seq2seq.runs import (
    RunPaths,
    check_free_space,
    disk_full,
    fault_seam,
    is_disk_full,
    sync_folder,
    temporary_name,
    write_atomically,
)

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

STATE_FORMAT = 1
BACKUPS_KEPT = 2
EPOCH_NAME = re.compile(r"epoch-(\d{4,})$")
WEIGHTS_NAME = re.compile(r"epoch-(\d{4,})\.weights\.h5$")


class CheckpointError(RuntimeError):
    """A saved training state cannot be read back."""


@dataclass(frozen=True)
class Restored:
    epochs_done: int
    folder: Path


def epoch_folders(backup: Path) -> list[tuple[int, Path]]:
    """Complete state folders, newest first."""
    if not backup.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in backup.iterdir() if (m := EPOCH_NAME.match(p.name))]
    return sorted(found, reverse=True)


@contextmanager
def without_optimizer(model: keras.Model) -> Iterator[None]:
    """Keras saves ``model.optimizer``'s variables with the weights; hide it meanwhile (the
    training step keeps its own reference, so training is not affected)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        yield
        return
    model.optimizer = None
    try:
        yield
    finally:
        model.optimizer = optimizer


def save_weights_only(model: keras.Model, path: Path) -> None:
    with without_optimizer(model):
        model.save_weights(path)


def save_model_only(model: keras.Model, path: Path) -> None:
    """A ``.keras`` file with the architecture and weights, no optimizer state."""
    with without_optimizer(model):
        model.save(path)


def load_weights_only(model: keras.Model, path: Path) -> None:
    """Load weights saved without optimizer state (Keras warns that it has none to load)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)


def save_optimizer(optimizer: keras.optimizers.Optimizer, path: Path) -> None:
    arrays = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_optimizer(optimizer: keras.optimizers.Optimizer, path: Path) -> None:
    with np.load(path) as saved:
        arrays = [saved[name] for name in sorted(saved.files)]
    variables = optimizer.variables
    if len(arrays) != len(variables):
        raise CheckpointError(
            f"{path}: holds {len(arrays)} optimizer variables, the model needs {len(variables)}"
        )
    for variable, array in zip(variables, arrays, strict=True):
        if tuple(variable.shape) != array.shape:
            raise CheckpointError(f"{path}: {variable.path} has shape {array.shape}")
        variable.assign(array)


def save_state(
    paths: RunPaths, model: keras.Model, optimizer: keras.optimizers.Optimizer, epochs_done: int
) -> None:
    """Write the state after ``epochs_done`` epochs, then drop states older than the last two."""
    backup = paths.backup
    backup.mkdir(parents=True, exist_ok=True)
    final = backup / f"epoch-{epochs_done:04d}"
    write_state_folder(final, model, optimizer, {"epochs_done": epochs_done}, seam="state")
    for _, old in epoch_folders(backup)[BACKUPS_KEPT:]:
        shutil.rmtree(old, ignore_errors=True)


def write_state_folder(
    final: Path,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    state: dict,
    seam: str,
) -> None:
    """``final/`` with the weights, the optimizer state and ``state.json`` (``state`` plus the
    format), written under a hidden name, flushed and renamed into place, so that a kill
    leaves the whole folder or none. ``seam`` names the test seam's two points (``seam``
    and ``seam-renamed``, see ``seq2seq.runs.fault_seam``)."""
    folder = final.parent
    partial = temporary_name(final)
    shutil.rmtree(partial, ignore_errors=True)
    check_free_space(
        folder, variables_bytes(model.weights) + variables_bytes(optimizer.variables), "the state"
    )
    partial.mkdir()
    try:
        save_weights_only(model, partial / "model.weights.h5")
        fault_seam(seam)
        save_optimizer(optimizer, partial / "optimizer.npz")
        content = {**state, "format": STATE_FORMAT}
        (partial / "state.json").write_text(json.dumps(content), encoding="utf-8")
        for file in partial.iterdir():
            with open(file, "rb+") as handle:
                os.fsync(handle.fileno())
    except Exception as error:  # the older states stay; this one is dropped whole
        shutil.rmtree(partial, ignore_errors=True)
        if is_disk_full(error):
            raise disk_full(partial, error) from None
        raise
    shutil.rmtree(final, ignore_errors=True)  # a state of the same name from an older attempt
    partial.rename(final)
    sync_folder(folder)
    fault_seam(f"{seam}-renamed")


def variables_bytes(variables) -> int:
    """What saving ``variables`` takes on disk, about (their bytes; HDF5 adds little)."""
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def load_state(folder: Path, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> Restored:
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        epochs_done = int(state["epochs_done"])
        load_weights_only(model, folder / "model.weights.h5")
        load_optimizer(optimizer, folder / "optimizer.npz")
    except CheckpointError:
        raise
    except Exception as error:  # h5py, numpy and json each raise their own kinds
        raise CheckpointError(f"{folder}: {type(error).__name__}: {error}") from None
    return Restored(epochs_done, folder)


def restore_latest(
    paths: RunPaths, model: keras.Model, optimizer: keras.optimizers.Optimizer
) -> Restored | None:
    """Load the newest state that reads back whole; ``None`` when there is none."""
    problems = []
    for _, folder in epoch_folders(paths.backup):
        try:
            restored = load_state(folder, model, optimizer)
        except CheckpointError as error:
            log.warning("skipping a damaged training state: %s", error)
            problems.append(str(error))
            continue
        if problems:
            log.warning("resuming from the older state %s instead", folder.name)
        return restored
    if problems:
        log.warning("no usable training state in %s; starting from epoch 1", paths.backup)
    return None


def save_epoch_weights(paths: RunPaths, model: keras.Model, epoch: int, keep: int) -> None:
    """``checkpoints/epoch-NNNN.weights.h5`` for the last ``keep`` epochs (0 keeps none)."""
    if keep <= 0:
        return
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    target = epoch_weights_file(paths.root, epoch)
    check_free_space(paths.checkpoints, variables_bytes(model.weights), target.name)
    write_atomically(target, lambda temporary: save_weights_only(model, temporary))
    for old in list(epoch_weights(paths.root).values())[:-keep]:
        old.unlink(missing_ok=True)


def rewrite_missing_epoch_weights(paths: RunPaths, model: keras.Model, epoch: int, keep: int):
    """On resume from the state of ``epoch``: write its checkpoint if a kill lost it (the
    restored weights are the ones it would hold), so averaging finds no gap."""
    if epoch < 1 or keep <= 0 or epoch_weights_file(paths.root, epoch).is_file():
        return
    log.info("rewriting the missing checkpoint of epoch %d from the restored state", epoch)
    save_epoch_weights(paths, model, epoch, keep)


def epoch_weights_file(run: str | Path, epoch: int) -> Path:
    """Where training keeps the weights of 1-based ``epoch`` (read by averaging)."""
    return RunPaths(Path(run)).checkpoints / f"epoch-{epoch:04d}.weights.h5"


def epoch_weights(run: str | Path) -> dict[int, Path]:
    """{epoch: weights file} of the epoch weights a run holds, oldest first."""
    folder = RunPaths(Path(run)).checkpoints
    if not folder.is_dir():
        return {}
    found = {
        int(m.group(1)): p
        for p in folder.iterdir()
        if (m := WEIGHTS_NAME.match(p.name)) and p.is_file()
    }
    return dict(sorted(found.items()))
