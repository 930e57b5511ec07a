"""Readers, split logic and builders on small synthetic files (no network, fast)."""

from __future__ import annotations

import dataclasses
import gzip
import logging
import random
from pathlib import Path

import pytest

from seq2seq.config import DataConfig
from seq2seq.data.corpora import load_splits, loading, readers
from seq2seq.data.corpora.loading import Pair
from seq2seq.data.corpora.readers import LineReport
from seq2seq.data.corpora.spec import CorpusError, CorpusNotFoundError


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if path.suffix == ".gz":
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def read_all(reader, path: Path) -> tuple[list, LineReport]:
    report = LineReport()
    return list(reader(path, report)), report


# --- LineReport -------------------------------------------------------------------------


def test_report_raises_quoting_file_line_and_reason(tmp_path):
    report = LineReport(total=10)
    for number in range(1, 8):
        report.add_bad(tmp_path / "f.tsv", number, "missing tab between the two sides")
    with pytest.raises(CorpusError) as error:
        report.check(0.1)
    message = str(error.value)
    assert "7 of 10 lines are bad" in message and "70.0000%" in message
    assert f"{tmp_path / 'f.tsv'}:1: missing tab" in message
    assert f"{tmp_path / 'f.tsv'}:6:" not in message and "... and 2 more" in message


def test_report_under_limit_logs_every_bad_line(tmp_path, caplog):
    report = LineReport(total=1000)
    report.add_bad("a.tsv", 3, "empty second column")
    with caplog.at_level(logging.WARNING):
        report.check(0.01)
    assert "a.tsv:3: empty second column" in caplog.text
    assert "1000 lines read, 1 bad" in report.summary()


# --- readers ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pairs.tsv", "pairs.tsv.gz"])
def test_read_anki_good_lines_plain_and_gzip(tmp_path, name):
    path = write(tmp_path / name, "Go.\tVe.\nHi.\tHola.\tCC-BY 2.0 (France) #1\n")
    rows, report = read_all(readers.read_anki, path)
    assert rows == [(1, "Go.", "Ve."), (2, "Hi.", "Hola.")]
    assert report.total == 2 and not report.bad


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"no tab here", "missing tab"),
        (b"\tHola.", "empty first column"),
        (b"Hi.\t  ", "empty second column"),
        (b"a\tb\tc\td", "too many columns (4, at most 3)"),
        (b"Caf\xe9\tcaf\xc3\xa9", "not valid UTF-8"),
        (b"", "missing tab"),
    ],
)
def test_read_anki_bad_lines_named_by_file_and_line(tmp_path, line, reason):
    path = write(tmp_path / "spa.txt", b"Go.\tVe.\n" + line + b"\nHi.\tHola.\n")
    rows, report = read_all(readers.read_anki, path)
    assert [row[0] for row in rows] == [1, 3]  # the bad line does not kill the file
    assert report.total == 3
    [bad] = report.bad
    assert (bad.path, bad.line_number) == (str(path), 2) and reason in bad.reason
    with pytest.raises(CorpusError, match=rf"spa.txt:2: .*{reason[:12]}"):
        report.check(0.001)


def test_read_tsv_allows_exactly_two_columns(tmp_path):
    path = write(tmp_path / "pairs.tsv", "a\tb\na\tb\tc\n")
    rows, report = read_all(readers.read_tsv, path)
    assert rows == [(1, "a", "b")]
    assert "too many columns (3, at most 2)" in report.bad[0].reason


def test_read_dailydialog(tmp_path):
    text = (
        "Hi. __eou__ Hello! How are you? __eou__\n"
        "Only one. __eou__\n"
        "A. __eou__  __eou__ B. __eou__\n"
        "One. __eou__ Two. __eou__ Three. __eou__\n"
    )
    path = write(tmp_path / "dialogues_train.txt.gz", text)
    rows, report = read_all(readers.read_dailydialog, path)
    assert rows == [(0, ["Hi.", "Hello! How are you?"]), (3, ["One.", "Two.", "Three."])]
    reasons = {(bad.line_number, bad.reason) for bad in report.bad}
    assert reasons == {(2, "fewer than 2 utterances (1)"), (3, "empty utterance")}


