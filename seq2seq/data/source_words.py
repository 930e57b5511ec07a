"""The words a run's training sources hold: how a translator tells a name it has never
seen ("Citlali", "Jyväskylä") from one it has learnt to translate ("España" -> "Spain").

A run records them in ``source_words.txt`` (one case-folded word a line, sorted) when its
folder is created, read from the prepared training shards: the source ids of up to
``MAX_PAIRS`` training pairs, decoded with the run's source tokenizer. The training shards
are written round-robin, so the first shards' pairs are spread over the whole corpus.
``seq2seq.inference.copy_names`` reads the file to decide which capitalised words must be
copied into a translation. No TensorFlow: the TFRecord framing is read here.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.data.tokenizers import normalize

WORD = re.compile(r"\w+")
MAX_PAIRS = 2_000_000  # enough to know a corpus's words; bounded for a 50M-pair corpus
DECODE_BATCH = 10_000
HEADER = "# source_words: the case-folded words of the training sources\n"


class SourceWordsError(ValueError):
    """The words file cannot be read or written: the message names the file."""


def word_keys(text: str) -> list[str]:
    """The words of ``text`` as a run's word list keeps them: normalised, case-folded."""
    return WORD.findall(normalize(text).casefold())


def read_records(path: Path) -> Iterator[bytes]:
    """The records of one uncompressed TFRecord file (length, its CRC, data, data's CRC)."""
    with path.open("rb") as stream:
        while header := stream.read(12):
            if len(header) < 12:
                raise SourceWordsError(f"{path}: truncated record header")
            (length,) = struct.unpack("<Q", header[:8])
            data = stream.read(length)
            if len(data) < length or len(stream.read(4)) < 4:
                raise SourceWordsError(f"{path}: truncated record")
            yield data


def source_ids(files: Iterable[Path], max_pairs: int = MAX_PAIRS) -> Iterator[list[int]]:
    """The source side of each prepared record (``[source_length, *source, *target]``)."""
    count = 0
    for path in files:
        for record in read_records(path):
            if count >= max_pairs:
                return
            values = np.frombuffer(record, dtype="<i4")
            yield values[1 : 1 + int(values[0])].tolist()
            count += 1


def collect_words(texts: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for text in texts:
        found.update(word_keys(text))
    return found


def training_source_words(
    train_files: Iterable[Path], source_tokenizer: Any, max_pairs: int = MAX_PAIRS
) -> set[str]:
    """The words of up to ``max_pairs`` training sources, decoded from their ids."""
    found: set[str] = set()
    batch: list[list[int]] = []
    for ids in source_ids(train_files, max_pairs):
        batch.append(ids)
        if len(batch) == DECODE_BATCH:
            found |= collect_words(source_tokenizer.decode(row) for row in batch)
            batch = []
    return found | collect_words(source_tokenizer.decode(row) for row in batch)


def write_source_words(path: Path, words: Iterable[str]) -> None:
    """``words`` sorted, one a line, written to a temporary name and renamed."""
    partial = path.with_name(f".partial-{path.name}")
    partial.write_text(HEADER + "".join(f"{w}\n" for w in sorted(words)), encoding="utf-8")
    partial.replace(path)


def read_source_words(path: Path) -> frozenset[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SourceWordsError(f"{path}: not UTF-8 (byte {error.start + 1})") from None
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))
