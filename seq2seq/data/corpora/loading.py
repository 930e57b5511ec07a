"""Corpus -> train/dev/test lists of ``Pair``, deterministic and leak-free.

Translation pairs are grouped into connected components (pairs sharing an English or an
other-language sentence) and whole components go to one split by a seeded blake2b hash,
so no sentence on either side appears in two splits, whatever the file order. Dialogue
corpora keep their own splits (DailyDialog) or split by movie (Cornell). Text is returned
raw; normalisation belongs to ``seq2seq.data.tokenizers``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq.config import DataConfig
from seq2seq.data.corpora import readers
from seq2seq.data.corpora.spec import TFDS_PREFIX, CorpusError, CorpusNotFoundError, corpus_spec
from seq2seq.data.dialogue import build_source

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
TFDS_SPLIT_NAMES = {"train": "train", "validation": "dev", "dev": "dev", "test": "test"}


@dataclass(frozen=True)
class Pair:
    """One training example; ``group`` is the unit that was assigned to a split."""

    source: str
    target: str
    group: str


def unit_hash(seed: int, key: str) -> float:
    """Seeded, platform-independent blake2b hash in [0, 1) (Python's ``hash`` is salted)."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_for(key: str, data: DataConfig) -> str:
    value = unit_hash(data.split_seed, key)
    if value < data.test_fraction:
        return "test"
    if value < data.test_fraction + data.dev_fraction:
        return "dev"
    return "train"


def sentence_groups(pairs: list[tuple[str, str]]) -> list[str]:
    """Union-find over pairs linked by an identical English or other sentence; each pair
    gets its component's smallest English sentence as a stable, order-free key."""
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[int, str], int] = {}
    for index, (english, other) in enumerate(pairs):
        for key in ((0, english), (1, other)):
            root = find(first.setdefault(key, index))
            parent[find(index)] = root
    keys: dict[int, str] = {}
    for index, (english, _) in enumerate(pairs):
        root = find(index)
        keys[root] = min(keys.get(root, english), english)
    return [keys[find(index)] for index in range(len(pairs))]


def split_translation(pairs: list[tuple[str, str]], data: DataConfig) -> dict[str, list[Pair]]:
    """``pairs`` are (english, other); ``data.reverse`` makes other -> English."""
    splits: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    decided: dict[str, str] = {}
    for (english, other), group in zip(pairs, sentence_groups(pairs), strict=True):
        if group not in decided:
            decided[group] = split_for(group, data)
        split = decided[group]
        source, target = (other, english) if data.reverse else (english, other)
        splits[split].append(Pair(source, target, group))
    return splits


def dialogue_pairs(turns: list[str], group: str, data: DataConfig) -> tuple[list[Pair], int]:
    """Consecutive (utterance, reply) pairs; the source may carry ``context_turns`` earlier
    turns. ``data.reverse`` gives (reply, utterance) pairs instead: the backward model
    p(message | reply) that mutual-information reranking needs. Returns the pairs and how
    many were skipped for an empty turn."""
    pairs, skipped = [], 0
    for i in range(1, len(turns)):
        if not turns[i - 1].strip() or not turns[i].strip():
            skipped += 1
            continue
        if data.reverse:
            pairs.append(Pair(turns[i], turns[i - 1], group))
            continue
        source = build_source(
            turns[: i - 1], turns[i - 1], data.context_turns, data.context_separator
        )
        pairs.append(Pair(source, turns[i], group))
    return pairs, skipped


def collect_dialogues(
    dialogues: Iterable[tuple[str, list[str]]], data: DataConfig, corpus: str
) -> list[Pair]:
    pairs: list[Pair] = []
    skipped = 0
    for group, turns in dialogues:
        new, missed = dialogue_pairs(turns, group, data)
        pairs.extend(new)
        skipped += missed
    if skipped:
        log.warning("%s: skipped %d (utterance, reply) pairs with an empty turn", corpus, skipped)
    return pairs


def split_by_units(pairs: list[Pair], data: DataConfig) -> dict[str, list[Pair]]:
    """Whole groups (movies) to test, then dev, in seeded-hash order until each holds its
    fraction of the pairs; with few large units this beats per-unit coin flips, which
    could leave dev or test empty."""
    sizes: dict[str, int] = {}
    for pair in pairs:
        sizes[pair.group] = sizes.get(pair.group, 0) + 1
    order = sorted(sizes, key=lambda group: (unit_hash(data.split_seed, group), group))
    assigned: dict[str, str] = {}
    position = 0
    for split, fraction in (("test", data.test_fraction), ("dev", data.dev_fraction)):
        goal, filled = fraction * len(pairs), 0
        while position < len(order) and filled < goal:
            assigned[order[position]] = split
            filled += sizes[order[position]]
            position += 1
    splits: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for pair in pairs:
        splits[assigned.get(pair.group, "train")].append(pair)
    return splits


def cap_pairs(splits: dict[str, list[Pair]], data: DataConfig) -> dict[str, list[Pair]]:
    """Keep ``max_pairs`` in total, each split in proportion; the kept pairs are chosen by
    seeded hash of group then text (whole groups first), and keep their original order."""
    total = sum(len(pairs) for pairs in splits.values())
    if data.max_pairs is None or total <= data.max_pairs:
        return splits
    exact = {name: data.max_pairs * len(pairs) / total for name, pairs in splits.items()}
    quotas = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: quotas[name] - exact[name])
    for name in by_remainder[: data.max_pairs - sum(quotas.values())]:
        quotas[name] += 1
    return {name: sample(pairs, quotas[name], data.split_seed) for name, pairs in splits.items()}


