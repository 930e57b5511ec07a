"""A prepared folder: train/dev/test token-id shards, the tokenizers, and a manifest.

``python -m seq2seq.prepare`` (``seq2seq.data.prepare``) writes it; training, evaluation and
the study read it. The manifest is written last and atomically, so a folder without one is
never used: a kill or a full disk while preparing leaves nothing that looks finished. It
records what the folder was made from (the data config and its hash, the source files'
sizes and checksums), what it holds (pairs per split, what was dropped and why, each shard's
size, checksum and length histogram) and the format version. ``open_prepared`` refuses a
folder from another data config or format, and a shard that was truncated or edited.

Layout::

    manifest.json               written last
    vocab/source/, vocab/target/ the tokenizers (``Tokenizer.save``)
    train-00000-of-00016.tfrecord ...   token ids (``shards.RECORD``)
    dev-00000-of-00001.tfrecord, test-...
    dev.jsonl, test.jsonl       the dev/test pairs as text, aligned with their shards
    target_counts.npy           how often each target id is predicted in train (END included)

This module imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.config import DataConfig
from seq2seq.data.corpora.spec import CorpusError, resolve_cache_dir

FORMAT = "seq2seq-prepared"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
SPLITS = ("train", "dev", "test")
CODES = {name: code for code, name in enumerate(SPLITS)}  # a row's split: train 0, dev 1, test 2
# DataConfig fields that do not change what a prepared folder holds: batching, and where
# files are looked for. Every other field is part of the data config hash.
NOT_HASHED = ("bucket_width", "data_dir", "cache_dir", "prepared")
CHECKSUM_BLOCK = 1 << 20
RECORD = "int32 little-endian [source_length, *source_ids, *target_ids]"


class PreparedDataError(CorpusError):
    """A prepared folder that cannot be used; the message names the folder and the reason.
    A ``CorpusError`` (the corpus in its prepared form), so the commands refuse both alike."""


def data_fields(data: DataConfig) -> dict[str, Any]:
    """The data config fields that shape the prepared data (see ``NOT_HASHED``)."""
    fields = dataclasses.asdict(data)
    return {key: value for key, value in fields.items() if key not in NOT_HASHED}


DEFAULTS = data_fields(DataConfig())


TEXT_REVISIONS = {"daily_dialog": 2}
"""Corpora whose reader changed their text (DailyDialog's repaired contractions): the
revision joins their cache key, so a cache prepared from the old text is not reused. Other
corpora keep their keys."""


def data_hash(data: DataConfig) -> str:
    """The cache key of ``data``: fields at their default are left out, so a field added to
    ``DataConfig`` later (with a default that keeps today's behaviour) keeps every key."""
    changed = {k: v for k, v in data_fields(data).items() if v != DEFAULTS.get(k, object())}
    if data.corpus in TEXT_REVISIONS:
        changed["text_revision"] = TEXT_REVISIONS[data.corpus]
    text = json.dumps({"format_version": FORMAT_VERSION, **changed}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def cache_folder(data: DataConfig) -> Path:
    """Where ``train`` prepares a corpus when ``data.prepared`` is not set."""
    return resolve_cache_dir(data.cache_dir) / "prepared" / data_hash(data)


def encode_record(source: Sequence[int], target: Sequence[int]) -> bytes:
    """One pair as a shard record (``RECORD``); ``shards.decode_record`` reads it."""
    return np.asarray([len(source), *source, *target], dtype="<i4").tobytes()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(CHECKSUM_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Shard:
    """One shard file as the manifest records it."""

    file: str
    pairs: int
    bytes: int
    sha256: str
    # lengths[n]: pairs whose longer side (source, or target + END) has n tokens
    lengths: tuple[int, ...]


@dataclass
class PreparedFolder:
    """A prepared folder whose manifest was read (and, by ``open_prepared``, checked)."""

    root: Path
    manifest: dict[str, Any]

    def shards(self, split: str) -> list[Shard]:
        return [
            Shard(**{**s, "lengths": tuple(s["lengths"])}) for s in self.manifest["shards"][split]
        ]

    def files(self, split: str) -> list[Path]:
        return [self.root / shard.file for shard in self.shards(split)]

    def pairs(self, split: str) -> int:
        return int(self.manifest["pairs"][split])

    @property
    def target_tokens(self) -> int:
        """Tokens the decoder predicts over the training split (END included)."""
        return int(self.manifest["train_target_tokens"])

    @property
    def vocab_fingerprint(self) -> int:
        return int(self.manifest["vocab_fingerprint"])

    @property
    def source_vocab(self) -> Path:
        return self.root / "vocab" / "source"

    @property
    def target_vocab(self) -> Path:
        return self.root / "vocab" / "target"

    def target_counts(self) -> np.ndarray:
        return np.load(self.root / "target_counts.npy")

    def text_pairs(self, split: str) -> list[tuple[str, str]]:
        """The (source, target) texts of ``dev`` or ``test``, in shard order."""
        path = self.root / f"{split}.jsonl"
        pairs = []
        with path.open(encoding="utf-8") as stream:
            for line in stream:
                row = json.loads(line)
                pairs.append((row["source"], row["target"]))
        return pairs


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST_FILE
    if not path.is_file():
        raise PreparedDataError(
            f"{root} is not a prepared folder: it has no {MANIFEST_FILE} (an unfinished "
            "preparation never writes one); run python -m seq2seq.prepare --output "
            f"{root} again"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PreparedDataError(f"{path}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PreparedDataError(f"{path}: not a seq2seq prepared-data manifest")
    return manifest


def config_differences(manifest: dict[str, Any], data: DataConfig) -> list[str]:
    """``field: prepared X, config Y`` for each data field the folder was not made with."""
    prepared = {**DEFAULTS, **manifest.get("data", {})}  # a field added since: its default
    wanted = data_fields(data)
    return [
        f"data.{key}: prepared {prepared.get(key)!r}, config {wanted.get(key)!r}"
        for key in sorted(set(prepared) | set(wanted))
        if prepared.get(key) != wanted.get(key)
    ]


def check_shard(root: Path, shard: dict[str, Any], checksum: bool) -> str | None:
    path = root / shard["file"]
    if not path.is_file():
        return f"{path}: missing"
    size = path.stat().st_size
    if size != shard["bytes"]:
        return f"{path}: {size:,} bytes, the manifest says {shard['bytes']:,} (truncated or edited)"
    if checksum and sha256_of(path) != shard["sha256"]:
        return f"{path}: its sha256 differs from the manifest's (edited after preparation)"
    return None


def open_prepared(
    root: str | Path, data: DataConfig | None = None, checksums: bool = True
) -> PreparedFolder:
    """Read and check a prepared folder before anything trains on it.

    Refused, with the reason: no manifest, another format version, another data config
    (``data``: the fields that differ are named), a missing, truncated or edited shard
    (sizes always; sha256 too with ``checksums``).
    """
    root = Path(root).expanduser()
    manifest = read_manifest(root)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise PreparedDataError(
            f"{root} was prepared in format version {version}; this toolkit reads version "
            f"{FORMAT_VERSION}: prepare it again"
        )
    differences = config_differences(manifest, data) if data is not None else []
    if differences:
        raise PreparedDataError(
            f"{root} was prepared from another data config: " + "; ".join(differences)
        )
    for split in SPLITS:
        for shard in manifest["shards"][split]:
            problem = check_shard(root, shard, checksums)
            if problem:
                raise PreparedDataError(f"prepared folder {root}: {problem}; prepare it again")
    return PreparedFolder(root, manifest)
