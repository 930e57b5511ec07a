"""The epoch so far, kept when Ctrl-C or SIGTERM stops training mid-epoch, for ``--resume``.

A scheduler's time limit lands in the middle of an epoch, and an epoch can take hours; the
end-of-epoch backup alone would lose all of it. So on an interrupt the chief writes
``backup/mid-epoch-EEEE-batch-NNNNNNNN/``: the weights, the optimizer state and
``state.json`` with the finished epochs before it, the batches of epoch EEEE already trained
and that epoch's loss so far. It is written like the end-of-epoch states
(``checkpoints.write_state_folder``: hidden name, flush, rename) and next to them, never over
them, so a kill while it is written leaves the last end-of-epoch state as it was.

``--resume`` takes it when it continues the newest end-of-epoch state that loaded (it lies
in the epoch right after it); any other (older, or after a damaged state) is deleted. Each
epoch reads its data in a fixed order (``seed + epoch``), so the loop skips the batches
already trained and the epoch ends, is scored and recorded as if it had never stopped. Once
that epoch's own end-of-epoch state is written the mid-epoch state is deleted.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seq2seq.runs import RunPaths
from seq2seq.training.checkpoints import (
    CheckpointError,
    epoch_folders,
    load_optimizer,
    load_weights_only,
    write_state_folder,
)

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

MID_EPOCH_NAME = re.compile(r"mid-epoch-(\d{4,})-batch-(\d{8,})$")


@dataclass
class EpochProgress:
    """The epoch in progress: how far it got and its loss so far (what a mid-epoch state
    keeps). ``started_at``: the batch this process started the epoch at."""

    epoch: int  # 0-based
    batches_done: int = 0
    loss_sum: float = 0.0
    tokens: float = 0.0
    started_at: int = 0

    @property
    def loss(self) -> float:
        """The epoch's mean token loss so far (over every batch, before a resume too)."""
        return self.loss_sum / max(self.tokens, 1.0)

    def add(self, loss_sum: float, tokens: float) -> None:
        self.batches_done += 1
        self.loss_sum += loss_sum
        self.tokens += tokens


@dataclass(frozen=True)
class MidEpoch:
    """A saved mid-epoch state: it lies in epoch ``epochs_done + 1`` (1-based)."""

    epochs_done: int
    batches_done: int
    steps: int | None  # the epoch's steps, as the stopped run counted them
    loss_sum: float
    tokens: float
    folder: Path

    def progress(self) -> EpochProgress:
        """Where the resumed epoch starts: after the batches already trained."""
        return EpochProgress(
            self.epochs_done, self.batches_done, self.loss_sum, self.tokens, self.batches_done
        )

    def describe(self) -> str:
        steps = f" of {self.steps:,}" if self.steps else ""
        return f"epoch {self.epochs_done + 1} up to batch {self.batches_done:,}{steps}"


def mid_epoch_folders(backup: Path) -> list[Path]:
    """The complete mid-epoch states in ``backup/``, newest first."""
    if not backup.is_dir():
        return []
    found = [
        ((int(m.group(1)), int(m.group(2))), p)
        for p in backup.iterdir()
        if (m := MID_EPOCH_NAME.match(p.name))
    ]
    return [p for _, p in sorted(found, reverse=True)]


def save_mid_epoch(
    paths: RunPaths,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    progress: EpochProgress,
    steps: int | None,
) -> MidEpoch:
    """Write the epoch so far, then delete the older mid-epoch states."""
    backup = paths.backup
    backup.mkdir(parents=True, exist_ok=True)
    name = f"mid-epoch-{progress.epoch + 1:04d}-batch-{progress.batches_done:08d}"
    state = {
        "epochs_done": progress.epoch,
        "batches_done": progress.batches_done,
        "steps": steps,
        "loss_sum": progress.loss_sum,
        "tokens": progress.tokens,
    }
    write_state_folder(backup / name, model, optimizer, state, seam="mid-epoch")
    for old in mid_epoch_folders(backup):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return read_mid_epoch(backup / name)


def read_mid_epoch(folder: Path) -> MidEpoch:
    """A mid-epoch state's ``state.json`` (no weights loaded yet)."""
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        steps = state.get("steps")
        return MidEpoch(
            int(state["epochs_done"]),
            int(state["batches_done"]),
            int(steps) if steps else None,
            float(state["loss_sum"]),
            float(state["tokens"]),
            folder,
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{folder}: {type(error).__name__}: {error}") from None


def restore_mid_epoch(
    paths: RunPaths,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    epochs_done: int,
    is_chief: bool,
) -> MidEpoch | None:
    """Load the mid-epoch state that continues the end-of-epoch state of ``epochs_done``
    (0: none) into ``model`` and ``optimizer``; ``None`` when there is none. The chief deletes
    the states that do not fit: older ones, and one after a damaged end-of-epoch state."""
    for folder in mid_epoch_folders(paths.backup):
        try:
            state = read_mid_epoch(folder)
            if state.epochs_done != epochs_done:
                log.info(
                    "deleting %s: it is not in the epoch after the restored state", folder.name
                )
            else:
                load_mid_epoch(state, model, optimizer)
                steps = f" of {state.steps:,}" if state.steps else ""
                log.info(
                    "epoch %d goes on after batch %s%s (%s)",
                    state.epochs_done + 1,
                    f"{state.batches_done:,}",
                    steps,
                    folder,
                )
                return state
        except CheckpointError as error:
            log.warning("skipping a damaged mid-epoch state: %s", error)
        if is_chief:
            shutil.rmtree(folder, ignore_errors=True)
    return None


def load_mid_epoch(
    state: MidEpoch, model: keras.Model, optimizer: keras.optimizers.Optimizer
) -> None:
    """Load its weights and optimizer state, or none of them: a file that fails half-way
    leaves the model and optimizer as they were (the restored end-of-epoch state)."""
    variables = [*model.weights, *optimizer.variables]
    before = [np.array(v.numpy()) for v in variables]
    try:
        load_weights_only(model, state.folder / "model.weights.h5")
        load_optimizer(optimizer, state.folder / "optimizer.npz")
    except Exception as error:  # h5py and numpy each raise their own kinds
        for variable, value in zip(variables, before, strict=True):
            variable.assign(value)
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{state.folder}: {type(error).__name__}: {error}") from None


def drop_mid_epoch(paths: RunPaths) -> None:
    """Delete the mid-epoch states: an end-of-epoch state has just passed them."""
    for folder in mid_epoch_folders(paths.backup):
        shutil.rmtree(folder, ignore_errors=True)


def resume_point(run: Path) -> str | None:
    """What ``--resume`` continues from, in words (for the line a stopped run ends with);
    ``None`` when ``run`` holds no run yet. Only the files' names and ``state.json`` are read."""
    paths = RunPaths(Path(run))
    if not paths.config.is_file():
        return None
    states = epoch_folders(paths.backup)
    epochs_done = states[0][0] if states else 0
    for folder in mid_epoch_folders(paths.backup):
        try:
            state = read_mid_epoch(folder)
        except CheckpointError:
            continue
        if state.epochs_done == epochs_done:
            return f"keeps {state.describe()}"
    return "keeps its last finished epoch" if states else "has no finished epoch yet"
