"""Prepare a corpus once: streaming passes to token-id shards (``seq2seq.data.prepared``).

Memory stays bounded by a few numbers per pair, never the corpus as Python objects:

1. **keys**: each translation pair's two sentences are hashed to 64 bits (seeded blake2b,
   the hash ``corpora.loading`` splits by), and a seeded reservoir keeps a sample of pairs
   for the tokenizers (``data.tokenizer_sample``; all of them when the corpus is smaller);
2. **split**: pairs that share a sentence on either side form a group (connected components,
   computed over the hashes with numpy); a group goes to one split by the seeded hash of
   its smallest first-side sentence, so no sentence is in two splits. A second, partial pass
   reads that sentence for groups of more than one pair. This is
   ``corpora.loading.split_translation``'s rule, so the splits are the same;
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
import hashlib
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.config import DataConfig
from seq2seq.data.corpora import readers
from seq2seq.data.corpora.errors import CorpusError, CorpusNotFoundError
from seq2seq.data.corpora.spec import TFDS_PREFIX, corpus_languages, corpus_spec
from seq2seq.data.prepared import (
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

CODES = {name: code for code, name in enumerate(SPLITS)}  # train 0, dev 1, test 2
CAPPED = len(SPLITS)  # left out by data.max_pairs
IN_PROGRESS_FILE = ".prepare-in-progress"
CHUNK_PAIRS = 20_000  # pairs per encoding task
BYTES_PER_TOKEN = 4  # int32 ids


# ---------------------------------------------------------------------------------------
# Corpus rows


@dataclass
class CorpusRows:
    """A corpus as rows that can be read more than once, in the same order each time.

    ``pairs``: (first, second) translation pairs, split here by hashed sentence groups;
    ``fixed``: (split code, source, target) rows of a corpus with its own splits.
    ``check`` runs after a full pass (the bad-line threshold); ``sources`` describes the
    input files for the manifest.
    """

    pairs: Callable[[], Iterator[tuple[str, str]]] | None = None
    fixed: Callable[[], Iterator[tuple[int, str, str]]] | None = None
    check: Callable[[], None] = lambda: None
    sources: list[dict[str, Any]] = field(default_factory=list)


def corpus_name(data: DataConfig) -> str:
    """How errors name the corpus: its file for ``tsv``, else its ``data.corpus`` name."""
    return f"corpus file {data.path}" if data.corpus == "tsv" else f"corpus {data.corpus!r}"


def tsv_rows(data: DataConfig) -> CorpusRows:
    if not data.path:
        raise CorpusError("data.path must name a file when data.corpus is 'tsv'")
    path = Path(data.path).expanduser()
    if not path.is_file():
        raise CorpusNotFoundError(str(path), [path.resolve()])
    reports: list[readers.LineReport] = []

    def pairs() -> Iterator[tuple[str, str]]:
        report = readers.LineReport()
        reports.append(report)
        for _, first, second in readers.read_tsv(path, report):
            yield first, second

    def check() -> None:
        reports[-1].check(data.max_bad_fraction)

    source = {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha256_of(path)}
    return CorpusRows(pairs=pairs, check=check, sources=[source])


def table_sources(corpus: str) -> list[dict[str, Any]]:
    spec = corpus_spec(corpus)
    return [
        {"corpus": corpus, "file": f.path, "bytes": f.size, "sha256": f.sha256}
        for f in spec.local_files.values()
    ]


def anki_rows(data: DataConfig) -> CorpusRows:
    from seq2seq.data.corpora.loading import examples

    rows = examples(data.corpus, "train", data)  # a fixed, small corpus (<= 0.3M pairs)
    rows.sort(key=lambda row: row["line"])
    texts = [(row["english"], row["other"]) for row in rows]
    return CorpusRows(pairs=lambda: iter(texts), sources=table_sources(data.corpus))


def tfds_rows(data: DataConfig) -> CorpusRows:
    from seq2seq.data.corpora.loading import TFDS_SPLIT_NAMES, tfds_keys
    from seq2seq.data.corpora.tfds_builders import iter_examples, prepare_builder

    name = data.corpus
    source_key, target_key = tfds_keys(name, data)
    builder = prepare_builder(name, data.data_dir, data.cache_dir)
    available = list(builder.info.splits)
    sources = [{"corpus": name, "tfds_version": str(builder.info.version)}]

    def rows(split: str) -> Iterator[tuple[str, str]]:
        for row in iter_examples(name, split, data.data_dir, data.cache_dir):
            missing = {source_key, target_key} - set(row)
            if missing:
                raise CorpusError(f"{name}: no feature(s) {sorted(missing)}; has {sorted(row)}")
            yield row[source_key], row[target_key]

    if set(available) == {"train"} or "train" not in available:
        only = "train" if "train" in available else available[0]
        return CorpusRows(pairs=lambda: rows(only), sources=sources)

    def fixed() -> Iterator[tuple[int, str, str]]:
        for split in available:
            if split in TFDS_SPLIT_NAMES:
                code = CODES[TFDS_SPLIT_NAMES[split]]
                for source, target in rows(split):
                    yield (code, target, source) if data.reverse else (code, source, target)

    return CorpusRows(fixed=fixed, sources=sources)


def dialogue_rows(data: DataConfig) -> CorpusRows:
    from seq2seq.data.corpora.loading import LOADERS, cap_pairs

    splits = cap_pairs(LOADERS[corpus_spec(data.corpus).builder](data), data)  # small, fixed

    def fixed() -> Iterator[tuple[int, str, str]]:
        for split in SPLITS:
            for pair in splits[split]:
                yield CODES[split], pair.source, pair.target

    return CorpusRows(fixed=fixed, sources=table_sources(data.corpus))


def corpus_rows(data: DataConfig) -> CorpusRows:
    corpus = data.corpus
    if corpus == "tsv":
        return tsv_rows(data)
    if corpus.startswith(TFDS_PREFIX) and len(corpus) > len(TFDS_PREFIX):
        return tfds_rows(data)
    builder = corpus_spec(corpus).builder  # CorpusError naming the known corpora
    return anki_rows(data) if builder == "anki" else dialogue_rows(data)


# ---------------------------------------------------------------------------------------
# Passes 1-2: keys, sample and split


def key64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def progress(iterable, description: str, total: int | None = None, show: bool = True):
    from tqdm import tqdm

    return tqdm(
        iterable,
        desc=description,
        total=total,
        unit=" pairs",
        unit_scale=True,
        mininterval=1.0,
        disable=not show,
        file=sys.stderr,
    )


class Reservoir:
    """A seeded uniform sample of ``size`` items from a stream of unknown length (Vitter's
    algorithm R): the same stream and seed give the same sample."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.random = random.Random(seed)
        self.items: list[tuple[int, str, str]] = []
        self.seen = 0

    def offer(self, index: int, source: str, target: str) -> None:
        if len(self.items) < self.size:
            self.items.append((index, source, target))
        else:
            slot = self.random.randrange(self.seen + 1)
            if slot < self.size:
                self.items[slot] = (index, source, target)
        self.seen += 1