def test_dailydialog_tokenisation_traces_are_repaired(tmp_path):
    """The corpus writes "It' s", "I'Ve", "Bill , see" and "8 : 30"; a chat model trained on
    that writes them back, so the reader repairs them (and leaves real text alone)."""
    text = (
        "Let' s go. It' s late , Bill . __eou__ I'Ve got it. You'Ve seen it? __eou__ "
        "See you at 8 : 30 ! __eou__ It's fine, isn't it? Rock 'n' roll. __eou__\n"
    )
    path = write(tmp_path / "dialogues_train.txt.gz", text)
    rows, _ = read_all(readers.read_dailydialog, path)
    assert rows == [
        (
            0,
            [
                "Let's go. It's late, Bill.",
                "I've got it. You've seen it?",
                "See you at 8:30!",
                "It's fine, isn't it? Rock 'n' roll.",
            ],
        )
    ]


def test_repaired_dailydialog_text_gets_its_own_cache_key():
    from seq2seq.config import DataConfig
    from seq2seq.data.prepared import TEXT_REVISIONS, data_hash

    assert "anki/spa-eng" not in TEXT_REVISIONS  # its caches stay valid
    daily = DataConfig(corpus="daily_dialog")
    repaired = data_hash(daily)
    revision = TEXT_REVISIONS.pop("daily_dialog")
    try:
        assert data_hash(daily) != repaired  # the key the unrepaired text had
    finally:
        TEXT_REVISIONS["daily_dialog"] = revision


SEP = " +++$+++ "


def cornell_files(tmp_path: Path, conversations: list[str]) -> tuple[Path, Path]:
    lines = [
        SEP.join(["L3", "u1", "m1", "BOB", "Bye."]).encode("latin-1"),
        SEP.join(["L2", "u0", "m1", "ANN", "Caf\u00e9 \u00ef\u00bf\u00bd ok"]).encode("latin-1"),
        SEP.join(["L1", "u1", "m1", "BOB", "Hi."]).encode("latin-1"),
        SEP.join(["L9", "u5", "m2", "EVE", "Elsewhere."]).encode("latin-1"),
        b"L7 +++$+++ broken",
    ]
    lines_path = write(tmp_path / "movie_lines.txt.gz", b"\n".join(lines) + b"\n")
    conv_path = write(tmp_path / "movie_conversations.txt", "\n".join(conversations) + "\n")
    return lines_path, conv_path


def test_read_cornell_resolves_and_reports(tmp_path):
    conversations = [
        SEP.join(["u1", "u0", "m1", "['L1', 'L2', 'L3']"]),
        SEP.join(["u1", "u0", "m1", "['L1', 'L404']"]),
        SEP.join(["u1", "u0", "m1", "L1, L2"]),
        SEP.join(["u1", "u0", "m1"]),
        SEP.join(["u1", "u0", "m1", "['L1', 'L9']"]),
        SEP.join(["u1", "u0", "m1", "__import__('os')"]),
    ]
    lines_path, conv_path = cornell_files(tmp_path, conversations)
    report = LineReport()
    rows = list(readers.read_cornell(lines_path, conv_path, report))
    assert rows == [(0, "m1", ["Hi.", "Caf\u00e9 \ufffd ok", "Bye."])]
    assert report.total == 5 + 6
    found = {(Path(bad.path).name, bad.line_number): bad.reason for bad in report.bad}
    assert "expected 5 fields" in found[("movie_lines.txt.gz", 5)]
    assert "missing line id(s) L404" in found[("movie_conversations.txt", 2)]
    assert "not a list" in found[("movie_conversations.txt", 3)]
    assert "expected 4 fields" in found[("movie_conversations.txt", 4)]
    assert "belongs to movie m2" in found[("movie_conversations.txt", 5)]
    assert "not a list" in found[("movie_conversations.txt", 6)]


