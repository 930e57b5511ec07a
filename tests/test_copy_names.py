"""decode.copy_names: which words of a source must be copied, the training sources' word
list a run records, the flag, and a trained copy run that puts unseen names and numbers
in its output only when asked."""

from __future__ import annotations

import random

import pytest

from seq2seq.config import ConfigError, load_config
from seq2seq.data.source_words import (
    read_records,
    read_source_words,
    source_ids,
    word_keys,
    write_source_words,
)
from seq2seq.data.tokenizers import SentencePieceTokenizer
from seq2seq.inference.copy_names import CopyNames, merge_constraints
from seq2seq.runs import RunError
from seq2seq.search.options import add_decode_arguments, overrides_from_args, resolve_decode

KNOWN = frozenset({"pagó", "el", "vuelo", "sale", "a", "las", "vivo", "en", "españa", "con", "tom"})

# -- which words are copy terms ---------------------------------------------------------


@pytest.mark.parametrize(
    "source, terms",
    [
        ("El vuelo IB3172 sale a las 14:45.", ["IB3172", "14:45"]),
        ("Vivo en España con Tom.", []),  # known names are the model's to translate
        ("Xóchitl vive en Jyväskylä desde 2017.", ["Xóchitl", "Jyväskylä", "2017"]),
        ("El paquete pesa 3,5 kilos.", ["3", "5"]),  # separators differ between languages
        ("Pagó 1.250 euros (a las 9:05).", ["1", "250", "9:05"]),
        ("Citlali y Citlali: 7 y 7.", ["Citlali", "7"]),  # once each
    ],
)
def test_copy_terms_are_numbers_codes_and_unseen_capitalised_words(source, terms):
    assert CopyNames(KNOWN, None).terms(source) == terms


def test_missing_terms_are_whole_words_with_the_same_case():
    copier = CopyNames(KNOWN, None)
    source = "Xóchitl sale a las 14:45 en el vuelo IB3172."
    assert copier.missing(source, "Xóchitl leaves at 14:45 on flight IB3172.") == []
    assert copier.missing(source, "xóchitl leaves at 1445 on flight IB31720.") == [
        "Xóchitl",
        "14:45",
        "IB3172",
    ]


@pytest.fixture(scope="module")
def shared_pieces() -> SentencePieceTokenizer:
    texts = [
        f"Ana vive en Lima desde {1900 + i} . Ana lives in Lima since {1900 + i} ."
        for i in range(99)
    ]
    return SentencePieceTokenizer.fit(texts, 400, split_digits=True, byte_fallback=True)


def test_constraints_spell_words_whole_and_inner_digit_runs_without_the_word_start(
    shared_pieces,
):
    copier = CopyNames(KNOWN, shared_pieces)
    source = "Xóchitl pesa 3,5 kilos."
    xochitl, three, five = copier.constraints(source)
    assert xochitl == shared_pieces.encode("Xóchitl")  # byte pieces for what it lacks
    assert shared_pieces.pieces("Xóchitl")[0].startswith("\u2581")
    assert three == shared_pieces.encode("3")  # starts a word in the source: "▁", "3"
    assert shared_pieces.pieces("5")[0] == "\u2581" and five == shared_pieces.encode("5")[1:]
    assert copier.constraints(source, ["Xóchitl"]) == [xochitl]


def test_merged_constraints_keep_each_id_list_once():
    assert merge_constraints([[5, 6], [7]], None, [[7], [8]]) == [[5, 6], [7], [8]]


# -- the word list a run records ---------------------------------------------------------


def test_word_list_round_trip_and_prepared_records(tmp_path):
    import numpy as np
    import tensorflow as tf

    path = tmp_path / "train-00000.tfrecord"
    rows = [([5, 6, 7], [8, 9]), ([10], [11, 12, 13])]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for source, target in rows:
            writer.write(np.asarray([len(source), *source, *target], "<i4").tobytes())
    assert len(list(read_records(path))) == 2
    assert list(source_ids([path])) == [[5, 6, 7], [10]]
    assert list(source_ids([path], max_pairs=1)) == [[5, 6, 7]]

    assert word_keys("¿Dónde vive  XÓCHITL?") == ["dónde", "vive", "xóchitl"]
    words = tmp_path / "source_words.txt"
    write_source_words(words, {"vive", "dónde"})
    assert words.read_text(encoding="utf-8").splitlines()[1:] == ["dónde", "vive"]
    assert read_source_words(words) == {"vive", "dónde"}


def test_a_truncated_record_file_is_named(tmp_path):
    from seq2seq.data.source_words import SourceWordsError

    path = tmp_path / "train-00000.tfrecord"
    path.write_bytes(b"\x10\x00\x00")
    with pytest.raises(SourceWordsError, match="train-00000.tfrecord: truncated"):
        list(read_records(path))