def sample(pairs: list[Pair], count: int, seed: int) -> list[Pair]:
    def rank(index: int) -> tuple[float, float, int]:
        pair = pairs[index]
        text = f"{pair.source}\x00{pair.target}"
        return unit_hash(seed, pair.group), unit_hash(seed, text), index

    keep = sorted(sorted(range(len(pairs)), key=rank)[:count])
    return [pairs[index] for index in keep]


def examples(name: str, split: str, data: DataConfig) -> list[dict[str, Any]]:
    """Prepared TFDS examples (imports TensorFlow only when a TFDS corpus is used)."""
    from seq2seq.data.corpora.tfds_builders import load_examples

    return load_examples(
        name, split, data.data_dir, data.cache_dir, max_bad_fraction=data.max_bad_fraction
    )


def load_anki(data: DataConfig) -> dict[str, list[Pair]]:
    rows = examples(data.corpus, "train", data)
    rows.sort(key=lambda row: row["line"])
    return split_translation([(row["english"], row["other"]) for row in rows], data)


def load_tsv(data: DataConfig) -> dict[str, list[Pair]]:
    """A local ``source<TAB>target`` file; ``reverse`` swaps the columns."""
    if not data.path:
        raise CorpusError("data.path must name a file when data.corpus is 'tsv'")
    path = Path(data.path).expanduser()
    if not path.is_file():
        raise CorpusNotFoundError(str(path), [path.resolve()])
    report = readers.LineReport()
    pairs = [(source, target) for _, source, target in readers.read_tsv(path, report)]
    report.check(data.max_bad_fraction)
    return split_translation(pairs, data)


def load_daily_dialog(data: DataConfig) -> dict[str, list[Pair]]:
    splits: dict[str, list[Pair]] = {}
    for tfds_split, split in (("train", "train"), ("validation", "dev"), ("test", "test")):
        rows = sorted(examples("daily_dialog", tfds_split, data), key=lambda row: row["id"])
        dialogues = ((f"{tfds_split}/{row['id']}", row["turns"]) for row in rows)
        splits[split] = collect_dialogues(dialogues, data, "daily_dialog")
    return splits


def load_cornell(data: DataConfig) -> dict[str, list[Pair]]:
    rows = sorted(examples("cornell_dialogs", "train", data), key=lambda row: row["id"])
    pairs = collect_dialogues(((row["movie_id"], row["turns"]) for row in rows), data, "cornell")
    return split_by_units(pairs, data)


def tfds_keys(name: str, data: DataConfig) -> tuple[str, str]:
    """Source/target feature names: config fields, else the dataset's supervised keys."""
    if data.tfds_source_key and data.tfds_target_key:
        return data.tfds_source_key, data.tfds_target_key
    from seq2seq.data.corpora.tfds_builders import prepare_builder

    keys = prepare_builder(name, data.data_dir, data.cache_dir).info.supervised_keys
    if not keys or len(keys) != 2 or not all(isinstance(key, str) for key in keys):
        raise CorpusError(
            f"{name}: set data.tfds_source_key and data.tfds_target_key "
            f"(the dataset declares no (source, target) supervised keys)"
        )
    return keys[0], keys[1]


def load_tfds_corpus(data: DataConfig) -> dict[str, list[Pair]]:
    """Any TFDS translation dataset; its own splits are kept when it has them."""
    from seq2seq.data.corpora.tfds_builders import prepare_builder

    name = data.corpus
    source_key, target_key = tfds_keys(name, data)
    available = list(prepare_builder(name, data.data_dir, data.cache_dir).info.splits)

    def rows(split: str) -> list[tuple[str, str]]:
        found = examples(name, split, data)
        missing = {source_key, target_key} - set(found[0] if found else {})
        if found and missing:
            raise CorpusError(f"{name}: no feature(s) {sorted(missing)}; has {sorted(found[0])}")
        return [(row[source_key], row[target_key]) for row in found]

    if set(available) == {"train"} or "train" not in available:
        return split_translation(rows("train" if "train" in available else available[0]), data)
    splits: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for split in available:
        if split in TFDS_SPLIT_NAMES:
            mapped = TFDS_SPLIT_NAMES[split]
            for source, target in rows(split):
                source, target = (target, source) if data.reverse else (source, target)
                splits[mapped].append(Pair(source, target, f"{split}/{source}"))
    return splits


LOADERS = {"anki": load_anki, "daily_dialog": load_daily_dialog, "cornell_dialogs": load_cornell}
"""How each TFDS builder's examples become splits (translation pairs, or dialogues)."""


def load_splits(data: DataConfig) -> dict[str, list[Pair]]:
    """Train/dev/test pairs for ``data.corpus``, capped by ``data.max_pairs``."""
    corpus = data.corpus
    if corpus == "tsv":
        splits = load_tsv(data)
    elif corpus.startswith(TFDS_PREFIX) and len(corpus) > len(TFDS_PREFIX):
        splits = load_tfds_corpus(data)
    else:
        splits = LOADERS[corpus_spec(corpus).builder](data)  # CorpusError if unknown
    splits = cap_pairs(splits, data)
    log.info("%s: %s", corpus, split_summary(splits))
    return splits


def split_summary(splits: dict[str, list[Pair]]) -> str:
    """One line: pairs and groups per split."""
    total = sum(len(pairs) for pairs in splits.values()) or 1
    parts = [
        f"{name} {len(pairs):,} pairs ({len(pairs) / total:.1%}, "
        f"{len({pair.group for pair in pairs}):,} groups)"
        for name, pairs in splits.items()
    ]
    return "; ".join(parts)