def test_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(CorpusNotFoundError) as error:
        list(readers.read_anki(tmp_path / "nope.tsv", LineReport()))
    assert str(tmp_path / "nope.tsv") in str(error.value)
    assert "SEQ2SEQ_DATA_DIR" in str(error.value) and "data.data_dir" in str(error.value)


# --- split logic ------------------------------------------------------------------------


def synthetic_pairs(count: int = 600) -> list[tuple[str, str]]:
    rng = random.Random(0)
    return [(f"en {rng.randrange(count // 2)}", f"es {rng.randrange(count)}") for _ in range(count)]


def flatten(splits):
    return {name: [(p.source, p.target) for p in pairs] for name, pairs in splits.items()}


def test_translation_split_is_disjoint_deterministic_and_order_free():
    data = DataConfig(dev_fraction=0.1, test_fraction=0.1)
    pairs = synthetic_pairs()
    splits = loading.split_translation(pairs, data)
    assert sum(len(v) for v in splits.values()) == len(pairs)
    for side in (0, 1):
        seen = [{pair[side] for pair in flatten(splits)[name]} for name in loading.SPLITS]
        assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    again = loading.split_translation(shuffled, data)
    assert {k: sorted(v) for k, v in flatten(again).items()} == {
        k: sorted(v) for k, v in flatten(splits).items()
    }
    reverse = loading.split_translation(pairs, DataConfig(reverse=True))
    assert reverse["train"][0].source.startswith("es ")


def test_groups_link_shared_sentences_on_either_side():
    pairs = [("a", "x"), ("b", "x"), ("b", "y"), ("c", "z")]
    assert loading.sentence_groups(pairs) == ["a", "a", "a", "c"]


def test_dialogue_pairs_with_context():
    data = DataConfig(context_turns=1)
    pairs, skipped = loading.dialogue_pairs(["A", "B", "", "C", "D"], "g", data)
    assert [(p.source, p.target) for p in pairs] == [("A", "B"), ("C", "D")]
    assert skipped == 2
    plain, _ = loading.dialogue_pairs(["A", "B", "C"], "g", DataConfig())
    assert [(p.source, p.target) for p in plain] == [("A", "B"), ("B", "C")]
    wide, _ = loading.dialogue_pairs(["A", "B", "C"], "g", DataConfig(context_turns=5))
    assert wide[-1].source == "A <sep> B"


def test_split_by_units_keeps_groups_whole():
    pairs = [Pair(f"s{i}", f"t{i}", f"m{i % 20}") for i in range(400)]
    splits = loading.split_by_units(pairs, DataConfig(dev_fraction=0.1, test_fraction=0.1))
    groups = [{p.group for p in splits[name]} for name in loading.SPLITS]
    assert all(groups) and not (
        groups[0] & groups[1] | groups[0] & groups[2] | groups[1] & groups[2]
    )
    assert sum(len(v) for v in splits.values()) == 400


def test_cap_pairs_is_proportional_and_deterministic():
    splits = loading.split_translation(synthetic_pairs(), DataConfig())
    capped = loading.cap_pairs(splits, DataConfig(max_pairs=100))
    assert sum(len(v) for v in capped.values()) == 100
    assert capped == loading.cap_pairs(splits, DataConfig(max_pairs=100))
    for name in loading.SPLITS:
        assert abs(len(capped[name]) - 100 * len(splits[name]) / 600) <= 1


def test_load_splits_tsv_and_bad_fraction(tmp_path):
    path = write(tmp_path / "pairs.tsv", "".join(f"src {i}\ttgt {i}\n" for i in range(200)))
    splits = load_splits(DataConfig(corpus="tsv", path=str(path)))
    assert sum(len(v) for v in splits.values()) == 200 and splits["dev"] and splits["test"]
    assert "train" in loading.split_summary(splits)
    bad = write(tmp_path / "bad.tsv", "ok\tfine\nbroken\n")
    with pytest.raises(CorpusError, match="bad.tsv:2: missing tab"):
        load_splits(DataConfig(corpus="tsv", path=str(bad)))
    with pytest.raises(CorpusNotFoundError, match="absent.tsv"):
        load_splits(DataConfig(corpus="tsv", path=str(tmp_path / "absent.tsv")))


