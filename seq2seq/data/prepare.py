"""Prepare a corpus once: streaming passes to token-id shards (``seq2seq.data.prepared``).

Memory stays bounded by a few numbers per pair, never the corpus as Python objects:

1. **keys** and 2. **split** (``seq2seq.data.corpus_rows``): each pair's sentences hashed to
   64 bits and a seeded sample kept for the tokenizers; then the leak-free split over the
   hashes, the in-memory loader's rule, so the splits are the same;
3. **tokenizers** are fitted on the sample's training pairs;
4. **encode**: chunks of pairs are tokenised and length-filtered in worker processes (every
   core), and written in corpus order: train pairs round-robin over the train shards, dev
   and test in order, beside their text. What is dropped is counted by reason.

The manifest is written last, atomically; an interrupted or failed preparation removes
what it wrote (a folder with the in-progress marker and no manifest is cleaned up by the
next run). Dialogue corpora and TFDS datasets with their own splits keep their splits.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.config import DataConfig
from seq2seq.data.corpora.spec import CorpusError, corpus_languages
from seq2seq.data.corpus_rows import (
    CAPPED,
    CorpusRows,
    SplitPlan,
    corpus_name,
    corpus_rows,
    ordered_rows,
    plan_fixed,
    plan_translation,
    progress,
)
from seq2seq.data.prepared import (
    CODES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_FILE,
    RECORD,
    SPLITS,
    PreparedDataError,
    PreparedFolder,
    cache_folder,
    data_fields,
    data_hash,
    encode_record,
    open_prepared,
    sha256_of,
)
from seq2seq.data.tokenizers import (
    END,
    Tokenizer,
    fit_tokenizer,
    load_tokenizer,
    vocabulary_fingerprint,
)

log = logging.getLogger(__name__)

IN_PROGRESS_FILE = ".prepare-in-progress"
CHUNK_PAIRS = 20_000  # pairs per encoding task
BYTES_PER_TOKEN = 4  # int32 ids


# ---------------------------------------------------------------------------------------
# Pass 3: tokenizers


def fit_tokenizers(data: DataConfig, sample: list[tuple[str, str]]) -> tuple[Tokenizer, Tokenizer]:
    if not sample:
        raise CorpusError(
            f"{corpus_name(data)} gives no training pairs (data.dev_fraction and "
            "data.test_fraction leave none, or the corpus is too small)"
        )
    source_language, target_language = corpus_languages(data.corpus, data.reverse)
    symbols = (data.context_separator,) if data.context_turns else ()
    common = {"min_frequency": data.min_frequency, "lowercase": data.lowercase}
    if data.tokenizer == "sentencepiece":
        common.update(split_digits=data.split_digits, byte_fallback=data.byte_fallback)
    if data.shared_vocab:  # one model for both sides (SentencePiece only: config checks)
        both = fit_tokenizer(
            data.tokenizer,
            [text for pair in sample for text in pair],
            data.source_vocab_size,
            user_symbols=symbols,
            **common,
        )
        return both, both
    source = fit_tokenizer(
        data.tokenizer,
        [s for s, _ in sample],
        data.source_vocab_size,
        user_symbols=symbols,
        language=source_language,
        **common,
    )
    target = fit_tokenizer(
        data.tokenizer,
        [t for _, t in sample],
        data.target_vocab_size,
        language=target_language,
        **common,
    )
    return source, target


# ---------------------------------------------------------------------------------------
# Pass 4: encode and write

_WORKER_TOKENIZERS: tuple[Tokenizer, Tokenizer] | None = None


def _load_worker_tokenizers(source: str, target: str) -> None:
    global _WORKER_TOKENIZERS
    _WORKER_TOKENIZERS = (load_tokenizer(source), load_tokenizer(target))


@dataclass
class EncodedChunk:
    records: dict[int, list[bytes]]  # split code -> records, in order
    lengths: dict[int, list[int]]  # split code -> each record's longer side (target + END)
    target_counts: np.ndarray  # train target ids (END included)
    dropped: Counter


def encode_chunk(
    codes: bytes,
    sources: list[str],
    targets: list[str],
    limits: tuple[int, int],
    tokenizers: tuple[Tokenizer, Tokenizer] | None = None,
) -> EncodedChunk:
    """Tokenise and length-filter one chunk of rows (in a worker, or in-process)."""
    source_tokenizer, target_tokenizer = tokenizers or _WORKER_TOKENIZERS  # type: ignore[misc]
    max_source, max_target = limits
    source_ids = source_tokenizer.encode_batch(sources)
    target_ids = target_tokenizer.encode_batch(targets)
    chunk = EncodedChunk(
        {c: [] for c in CODES.values()},
        {c: [] for c in CODES.values()},
        np.zeros(0, np.int64),
        Counter(),
    )
    train_targets = []
    for code, source, target in zip(codes, source_ids, target_ids, strict=True):
        split = SPLITS[code]
        reason = None
        if not source:
            reason = "empty source after tokenisation"
        elif not target:
            reason = "empty target after tokenisation"
        elif len(source) > max_source:
            reason = "source longer than data.max_source_length"
        elif len(target) > max_target:
            reason = "target longer than data.max_target_length"
        if reason:
            chunk.dropped[f"{split}: {reason}"] += 1
            continue
        chunk.records[code].append(encode_record(source, target))
        chunk.lengths[code].append(max(len(source), len(target) + 1))
        if code == CODES["train"]:
            train_targets.append(target)
    if train_targets:
        ids = np.fromiter((i for t in train_targets for i in t), dtype=np.int64)
        counts = np.bincount(ids, minlength=target_tokenizer.vocab_size).astype(np.int64)
        counts[END] += len(train_targets)
        chunk.target_counts = counts
    return chunk


class ShardWriter:
    """Writes records to numbered TFRecord files and keeps their counts and histograms."""

    def __init__(self, root: Path, split: str, files: int, bytes_per_file: int, histogram: int):
        import tensorflow as tf

        self.tf = tf
        self.root, self.split = root, split
        self.round_robin = files > 1 or split == "train"
        self.bytes_per_file = bytes_per_file
        self.histogram = histogram
        self.names: list[str] = []
        self.writers: list[Any] = []
        self.pairs: list[int] = []
        self.sizes: list[int] = []
        self.lengths: list[np.ndarray] = []
        self.next = 0
        for _ in range(files):
            self._open()

    def _open(self) -> None:
        name = f"{self.split}-{len(self.names):05d}.tfrecord"
        self.names.append(name)
        self.writers.append(self.tf.io.TFRecordWriter(str(self.root / name)))
        self.pairs.append(0)
        self.sizes.append(0)
        self.lengths.append(np.zeros(self.histogram, dtype=np.int64))

    def write(self, records: list[bytes], lengths: list[int]) -> None:
        for record, length in zip(records, lengths, strict=True):
            if self.round_robin:  # train: pair k to shard k mod N, shards of equal size
                index = self.next % len(self.writers)
                self.next += 1
            else:  # dev/test: in order, a new file when this one is full
                if self.sizes[-1] >= self.bytes_per_file:
                    self._open()
                index = len(self.writers) - 1
            self.writers[index].write(record)
            self.pairs[index] += 1
            self.sizes[index] += len(record)
            self.lengths[index][length] += 1

    def close(self) -> list[dict[str, Any]]:
        for writer in self.writers:
            writer.close()
        return [
            {
                "file": name,
                "pairs": pairs,
                "bytes": (self.root / name).stat().st_size,
                "sha256": sha256_of(self.root / name),
                "lengths": np.trim_zeros(lengths, "b").tolist(),
            }
            for name, pairs, lengths in zip(self.names, self.pairs, self.lengths, strict=True)
        ]


def train_shard_count(
    data: DataConfig, plan: SplitPlan, source: Tokenizer, target: Tokenizer
) -> int:
    """Enough files for parallel reads (``data.min_shards``), none much over
    ``data.shard_megabytes``: the bytes estimated from the tokenised sample."""
    sample = plan.sample[:10_000]
    tokens = sum(len(i) for i in source.encode_batch([s for s, _ in sample]))
    tokens += sum(len(i) for i in target.encode_batch([t for _, t in sample]))
    per_pair = BYTES_PER_TOKEN * (1 + tokens / max(len(sample), 1)) + 16
    train = int(np.sum(plan.codes == CODES["train"]))
    return max(data.min_shards, math.ceil(train * per_pair / (data.shard_megabytes << 20)))


def chunks(rows: CorpusRows, data: DataConfig, codes: np.ndarray, show: bool):
    """(codes, sources, targets) of ``CHUNK_PAIRS`` rows at a time; capped rows left out."""
    chunk_codes, sources, targets = bytearray(), [], []
    for index, (source, target) in enumerate(
        progress(ordered_rows(rows, data), "prepare: encoding", len(codes), show)
    ):
        code = int(codes[index])
        if code == CAPPED:
            continue
        chunk_codes.append(code)
        sources.append(source)
        targets.append(target)
        if len(sources) == CHUNK_PAIRS:
            yield bytes(chunk_codes), sources, targets
            chunk_codes, sources, targets = bytearray(), [], []
    if sources:
        yield bytes(chunk_codes), sources, targets


def encoded_chunks(
    rows: CorpusRows,
    data: DataConfig,
    codes: np.ndarray,
    vocab: tuple[Path, Path],
    tokenizers: tuple[Tokenizer, Tokenizer],
    workers: int,
    show: bool,
) -> Iterator[tuple[EncodedChunk, bytes, list[str], list[str]]]:
    """Encoded chunks in corpus order, with their rows; at most ``2 x workers`` in flight."""
    limits = (data.max_source_length, data.max_target_length)
    if workers <= 1 or data.tokenizer != "sentencepiece":  # word tokenizers use TensorFlow
        for chunk_codes, sources, targets in chunks(rows, data, codes, show):
            encoded = encode_chunk(chunk_codes, sources, targets, limits, tokenizers)
            yield encoded, chunk_codes, sources, targets
        return
    pool = ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_load_worker_tokenizers,
        initargs=(str(vocab[0]), str(vocab[1])),
    )
    pending: list[tuple[Future, bytes, list[str], list[str]]] = []
    try:
        for chunk_codes, sources, targets in chunks(rows, data, codes, show):
            future = pool.submit(encode_chunk, chunk_codes, sources, targets, limits)
            pending.append((future, chunk_codes, sources, targets))
            while len(pending) > 2 * workers:
                future, *rows_of_chunk = pending.pop(0)
                yield future.result(), *rows_of_chunk
        for future, *rows_of_chunk in pending:
            yield future.result(), *rows_of_chunk
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def write_shards(
    root: Path,
    rows: CorpusRows,
    data: DataConfig,
    plan: SplitPlan,
    tokenizers: tuple[Tokenizer, Tokenizer],
    workers: int,
    show: bool,
) -> dict[str, Any]:
    histogram = max(data.max_source_length, data.max_target_length + 1) + 1
    file_bytes = data.shard_megabytes << 20
    writers = {
        "train": ShardWriter(
            root, "train", train_shard_count(data, plan, *tokenizers), file_bytes, histogram
        ),
        "dev": ShardWriter(root, "dev", 1, file_bytes, histogram),
        "test": ShardWriter(root, "test", 1, file_bytes, histogram),
    }
    texts = {
        split: (root / f"{split}.jsonl").open("w", encoding="utf-8") for split in ("dev", "test")
    }
    dropped: Counter = Counter()
    text_pairs = {"dev": 0, "test": 0}
    target_counts = np.zeros(tokenizers[1].vocab_size, dtype=np.int64)
    vocab = (root / "vocab" / "source", root / "vocab" / "target")
    try:
        for chunk, chunk_codes, sources, targets in encoded_chunks(
            rows, data, plan.codes, vocab, tokenizers, workers, show
        ):
            for split, writer in writers.items():
                code = CODES[split]
                writer.write(chunk.records[code], chunk.lengths[code])
            for position, code in enumerate(chunk_codes):  # every dev/test pair, kept or not
                if code != CODES["train"]:
                    row = {"source": sources[position], "target": targets[position]}
                    texts[SPLITS[code]].write(json.dumps(row, ensure_ascii=False) + "\n")
                    text_pairs[SPLITS[code]] += 1
            dropped.update(chunk.dropped)
            if len(chunk.target_counts):
                target_counts += chunk.target_counts
    finally:
        for stream in texts.values():
            stream.close()
        shards = {split: writer.close() for split, writer in writers.items()}
    np.save(root / "target_counts.npy", target_counts.astype(np.float64))
    return {
        "shards": shards,
        "dropped": dict(sorted(dropped.items())),
        "text_pairs": text_pairs,
        "train_target_tokens": int(target_counts.sum()),
    }


# ---------------------------------------------------------------------------------------
# The folder


@dataclass
class PrepareReport:
    """What a preparation did (``seconds`` 0: the folder was already prepared)."""

    folder: PreparedFolder
    seconds: float


def check_output(root: Path, data: DataConfig) -> PreparedFolder | None:
    """An existing folder: the same preparation (returned), a leftover of an interrupted
    one (cleaned), or something else (refused)."""
    if (root / MANIFEST_FILE).is_file():
        return open_prepared(root, data)
    if root.is_dir() and any(root.iterdir()):
        if not (root / IN_PROGRESS_FILE).is_file():
            raise PreparedDataError(
                f"{root} is not empty and is not a prepared folder; give --output a new or "
                "empty folder"
            )
        log.warning("%s: removing an unfinished preparation", root)
        shutil.rmtree(root)
    return None


def prepare(
    data: DataConfig,
    output: str | Path,
    tokenizers: tuple[Tokenizer, Tokenizer] | None = None,
    workers: int | None = None,
    show_progress: bool = True,
) -> PrepareReport:
    """Prepare ``data`` into ``output`` (reused as it is when already prepared from the same
    data config). ``tokenizers``: encode with these instead of fitting new ones."""
    root = Path(output).expanduser()
    existing = check_output(root, data)
    if existing is not None:
        return PrepareReport(existing, 0.0)
    started = time.perf_counter()
    rows = corpus_rows(data)  # corpus errors before anything is written
    root.mkdir(parents=True, exist_ok=True)
    (root / IN_PROGRESS_FILE).write_text(f"pid {os.getpid()}\n")
    try:
        folder = prepare_into(root, rows, data, tokenizers, workers, show_progress)
    except OSError as error:
        shutil.rmtree(root, ignore_errors=True)
        if error.errno == errno.ENOSPC:
            raise PreparedDataError(
                f"the disk filled while writing {root}; nothing was kept (free some space and "
                "run again)"
            ) from None
        raise PreparedDataError(f"cannot write {root}: {error}; nothing was kept") from None
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return PrepareReport(folder, time.perf_counter() - started)


def prepare_into(
    root: Path,
    rows: CorpusRows,
    data: DataConfig,
    tokenizers: tuple[Tokenizer, Tokenizer] | None,
    workers: int | None,
    show: bool,
) -> PreparedFolder:
    plan = (plan_translation if rows.pairs is not None else plan_fixed)(rows, data, show)
    if tokenizers is None:
        tokenizers = fit_tokenizers(data, plan.sample)
    plan.sample = plan.sample[:10_000]  # enough to size the shards; free the rest
    tokenizers[0].save(root / "vocab" / "source")
    tokenizers[1].save(root / "vocab" / "target")
    written = write_shards(root, rows, data, plan, tokenizers, workers or os.cpu_count() or 1, show)
    pairs = {split: sum(s["pairs"] for s in written["shards"][split]) for split in SPLITS}
    if not pairs["train"]:
        raise CorpusError(
            f"no training pair fits data.max_source_length={data.max_source_length} and "
            f"data.max_target_length={data.max_target_length}"
        )
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "data": data_fields(data),
        "data_hash": data_hash(data),
        "sources": rows.sources,
        "rows": plan.rows,
        "capped_by_max_pairs": int(np.sum(plan.codes == CAPPED)),
        "pairs": pairs,
        "vocab_fingerprint": vocabulary_fingerprint(*tokenizers),
        "source_vocab_size": tokenizers[0].vocab_size,
        "target_vocab_size": tokenizers[1].vocab_size,
        "record": RECORD,
        **written,
    }
    write_atomically(root / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")
    (root / IN_PROGRESS_FILE).unlink()
    log.info("%s: prepared in %s", corpus_name(data), root)
    return PreparedFolder(root, manifest)


def write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(partial, path)


@contextlib.contextmanager
def exclusive(lock_path: Path):
    """One preparer per cache folder: other processes (workers) wait, then reuse it."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_prepared(
    data: DataConfig,
    tokenizers: tuple[Tokenizer, Tokenizer] | None = None,
    show_progress: bool = True,
) -> PreparedFolder:
    """The prepared folder a run trains on: ``data.prepared`` (checked), else the cache
    folder for this data config, prepared on first use. ``tokenizers`` (a resumed or
    fine-tuned run's) must be the folder's: the data config's own cache folder is used when
    it was made with them, else one named after their fingerprint, so the key's own folder
    only ever holds tokenizers fitted on its corpus."""
    if data.prepared:
        folder = open_prepared(data.prepared, data)
        if tokenizers and folder.vocab_fingerprint != vocabulary_fingerprint(*tokenizers):
            raise PreparedDataError(
                f"{folder.root} was prepared with other tokenizers than this run's; "
                "prepare it again from the run's config, or train a new run on it"
            )
        return folder
    root = cache_folder(data)
    if tokenizers:  # the key's own folder holds tokenizers fitted on this corpus, only
        fingerprint = vocabulary_fingerprint(*tokenizers)
        try:
            same = open_prepared(root, data, checksums=False).vocab_fingerprint == fingerprint
        except PreparedDataError:
            same = False
        if not same:  # e.g. a fine-tuned run's (--init-from): a folder of their own
            root = root.with_name(f"{root.name}-vocab{fingerprint}")
    with exclusive(root.with_name(root.name + ".lock")):
        try:
            return prepare(data, root, tokenizers, show_progress=show_progress).folder
        except PreparedDataError as error:  # a damaged cache is ours to redo
            if not (root / MANIFEST_FILE).is_file():
                raise
            log.warning("%s; preparing it again", error)
            shutil.rmtree(root)
            return prepare(data, root, tokenizers, show_progress=show_progress).folder