def components(first_ids: np.ndarray, second_ids: np.ndarray) -> np.ndarray:
    """For each pair, a label shared by exactly the pairs of its connected component
    (pairs linked by an identical first or second sentence)."""
    count = len(first_ids)
    label = np.arange(count, dtype=np.int64)
    while True:
        new = label
        for ids in (first_ids, second_ids):
            low = np.full(int(ids.max()) + 1 if count else 0, count, dtype=np.int64)
            np.minimum.at(low, ids, new)
            new = np.minimum(new, low[ids])
        while not np.array_equal(jumped := new[new], new):  # point at the representative
            new = jumped
        if np.array_equal(new, label):
            return label
        label = new


def dense_ids(keys: array) -> np.ndarray:
    ids = np.unique(np.frombuffer(keys, dtype=np.uint64), return_inverse=True)[1]
    return ids.astype(np.int64, copy=False)


def unit_values(keys: np.ndarray) -> np.ndarray:
    """64-bit keys as ``corpora.loading.unit_hash`` values in [0, 1)."""
    return keys.astype(np.float64) / 2.0**64


@dataclass
class SplitPlan:
    codes: np.ndarray  # uint8 per row: CODES or CAPPED
    sample: list[tuple[str, str]]  # training pairs for the tokenizers, in corpus order
    rows: int


