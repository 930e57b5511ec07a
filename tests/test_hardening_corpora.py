"""Issue 14, item 6: the bad-line threshold applies on every load, also when the prepared
TFDS cache is reused; and the data folder / download errors of an offline start."""

from __future__ import annotations

import dataclasses
import gzip
import logging
from pathlib import Path

import pytest

from seq2seq.config import DataConfig
from seq2seq.data.corpora import CorpusError, load_splits


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


@pytest.fixture
def no_download(monkeypatch):
    import tensorflow_datasets as tfds

    def refuse(*args, **kwargs):
        raise AssertionError("download attempted")

    for method in ("download", "download_and_extract"):
        monkeypatch.setattr(tfds.download.DownloadManager, method, refuse)


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

    from seq2seq.data.corpora import CorpusNotFoundError

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
