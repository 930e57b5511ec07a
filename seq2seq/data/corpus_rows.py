"""A corpus as rows ``prepare`` can read more than once, in the same order each time.

Every corpus the toolkit knows becomes ``CorpusRows``: translation pairs to split by hashed
sentence groups (``tsv`` files streamed line by line, the Anki corpora, ``tfds:NAME`` datasets
with one split), or rows that keep their corpus's own splits (DailyDialog, Cornell, TFDS
datasets with train/dev/test). Reading the same rows twice must give the same order: the
split plan is a list of codes aligned with it.

The split plan (``plan_translation``, ``plan_fixed``): the leak-free split of the rows,
computed in streaming passes over 64-bit keys.

Pairs that share a sentence on either side form a group (connected components over the
sentences' hashes, in NumPy); a group goes to one split by the seeded hash of its smallest
first-side sentence: ``corpora.loading.split_translation``'s rule, so the splits are the
same, without holding the corpus as Python objects. The same pass keeps a seeded sample
of pairs for the tokenizers (``Reservoir``). ``data.max_pairs`` keeps the pairs
``corpora.loading.cap_pairs`` keeps.
"""

from __future__ import annotations

import hashlib
import random
import sys
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.config import DataConfig
from seq2seq.data.corpora import readers
from seq2seq.data.corpora.spec import TFDS_PREFIX, CorpusError, CorpusNotFoundError, corpus_spec
from seq2seq.data.prepared import CODES, SPLITS, sha256_of


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


def ordered_rows(rows: CorpusRows, data: DataConfig) -> Iterator[tuple[str, str]]:
    """(source, target) of every row, in the order the plan's codes follow."""
    if rows.pairs is not None:
        for first, second in rows.pairs():
            yield (second, first) if data.reverse else (first, second)
    else:
        for _, source, target in rows.fixed():
            yield source, target


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


CAPPED = len(SPLITS)  # left out by data.max_pairs


def key64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


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