def plan_translation(rows: CorpusRows, data: DataConfig, show: bool) -> SplitPlan:
    seed_prefix = f"{data.split_seed}\x00".encode()
    first_keys, second_keys, text_keys = array("Q"), array("Q"), array("Q")
    reservoir = Reservoir(data.tokenizer_sample, data.split_seed)
    for index, (first, second) in enumerate(progress(rows.pairs(), "prepare: reading", None, show)):
        first_keys.append(key64(seed_prefix + first.encode()))
        second_keys.append(key64(second.encode()))
        source, target = (second, first) if data.reverse else (first, second)
        if data.max_pairs is not None:
            text_keys.append(key64(seed_prefix + f"{source}\x00{target}".encode()))
        reservoir.offer(index, source, target)
    rows.check()
    count = len(first_keys)
    if not count:
        raise CorpusError(f"{corpus_name(data)} has no sentence pairs")
    label = components(dense_ids(first_keys), dense_ids(second_keys))
    group_keys = np.frombuffer(first_keys, dtype=np.uint64).copy()
    shared = np.bincount(label, minlength=count)[label] > 1
    if shared.any():  # groups of several pairs: key = the smallest first-side sentence
        smallest: dict[int, str] = {}
        for index, (first, _) in enumerate(rows.pairs()):
            if shared[index]:
                root = int(label[index])
                if root not in smallest or first < smallest[root]:
                    smallest[root] = first
        roots = np.fromiter(smallest, dtype=np.int64, count=len(smallest))
        lookup = np.zeros(count, dtype=np.uint64)
        lookup[roots] = [key64(seed_prefix + smallest[int(r)].encode()) for r in roots]
        group_keys[shared] = lookup[label[shared]]
    del label, shared
    values = unit_values(group_keys)
    codes = np.full(count, CODES["train"], dtype=np.uint8)
    codes[values < data.test_fraction + data.dev_fraction] = CODES["dev"]
    codes[values < data.test_fraction] = CODES["test"]
    if data.max_pairs is not None and count > data.max_pairs:
        cap(codes, values, unit_values(np.frombuffer(text_keys, dtype=np.uint64)), data.max_pairs)
    sample = [(s, t) for i, s, t in sorted(reservoir.items) if codes[i] == CODES["train"]]
    return SplitPlan(codes, sample, count)


def cap(codes: np.ndarray, group_values: np.ndarray, text_values: np.ndarray, total: int) -> None:
    """Keep ``total`` rows, each split in proportion, chosen by seeded hash of group then
    text: ``corpora.loading.cap_pairs``'s rule. The rest are marked ``CAPPED``."""
    sizes = {name: int(np.sum(codes == CODES[name])) for name in SPLITS}
    exact = {name: total * size / len(codes) for name, size in sizes.items()}
    quotas = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: quotas[name] - exact[name])
    for name in by_remainder[: total - sum(quotas.values())]:
        quotas[name] += 1
    keep = np.zeros(len(codes), dtype=bool)
    for name in SPLITS:
        members = np.flatnonzero(codes == CODES[name])
        order = np.lexsort((members, text_values[members], group_values[members]))
        keep[members[order[: quotas[name]]]] = True
    codes[~keep] = CAPPED


def plan_fixed(rows: CorpusRows, data: DataConfig, show: bool) -> SplitPlan:
    codes = array("B")
    reservoir = Reservoir(data.tokenizer_sample, data.split_seed)
    for index, (code, source, target) in enumerate(
        progress(rows.fixed(), "prepare: reading", None, show)
    ):
        codes.append(code)
        if code == CODES["train"]:
            reservoir.offer(index, source, target)
    rows.check()
    if not codes:
        raise CorpusError(f"{corpus_name(data)} has no pairs")
    sample = [(s, t) for _, s, t in sorted(reservoir.items)]
    return SplitPlan(np.frombuffer(codes, dtype=np.uint8).copy(), sample, len(codes))


def ordered_rows(rows: CorpusRows, data: DataConfig) -> Iterator[tuple[str, str]]:
    """(source, target) of every row, in the order the plan's codes follow."""
    if rows.pairs is not None:
        for first, second in rows.pairs():
            yield (second, first) if data.reverse else (first, second)
    else:
        for _, source, target in rows.fixed():
            yield source, target


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
    log.info("prepared %s: %s", root, ", ".join(f"{k} {v:,}" for k, v in pairs.items()))
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
    folder for this data config, prepared on first use. ``tokenizers`` (a resumed run's)
    must be the folder's; a cache made with others is prepared again with these."""
    if data.prepared:
        folder = open_prepared(data.prepared, data)
        if tokenizers and folder.vocab_fingerprint != vocabulary_fingerprint(*tokenizers):
            raise PreparedDataError(
                f"{folder.root} was prepared with other tokenizers than this run's; "
                "prepare it again from the run's config, or train a new run on it"
            )
        return folder
    root = cache_folder(data)
    if tokenizers:
        fingerprint = vocabulary_fingerprint(*tokenizers)
        try:
            if open_prepared(root, data, checksums=False).vocab_fingerprint != fingerprint:
                root = root.with_name(f"{root.name}-vocab{fingerprint}")
        except PreparedDataError:
            pass
    with exclusive(root.with_name(root.name + ".lock")):
        try:
            return prepare(data, root, tokenizers, show_progress=show_progress).folder
        except PreparedDataError as error:  # a damaged cache is ours to redo
            if not (root / MANIFEST_FILE).is_file():
                raise
            log.warning("%s; preparing it again", error)
            shutil.rmtree(root)
            return prepare(data, root, tokenizers, show_progress=show_progress).folder
