"""A corpus as rows ``prepare`` can read more than once, in the same order each time.

Every corpus the toolkit knows becomes ``CorpusRows``: translation pairs to split by hashed
sentence groups (``tsv`` files streamed line by line, the Anki corpora, ``tfds:NAME`` datasets
with one split), or rows that keep their corpus's own splits (DailyDialog, Cornell, TFDS
datasets with train/dev/test). Reading the same rows twice must give the same order: the
split plan is a list of codes aligned with it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
