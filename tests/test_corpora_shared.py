"""The real shared corpora through TFDS, offline: counts, disjoint splits, determinism."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from seq2seq.config import DataConfig
from seq2seq.data.corpora import load_splits
from seq2seq.data.corpora import tfds_builders as tb
from seq2seq.data.corpora.loading import SPLITS

# Preparing the real corpora (over 280,000 lines) takes most of a minute: slow tier.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def offline():
    """Fail on any download or socket connection while these tests run (module scope: the
    patch must end with this module, or later tests that talk to a local app fail)."""
    import tensorflow_datasets as tfds

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    with pytest.MonkeyPatch.context() as patch:
        for method in ("download", "download_and_extract"):
            patch.setattr(tfds.download.DownloadManager, method, refuse)
        patch.setattr(socket.socket, "connect", refuse)
        patch.delenv("SEQ2SEQ_VERIFY_CHECKSUMS", raising=False)
        yield


@pytest.fixture(scope="module")
def base(shared_data_dir, tmp_path_factory, offline) -> DataConfig:
    cache = tmp_path_factory.mktemp("tfds_cache")
    return DataConfig(data_dir=str(shared_data_dir), cache_dir=str(cache))


@pytest.fixture(scope="module")
def splits_of(base):
    """load_splits memoised per (corpus, reverse): each call on a big corpus costs seconds."""
    cache: dict = {}

    def load(corpus: str, reverse: bool = False, **fields):
        key = (corpus, reverse, tuple(sorted(fields.items())))
        if key not in cache:
            data = dataclasses.replace(base, corpus=corpus, reverse=reverse, **fields)
            cache[key] = load_splits(data)
        return cache[key]

    return load


def examples(base: DataConfig, name: str, split: str) -> list[dict]:
    return tb.load_examples(name, split, base.data_dir, base.cache_dir)


@pytest.mark.parametrize(("name", "count"), [("anki/spa-eng", 116_638), ("anki/fra-eng", 164_283)])
def test_translation_counts_every_line(base, name, count):
    rows = examples(base, name, "train")
    assert len(rows) == count
    assert sorted(row["line"] for row in rows) == list(range(1, count + 1))


def test_dailydialog_counts(base):
    expected = {"train": (11_113, 87_126), "validation": (1_000, 8_069), "test": (950, 7_365)}
    for split, (dialogues, utterances) in expected.items():
        rows = examples(base, "daily_dialog", split)
        assert len(rows) == dialogues
        assert sum(len(row["turns"]) for row in rows) == utterances
        assert sorted(row["id"] for row in rows) == list(range(dialogues))


def test_cornell_counts(base):
    rows = examples(base, "cornell_dialogs", "train")
    assert len(rows) == 7_128
    assert sum(len(row["turns"]) for row in rows) == 25_180
    assert len({row["movie_id"] for row in rows}) == 52
    assert not any("\u00ef\u00bf\u00bd" in turn for row in rows for turn in row["turns"])
    assert sum("\ufffd" in turn for row in rows for turn in row["turns"]) == 42


def disjoint(splits, side: str) -> bool:
    seen = [{getattr(pair, side) for pair in splits[name]} for name in SPLITS]
    return not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


@pytest.mark.parametrize("corpus", ["anki/spa-eng", "anki/fra-eng"])
@pytest.mark.parametrize("reverse", [False, True])
def test_translation_splits_disjoint(splits_of, corpus, reverse):
    splits = splits_of(corpus, reverse)
    assert all(splits[name] for name in SPLITS)
    assert disjoint(splits, "source") and disjoint(splits, "target")
    first = splits["train"][0]
    assert (first.target if reverse else first.source) == "Go."
    if corpus == "anki/spa-eng":
        assert sum(len(v) for v in splits.values()) == 116_638


def test_translation_splits_deterministic_and_mirrored(base, splits_of):
    forward, backward = splits_of("anki/spa-eng"), splits_of("anki/spa-eng", True)
    assert load_splits(dataclasses.replace(base, corpus="anki/spa-eng")) == forward
    for name in SPLITS:
        assert [(p.target, p.source) for p in backward[name]] == [
            (p.source, p.target) for p in forward[name]
        ]


def test_max_pairs_caps_each_split(splits_of):
    splits = splits_of("anki/spa-eng", max_pairs=1000)
    assert sum(len(v) for v in splits.values()) == 1000
    assert 30 <= len(splits["dev"]) <= 70 and disjoint(splits, "source")


def test_dailydialog_pairs_follow_official_splits(splits_of):
    splits = splits_of("daily_dialog")
    assert [len(splits[name]) for name in SPLITS] == [87_126 - 11_113, 8_069 - 1_000, 7_365 - 950]
    assert splits["dev"][0].group == "validation/0"


def test_cornell_splits_by_movie(base):
    data = dataclasses.replace(base, corpus="cornell_dialogs", context_turns=2)
    splits = load_splits(data)
    assert disjoint(splits, "group") and all(splits[name] for name in SPLITS)
    assert sum(len(v) for v in splits.values()) == 25_180 - 7_128 - 1  # one empty turn
    assert load_splits(data) == splits
    assert any(" <sep> " in pair.source for pair in splits["train"])
