"""Fine-tuning: a new run that starts from another run's weights (``train --init-from RUN``).

- ``vocab="keep"``: the new corpus is encoded with RUN's own tokenizers (the new run keeps
  copies of them), and every weight is copied as it is.
- ``vocab="extend"``: tokenizers are fitted on the new corpus as for any new run; the rows
  of the source/target embeddings and the output projection (kernel columns and bias) of
  every piece both vocabularies hold (by piece string; the special ids by id) are carried
  over, and the rows of new pieces start at the mean of RUN's rows. Every other weight is
  copied as it is.
- ``optimizer="reset"``: the weights of RUN's published model (``model.keras``, its best
  epoch) with a fresh optimizer; ``optimizer="keep"``: RUN's newest training state
  (``backup/``: its last epoch's weights and Adam's moments and step count, their rows
  carried like the weights'), with the new config's learning rate.

The architecture must be RUN's (cell, sizes, layers, attention, ...; dropout may differ):
anything else is refused before any work, with one line naming the field. What was
carried is recorded under ``init_from`` in the new run's ``metrics.json``; a new run
killed before its first epoch ended starts from RUN again on ``--resume``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seq2seq.config import Config, ConfigError, load_run_config
from seq2seq.constants import SPECIAL_PIECES
from seq2seq.runs import RunError, RunPaths, check_fingerprint, model_file, open_run

if TYPE_CHECKING:
    import keras

    from seq2seq.data.tokenizers import Tokenizer

VOCAB_MODES = ("keep", "extend")
OPTIMIZER_MODES = ("keep", "reset")
# Model fields that do not shape a weight: they may differ from RUN's.
FREE_FIELDS = ("dropout",)


@dataclass(frozen=True)
class InitFrom:
    """Where a new run's weights come from, and what is carried (see the module doc)."""

    run: Path
    vocab: str = "keep"
    optimizer: str = "reset"

    def __post_init__(self):
        if self.vocab not in VOCAB_MODES:
            raise ConfigError(f"--init-vocab is {self.vocab!r}; allowed: {', '.join(VOCAB_MODES)}")
        if self.optimizer not in OPTIMIZER_MODES:
            raise ConfigError(
                f"--init-optimizer is {self.optimizer!r}; allowed: {', '.join(OPTIMIZER_MODES)}"
            )

    @property
    def paths(self) -> RunPaths:
        return RunPaths(Path(self.run))

    def record(self) -> dict[str, Any]:
        return {"run": str(self.run), "vocab": self.vocab, "optimizer": self.optimizer}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> InitFrom:
        return cls(Path(record["run"]), record["vocab"], record["optimizer"])


def architecture_fields() -> list[str]:
    """``ModelConfig``'s fields that shape a weight (no TensorFlow needed to list them)."""
    from seq2seq.config import ModelConfig

    return [f.name for f in dataclasses.fields(ModelConfig) if f.name not in FREE_FIELDS]


def check_init_from(init: InitFrom, config: Config) -> Config:
    """RUN's config, after checking that RUN can be read and that ``config`` has its
    architecture: ``RunError`` (missing or unreadable RUN) or ``ConfigError`` (a field that
    differs), one line each. Needs no TensorFlow."""
    paths = open_init_run(init)
    source = load_run_config_of(paths)
    check_architecture(paths, source, dataclasses.asdict(config.model))
    if init.optimizer == "keep" and newest_state(paths) is None:
        raise RunError(
            f"--init-from {paths.root}: --init-optimizer keep needs its training state "
            "(backup/epoch-*/ with optimizer.npz), and it has none; use --init-optimizer reset"
        )
    return source


def open_init_run(init: InitFrom) -> RunPaths:
    """RUN's folder: a usable run whose tokenizers are its own (``RunError`` otherwise)."""
    try:
        paths = open_run(init.run)
        check_fingerprint(paths)
    except RunError as error:
        raise RunError(f"--init-from: {error}") from None
    return paths


def check_architecture(paths: RunPaths, source: Config, ours: dict[str, Any]) -> None:
    """``ConfigError`` naming the first architecture field where ``ours`` differs from RUN's."""
    for name in architecture_fields():
        theirs = getattr(source.model, name, None)
        if theirs != ours.get(name):
            raise ConfigError(
                f"--init-from {paths.root}: model.{name} is {theirs!r} there but "
                f"{ours.get(name)!r} here; fine-tuning keeps the architecture (drop the "
                f"override, or set model.{name}={theirs})"
            )