def test_unknown_corpus():
    with pytest.raises(CorpusError, match="allowed: anki/spa-eng"):
        load_splits(DataConfig(corpus="klingon"))


# --- TFDS builders on a synthetic shared/data layout ---------------------------------------


@pytest.fixture
def no_download(monkeypatch):
    """Any attempt to download fails the test loudly."""
    import tensorflow_datasets as tfds

    def refuse(*args, **kwargs):
        raise AssertionError("network download attempted")

    for method in ("download", "download_and_extract"):
        monkeypatch.setattr(tfds.download.DownloadManager, method, refuse)


def test_builders_read_local_layout(tmp_path, no_download, monkeypatch):
    monkeypatch.setenv("SEQ2SEQ_VERIFY_CHECKSUMS", "0")
    root = tmp_path / "data"
    write(root / "translation/spa-eng.tsv.gz", "".join(f"en {i}.\tes {i}.\n" for i in range(50)))
    for split, count in (("train", 5), ("validation", 2), ("test", 2)):
        text = "".join(f"Hi {i}. __eou__ Yo {i}. __eou__ Bye. __eou__\n" for i in range(count))
        write(root / f"dialogue/dailydialog/dialogues_{split}.txt.gz", text)
    cache = tmp_path / "cache"
    data = DataConfig(corpus="anki/spa-eng", data_dir=str(root), cache_dir=str(cache))
    splits = load_splits(data)
    assert sum(len(v) for v in splits.values()) == 50
    assert load_splits(data) == splits
    daily = load_splits(DataConfig(corpus="daily_dialog", data_dir=str(root), cache_dir=str(cache)))
    assert [len(daily[name]) for name in loading.SPLITS] == [10, 4, 4]
    assert daily["dev"][0] == Pair("Hi 0.", "Yo 0.", "validation/0")


def test_builder_rejects_a_copy_with_the_wrong_checksum(tmp_path, no_download, monkeypatch):
    monkeypatch.delenv("SEQ2SEQ_VERIFY_CHECKSUMS", raising=False)
    root = tmp_path / "data"
    write(root / "translation/fra-eng.tsv.gz", "Hi.\tSalut.\n")
    data = DataConfig(corpus="anki/fra-eng", data_dir=str(root), cache_dir=str(tmp_path / "c"))
    with pytest.raises(CorpusError, match="does not match the expected release"):
        load_splits(data)


def test_missing_corpus_says_where_it_looked(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("no network in tests")

    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", offline)
    data = DataConfig(corpus="cornell_dialogs", data_dir=str(tmp_path), cache_dir=str(tmp_path))
    with pytest.raises(CorpusNotFoundError) as error:
        load_splits(data)
    message = str(error.value)
    assert str(tmp_path / "dialogue/cornell/movie_lines.txt.gz") in message
    assert "SEQ2SEQ_DATA_DIR" in message and "data.data_dir" in message
    assert "cornell_movie_dialogs_corpus.zip" in message


# -- the bad-line threshold on every load; offline start ---------------------------------


def write_gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode("utf-8")))


@pytest.fixture
def garbage_layout(tmp_path, monkeypatch) -> Path:
    """A shared/data-like folder whose spa-eng file has 1% malformed lines (2 of 200)."""
    monkeypatch.setenv("SEQ2SEQ_VERIFY_CHECKSUMS", "0")
    lines = [f"Sentence {i}.\tFrase {i}.\n" for i in range(198)] + ["no tab\n", "\tempty\n"]
    write_gz(tmp_path / "data/translation/spa-eng.tsv.gz", "".join(lines))
    return tmp_path