# -- the flag ----------------------------------------------------------------------------


def decode_of(config, argv):
    import argparse

    parser = argparse.ArgumentParser()
    add_decode_arguments(parser)
    return resolve_decode(config, overrides_from_args(parser.parse_args(argv)))


def test_the_flag_turns_it_on_and_off_and_needs_beam_search():
    config = load_config("es-en-copy")
    assert decode_of(config, ["--copy-names"]).copy_names is True
    on = config.replace(decode=config.decode.replace(copy_names=True))
    assert decode_of(on, []).copy_names is True
    assert decode_of(on, ["--no-copy-names"]).copy_names is False
    # the run's default is for its beam search: another search leaves it off
    assert decode_of(on, ["--method", "greedy"]).copy_names is False
    with pytest.raises(ConfigError, match="copy_names .* constrained beam search"):
        decode_of(config, ["--temperature", "0.7", "--copy-names"])
    with pytest.raises(ConfigError, match="decode.copy_names"):
        load_config("es-en-copy", overrides=["decode.copy_names=true", "decode.method=greedy"])


# -- a trained run -----------------------------------------------------------------------

NAMES = ["Ana", "Luis", "Marta", "Pablo", "Elena", "Jorge", "Lucía", "Sergio"]
PLACES = ["Lima", "Quito", "Cádiz", "Burgos", "Sevilla", "Toledo", "Bilbao", "Soria"]


def name_pairs() -> list[tuple[str, str]]:
    rng = random.Random(3)
    pairs = set()
    while len(pairs) < 600:
        name, place, year = rng.choice(NAMES), rng.choice(PLACES), rng.randrange(1900, 2030)
        pairs.add(
            (f"{name} vive en {place} desde {year}.", f"{name} lives in {place} since {year}.")
        )
    return sorted(pairs)


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory):
    from seq2seq.training.loop import train

    folder = tmp_path_factory.mktemp("copy_run")
    corpus = folder / "pairs.tsv"
    corpus.write_text("".join(f"{s}\t{t}\n" for s, t in name_pairs()), encoding="utf-8")
    config = load_config(
        "es-en-copy",
        overrides=[
            "data.corpus=tsv",
            f"data.path={corpus}",
            "data.reverse=false",
            "data.source_vocab_size=512",
            "model.embedding_dim=32",
            "model.hidden_size=32",
            "model.dropout=0.0",
            "train.epochs=2",
            "train.select_best_by=loss",
            "train.dev_bleu_sentences=0",
            "train.mixed_precision='off'",
            "decode.max_length=48",
        ],
    )
    run = folder / "run"
    train(config, run, verbose=0)
    return run


@pytest.mark.slow
def test_a_run_records_its_training_words_and_copies_unseen_names_only_when_asked(copy_run):
    from seq2seq.inference.translator import Translator

    known = read_source_words(copy_run / "source_words.txt")
    assert {"vive", "lima", "ana", "desde"} <= known and "xóchitl" not in known
    translator = Translator.from_run(copy_run)
    source = "Xóchitl vive en Jyväskylä desde 1066."
    plain = translator.translate_one(source, translator.decode_config(copy_names=False))
    assert translator.config.decode.copy_names  # the es-en-copy preset has it on
    copied = translator.translate_one(source)
    assert translator.copy_names().missing(source, plain.text)  # two epochs do not copy it
    assert translator.copy_names().missing(source, copied.text) == [], copied.text
    # a sentence without copy terms ("Lima" is known) is searched once, as without it
    known_source = "Lima vive en Lima desde siempre."
    settings = translator.decode_config(copy_names=False)
    assert translator.copy_names().terms(known_source) == []
    on = settings.replace(copy_names=True)
    assert translator.translate_one(known_source, on).text == (
        translator.translate_one(known_source, settings).text
    )


@pytest.mark.slow
def test_a_run_without_its_word_list_reads_it_from_its_prepared_data(copy_run, tmp_path):
    import shutil

    from seq2seq.inference.translator import Translator

    old = tmp_path / "old-run"
    shutil.copytree(copy_run, old)
    (old / "source_words.txt").unlink()
    translator = Translator.from_run(old)
    assert translator.copy_names().known_words == read_source_words(copy_run / "source_words.txt")
    assert (old / "source_words.txt").is_file()  # written for next time

    (old / "source_words.txt").unlink()
    config = (old / "config.yaml").read_text(encoding="utf-8")
    (old / "config.yaml").write_text(config.replace("max_pairs: null", "max_pairs: 70"))
    with pytest.raises(RunError, match="has no source_words.txt .* seq2seq.prepare --config"):
        Translator.from_run(old).copy_names()