def prepare_kept(config: Config, init: InitFrom, show_progress: bool = True):
    """The new corpus prepared with RUN's tokenizers (``vocab="keep"``): in a cache folder
    named after their fingerprint (``ensure_prepared``), so the data config's own folder
    keeps tokenizers fitted on the corpus for a later from-scratch or ``extend`` run. A
    ``data.prepared`` folder is used as it is (and refused when made with other tokenizers)."""
    from seq2seq.training.data import prepare_data

    return prepare_data(config, init.paths, show_progress)


def newest_state(paths: RunPaths) -> Path | None:
    from seq2seq.training.checkpoints import epoch_folders

    for _, folder in epoch_folders(paths.backup):
        if (folder / "model.weights.h5").is_file() and (folder / "optimizer.npz").is_file():
            return folder
    return None


def source_tokenizers(paths: RunPaths) -> tuple[Tokenizer, Tokenizer]:
    from seq2seq.data.tokenizers import load_tokenizer

    try:
        return load_tokenizer(paths.source_vocab), load_tokenizer(paths.target_vocab)
    except Exception as error:  # sentencepiece, json and the OS raise their own kinds
        raise RunError(f"--init-from {paths.root}: cannot load its tokenizers: {error}") from None


def row_map(old: Tokenizer, new: Tokenizer) -> np.ndarray:
    """For every new id, the old id of the same piece, or -1 (a piece the old one lacks).
    The special ids keep their ids whatever their piece strings."""
    index: dict[str, int] = {}
    for i in range(old.vocab_size):
        index.setdefault(old.id_to_piece(i), i)
    rows = np.array([index.get(new.id_to_piece(i), -1) for i in range(new.vocab_size)])
    specials = min(len(SPECIAL_PIECES), old.vocab_size, new.vocab_size)
    rows[:specials] = np.arange(specials)
    return rows


def carry_rows(old: np.ndarray, rows: np.ndarray, axis: int, fill: np.ndarray | None = None):
    """``old`` re-indexed along ``axis`` by ``rows`` (-1: ``fill``, else the mean row)."""
    moved = np.moveaxis(old, axis, 0)
    if fill is None:
        fill = moved.mean(axis=0)
    out = np.empty((len(rows), *moved.shape[1:]), dtype=old.dtype)
    known = rows >= 0
    out[known] = moved[rows[known]]
    out[~known] = fill
    return np.moveaxis(out, 0, axis)


def vocabulary_weights(model: keras.Model) -> dict[int, tuple[str, int]]:
    """{id(variable): (side, axis)} for the weights indexed by a vocabulary."""
    found = {id(model.encoder.embedding.embeddings): ("source", 0)}
    found[id(model.decoder.embedding.embeddings)] = ("target", 0)
    projection = model.decoder.projection
    if projection is not None:
        found[id(projection.kernel)] = ("target", 1)
        if projection.bias is not None:
            found[id(projection.bias)] = ("target", 0)
    return found


def relative_path(variable) -> str:
    """A weight's path without the model's own (auto-numbered) name."""
    return variable.path.split("/", 1)[-1]


