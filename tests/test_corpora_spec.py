"""The corpus table is the one source of corpus facts, and the builders read it."""

from __future__ import annotations

import pytest

from seq2seq.data.corpora.spec import (
    CORPORA,
    CorpusError,
    corpus_languages,
    corpus_spec,
    is_dialogue,
    licence_note,
    local_file_checksums,
)


def test_unknown_corpus_names_every_accepted_form():
    with pytest.raises(CorpusError) as error:
        corpus_spec("anki/deu-eng")
    message = str(error.value)
    assert "data.corpus is 'anki/deu-eng'" in message
    for name in ("anki/spa-eng", "anki/fra-eng", "daily_dialog", "cornell_dialogs", "tsv"):
        assert name in message


def test_languages_follow_the_columns_and_reverse():
    assert corpus_languages("anki/spa-eng", reverse=False) == ("en", "es")
    assert corpus_languages("anki/spa-eng", reverse=True) == ("es", "en")
    assert corpus_languages("anki/fra-eng", reverse=True) == ("fr", "en")
    assert corpus_languages("tsv", reverse=True) == ("en", "en")


def test_dialogue_and_licence_facts():
    assert is_dialogue("daily_dialog") and is_dialogue("cornell_dialogs")
    assert not is_dialogue("anki/spa-eng") and is_dialogue("anki/spa-eng", context_turns=1)
    assert "non-commercial" in licence_note("daily_dialog")
    assert licence_note("anki/spa-eng") is None and licence_note("tsv") is None


def test_every_local_file_is_pinned_and_unique():
    paths = [file.path for spec in CORPORA for file in spec.local_files.values()]
    assert len(paths) == len(set(paths)) == len(local_file_checksums()) == 7
    assert all(len(sha) == 64 and size > 0 for size, sha in local_file_checksums().values())


def test_builders_take_configs_files_and_download_checksums_from_the_table():
    from seq2seq.data.corpora import tfds_builders as tb

    assert [c.name for c in tb.Anki.BUILDER_CONFIGS] == ["spa-eng", "fra-eng"]
    assert tb.Anki.relative_paths("fra-eng") == {"pairs": "translation/fra-eng.tsv.gz"}
    assert set(tb.DailyDialog.relative_paths("default")) == {"train", "validation", "test"}
    infos = tb.CornellDialogs.url_infos
    cornell = corpus_spec("cornell_dialogs").download
    assert infos[cornell.url].checksum == cornell.sha256 and int(infos[cornell.url].size) > 0
    # unpinned downloads (the publisher rewrites them) are left out, not given a fake checksum
    assert corpus_spec("anki/fra-eng").download.url not in infos
    assert set(tb.BUILDERS) == {spec.builder for spec in CORPORA}