def test_threshold_applies_when_the_cache_is_reused(garbage_layout, caplog):
    data = DataConfig(
        corpus="anki/spa-eng",
        data_dir=str(garbage_layout / "data"),
        cache_dir=str(garbage_layout / "cache"),
        max_bad_fraction=0.05,
    )
    with caplog.at_level(logging.WARNING):
        splits = load_splits(data)  # prepares the cache; 1% bad is within 5%
    assert sum(len(pairs) for pairs in splits.values()) == 198
    assert "2 bad" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load_splits(data) == splits  # the cached data: the bad lines are still logged
    assert "2 bad" in caplog.text
    strict = dataclasses.replace(data, max_bad_fraction=0.001)
    with pytest.raises(CorpusError, match=r"2 of 200 lines are bad .*max_bad_fraction=0\.001"):
        load_splits(strict)
    assert len(list((garbage_layout / "cache").iterdir())) == 1  # the cache was reused


def test_threshold_is_checked_per_dailydialog_split(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQ2SEQ_VERIFY_CHECKSUMS", "0")
    root = tmp_path / "data"
    for split in ("train", "validation", "test"):
        good = "".join(f"Hi {i}. __eou__ Yo {i}. __eou__\n" for i in range(20))
        write_gz(root / f"dialogue/dailydialog/dialogues_{split}.txt.gz", good)
    write_gz(
        root / "dialogue/dailydialog/dialogues_test.txt.gz",
        "".join(f"Hi {i}. __eou__ Yo {i}. __eou__\n" for i in range(19)) + "alone __eou__\n",
    )
    data = DataConfig(
        corpus="daily_dialog",
        data_dir=str(root),
        cache_dir=str(tmp_path / "cache"),
        max_bad_fraction=0.1,
    )
    assert len(load_splits(data)["test"]) == 19
    strict = dataclasses.replace(data, max_bad_fraction=0.01)
    with pytest.raises(CorpusError, match=r"dialogues_test\.txt\.gz:20: fewer than 2"):
        load_splits(strict)


# -- offline start and a mistyped data folder ---------------------------------------------


def test_missing_data_folder_is_reported_not_downloaded(tmp_path, monkeypatch, no_download):
    missing = tmp_path / "shraed" / "data"
    monkeypatch.setenv("SEQ2SEQ_DATA_DIR", str(missing))
    data = DataConfig(corpus="daily_dialog", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(CorpusError, match=rf"{missing} \(\$SEQ2SEQ_DATA_DIR\) does not exist"):
        load_splits(data)
    given = DataConfig(corpus="anki/spa-eng", data_dir=str(missing), cache_dir=str(tmp_path))
    with pytest.raises(CorpusError, match=r"\(data\.data_dir\) does not exist"):
        load_splits(given)


def test_quickstart_reports_a_missing_data_folder(tmp_path, monkeypatch, capsys, no_download):
    from apps.quickstart import main

    monkeypatch.setenv("SEQ2SEQ_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("SEQ2SEQ_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["--models", str(tmp_path / "runs"), "--no-app"]) == 2
    assert "nowhere ($SEQ2SEQ_DATA_DIR) does not exist" in capsys.readouterr().err


def test_unresolvable_host_fails_at_once(tmp_path, monkeypatch, no_download):
    """Offline, with no local copy: the good 'not found' error, without download retries."""
    import socket

    def unresolvable(host, *args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    empty = tmp_path / "data"
    empty.mkdir()
    data = DataConfig(corpus="cornell_dialogs", data_dir=str(empty), cache_dir=str(tmp_path))
    with pytest.raises(CorpusNotFoundError, match="not found. Looked in") as error:
        load_splits(data)
    assert "cannot resolve www.cs.cornell.edu" in str(error.value.__cause__)


def test_a_resolver_that_never_answers_is_given_up(monkeypatch):
    import socket
    import threading

    from seq2seq.data.corpora import tfds_builders

    release = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: release.wait(60))
    try:
        with pytest.raises(OSError, match="cannot resolve example.org: no answer"):
            tfds_builders.check_host_resolves("https://example.org/x.zip", timeout=0.2)
    finally:
        release.set()