def initialise_from(
    init: InitFrom,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    source_tokenizer: Tokenizer,
    target_tokenizer: Tokenizer,
) -> dict[str, Any]:
    """Copy RUN's weights (and optimizer state) into the freshly built ``model``; returns
    the record of what was carried (``metrics.json``'s ``init_from``)."""
    from seq2seq.model import build_model
    from seq2seq.training.checkpoints import load_weights_only

    paths = init.paths
    source_config = load_run_config_of(open_init_run(init))  # checked by check_init_from
    old_tokenizers = source_tokenizers(paths)
    rows = {
        "source": row_map(old_tokenizers[0], source_tokenizer),
        "target": row_map(old_tokenizers[1], target_tokenizer),
    }
    state = newest_state(paths) if init.optimizer == "keep" else None
    weights_file = state / "model.weights.h5" if state else model_file(paths)
    old = build_model(
        source_config.model, old_tokenizers[0].vocab_size, old_tokenizers[1].vocab_size
    )
    try:
        load_weights_only(old, weights_file)
    except Exception as error:  # h5py, zipfile and Keras each raise their own kinds
        raise RunError(f"--init-from: cannot read {weights_file}: {error}") from None
    if len(old.weights) != len(model.weights):
        raise ConfigError(
            f"--init-from {paths.root}: its model has {len(old.weights)} weights, this one "
            f"{len(model.weights)}; fine-tuning keeps the architecture"
        )
    by_vocabulary = vocabulary_weights(model)
    mapped: dict[str, tuple[str, int]] = {}  # relative path -> (side, axis)
    for theirs, ours in zip(old.weights, model.weights, strict=True):
        name = relative_path(ours)
        if ours is model.copy_table:
            continue  # the new vocabularies' own, set when the model was built
        if relative_path(theirs) != name:
            raise ConfigError(
                f"--init-from {paths.root}: weight {relative_path(theirs)} there, {name} "
                "here; fine-tuning keeps the architecture"
            )
        value = np.asarray(theirs.numpy())
        if id(ours) in by_vocabulary:
            side, axis = by_vocabulary[id(ours)]
            mapped[name] = (side, axis)
            value = carry_rows(value, rows[side], axis)
        if tuple(value.shape) != tuple(ours.shape):
            raise ConfigError(
                f"--init-from {paths.root}: weight {name} has shape {value.shape} there, "
                f"{tuple(ours.shape)} here; fine-tuning keeps the architecture"
            )
        ours.assign(value.astype(np.dtype(ours.dtype)))
    record = {
        **init.record(),
        "weights": str(weights_file),
        "source_rows_carried": int((rows["source"] >= 0).sum()),
        "source_vocab_size": int(len(rows["source"])),
        "target_rows_carried": int((rows["target"] >= 0).sum()),
        "target_vocab_size": int(len(rows["target"])),
    }
    if state is not None:
        record["optimizer_state"] = str(state / "optimizer.npz")
        record["optimizer_step"] = carry_optimizer(
            state / "optimizer.npz", model, optimizer, mapped, rows
        )
    return record


def load_run_config_of(paths: RunPaths, overrides: list[str] | None = None) -> Config:
    """RUN's config (with ``overrides``: the new run's when --init-from is all it gets),
    or a one-line ``RunError``."""
    from seq2seq.config import load_config

    try:
        config = load_run_config(paths.config)
    except (ConfigError, OSError) as error:
        flat = " ".join(str(error).split())  # YAML errors span several lines
        raise RunError(
            f"--init-from {paths.root}: its config.yaml cannot be used: {flat}"
        ) from None
    return config if overrides is None else load_config(None, paths.config, overrides)


def carry_optimizer(
    path: Path,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    mapped: dict[str, tuple[str, int]],
    rows: dict[str, np.ndarray],
) -> int:
    """Load RUN's optimizer state (saved in the order of ``optimizer.variables``) into the
    new ``optimizer``: slots of vocabulary-indexed weights re-indexed like them (new rows at
    zero: no history), the step count kept, the learning rate the new config's. Returns
    the step count carried."""
    with np.load(path) as saved:
        arrays = [saved[name] for name in sorted(saved.files)]
    variables = list(optimizer.variables)
    if len(arrays) != len(variables):
        raise RunError(
            f"--init-from: {path} holds {len(arrays)} optimizer variables, this optimizer "
            f"{len(variables)} (another precision or optimizer?); use --init-optimizer reset"
        )
    # Keras names a slot after its weight: "<weight path with _ for />_momentum"
    slot_of = {
        f"{w.path.replace('/', '_')}_{kind}": relative_path(w)
        for w in model.trainable_variables
        for kind in ("momentum", "velocity")
    }
    step = 0
    for variable, array in zip(variables, arrays, strict=True):
        name = variable.name
        if name == "learning_rate":
            continue
        if name == "iteration":
            step = int(array)
        owner = slot_of.get(name)
        if owner in mapped:
            side, axis = mapped[owner]
            array = carry_rows(array, rows[side], axis, fill=0.0)
        if tuple(array.shape) != tuple(variable.shape):
            raise RunError(
                f"--init-from: {path}: {variable.path} has shape {array.shape}, this optimizer "
                f"{tuple(variable.shape)}; use --init-optimizer reset"
            )
        variable.assign(array.astype(np.dtype(variable.dtype)))
    return step
