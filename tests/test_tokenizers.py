"""Tokenizers: normalisation, round-trips on real sentences, UNK, save/load, limits."""

from __future__ import annotations

import gzip
import os
from collections import Counter
from pathlib import Path

import pytest

from seq2seq.data.tokenizers import (
    END,
    PAD,
    SPECIAL_PIECES,
    START,
    UNK,
    SentencePieceTokenizer,
    TokenizerError,
    WordTokenizer,
    fit_tokenizer,
    load_tokenizer,
    normalize,
)

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SEQ2SEQ_DATA_DIR", REPO.parent / "shared" / "data"))
SPA_ENG = DATA_DIR / "translation" / "spa-eng.tsv.gz"


def read_pairs(limit: int) -> list[tuple[str, str]]:
    """Every 20th line, so short and long sentences are both represented."""
    if not SPA_ENG.is_file():
        pytest.skip(f"corpus not found: {SPA_ENG} (set SEQ2SEQ_DATA_DIR)")
    pairs = []
    with gzip.open(SPA_ENG, "rt", encoding="utf-8") as lines:
        for n, line in enumerate(lines):
            if n % 20 == 0:
                english, spanish = line.rstrip("\n").split("\t")[:2]
                pairs.append((english, spanish))
            if len(pairs) >= limit:
                break
    return pairs


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str]]:
    return read_pairs(5000)


@pytest.fixture(scope="module")
def spanish(pairs) -> list[str]:
    return [es for _, es in pairs]


@pytest.fixture(scope="module")
def english(pairs) -> list[str]:
    return [en for en, _ in pairs]


# Hand-written sentences whose exact round-trip the tests check.
EXTRA_SPANISH = ["¿Dónde está Tom?", "¡Hola, Tom!", "Tom ganó.", "Él dijo «sí»."]


@pytest.fixture(scope="module")
def word_es(spanish) -> WordTokenizer:
    texts = spanish + EXTRA_SPANISH
    return fit_tokenizer("word", texts, 50_000, language="es", user_symbols=["<sep>"])


@pytest.fixture(scope="module")
def sp_es(spanish) -> SentencePieceTokenizer:
    return fit_tokenizer("sentencepiece", spanish, 800, user_symbols=["<sep>"])


# --- normalize -----------------------------------------------------------------------


def test_normalize_spaces_zero_width_and_case():
    assert normalize("Il a dit\u00a0: «\u202foui\u202f»") == "Il a dit : « oui »"
    assert normalize("  a\u200bb\ufeff \t\n c\u2060  ") == "ab c"
    assert normalize("ÉL ÁRBOL", lowercase=True) == "él árbol"
    assert normalize("ÉL") == "ÉL"
    assert normalize("") == ""


def test_special_ids_are_fixed():
    assert (PAD, UNK, START, END) == (0, 1, 2, 3)


# --- shared behaviour -----------------------------------------------------------------


@pytest.fixture(params=["word", "sentencepiece"])
def tokenizer(request, word_es, sp_es):
    return word_es if request.param == "word" else sp_es


def test_specials_at_start_of_vocabulary(tokenizer):
    assert [tokenizer.id_to_piece(i) for i in range(4)] == list(SPECIAL_PIECES)


def test_empty_string_encodes_to_nothing(tokenizer):
    assert tokenizer.encode("") == []
    assert tokenizer.encode(" \u200b ") == []
    assert tokenizer.decode([]) == ""


def test_encode_batch_matches_encode(tokenizer, spanish):
    texts = spanish[:50] + ["", "¿Qué?"]
    assert tokenizer.encode_batch(texts) == [tokenizer.encode(t) for t in texts]


def test_pieces_align_with_ids(tokenizer, spanish):
    for text in spanish[:100]:
        assert len(tokenizer.pieces(text)) == len(tokenizer.encode(text))


def test_decode_stops_at_end_and_skips_specials(tokenizer):
    ids = tokenizer.encode("¿Dónde está Tom?")
    assert tokenizer.decode([START, *ids, END, *ids, PAD]) == "¿Dónde está Tom?"
    assert tokenizer.decode([START, *ids, PAD, PAD]) == "¿Dónde está Tom?"


def test_user_symbol_is_one_piece(tokenizer):
    pieces = tokenizer.pieces("Hola. <sep> ¿Qué tal?")
    assert any(p.strip("▁") == "<sep>" for p in pieces)
    assert "<" not in [p.strip("▁") for p in pieces]


def test_no_break_spaces_become_spaces(tokenizer):
    assert tokenizer.encode("¿Dónde\u00a0está\u202fTom ?") == tokenizer.encode("¿Dónde está Tom ?")


def test_save_load_gives_identical_ids(tokenizer, spanish, tmp_path):
    tokenizer.save(tmp_path / "vocab")
    loaded = load_tokenizer(tmp_path / "vocab")
    assert type(loaded) is type(tokenizer)
    assert loaded.vocab_size == tokenizer.vocab_size
    texts = [*spanish[:200], "Ünïcödé ☃ xyzzy"]
    assert loaded.encode_batch(texts) == tokenizer.encode_batch(texts)
    ids = tokenizer.encode(spanish[7])
    assert loaded.decode(ids) == tokenizer.decode(ids)


# --- word tokenizer -----------------------------------------------------------------


def round_trip_rate(tokenizer, texts: list[str]) -> float:
    ids = tokenizer.encode_batch(texts)
    return sum(tokenizer.decode(i) == normalize(t) for i, t in zip(ids, texts, strict=True)) / len(
        texts
    )


def test_word_round_trip_on_real_spanish(word_es, spanish):
    assert round_trip_rate(word_es, spanish[::4]) > 0.97
    for text in EXTRA_SPANISH:
        assert word_es.decode(word_es.encode(text)) == text


def test_word_splits_punctuation_and_keeps_case(word_es):
    assert word_es.pieces("¿Dónde está Tom?") == ["¿", "Dónde", "está", "Tom", "?"]
    assert word_es.pieces("¡Sí!") == ["¡", "Sí", "!"]


def test_word_english_detokenisation(english):
    word_en = fit_tokenizer("word", english, 10_000, language="en")
    assert word_en.decode(word_en.encode("Tom won.")) == "Tom won."
    assert word_en.pieces("I don't know.") == ["I", "don", "'t", "know", "."]
    assert word_en.decode(word_en.encode("I don't know.")) == "I don't know."
    assert round_trip_rate(word_en, english[::4]) > 0.97


def test_word_unknown_words_map_to_unk(word_es):
    ids = word_es.encode("Tom xyzzyplugh ☃")
    assert ids[1:] == [UNK, UNK]
    assert ids[0] != UNK
    assert word_es.decode(ids) == "Tom <unk> <unk>"


def test_word_lowercases_non_ascii():
    tok = fit_tokenizer("word", ["Él ÁRBOL ÑANDÚ", "él árbol"], 100, lowercase=True)
    assert tok.pieces("ÉL Árbol Ñandú") == ["él", "árbol", "ñandú"]
    assert UNK not in tok.encode("ÉL Árbol Ñandú")
    cased = fit_tokenizer("word", ["Él ÁRBOL"], 100)
    assert cased.pieces("Él ÁRBOL") == ["Él", "ÁRBOL"]


def test_word_vocabulary_limits(spanish):
    tok = fit_tokenizer("word", spanish, 300, min_frequency=1)
    assert tok.vocab_size == 300
    tok = fit_tokenizer("word", spanish, 50_000, min_frequency=5)
    counts = Counter(b.decode() for b in tok.split(spanish).flat_values.numpy())
    words = [tok.id_to_piece(i) for i in range(4, tok.vocab_size)]
    assert words and all(counts[w] >= 5 for w in words)
    assert tok.vocab_size < 50_000


def test_word_fit_is_deterministic(spanish):
    a = fit_tokenizer("word", spanish[:1000], 500)
    b = fit_tokenizer("word", spanish[:1000], 500)
    assert a.vocabulary == b.vocabulary


# --- sentencepiece -----------------------------------------------------------------


def test_sentencepiece_round_trip_on_real_sentences(sp_es, spanish):
    for text, ids in zip(spanish, sp_es.encode_batch(spanish), strict=True):
        assert sp_es.decode(ids) == normalize(text)


def test_sentencepiece_keeps_case_and_accents(sp_es):
    text = "¡Él dijo:\u00a0¿Dónde estás, Tom? ÉSTA ES MARTA!"
    assert sp_es.decode(sp_es.encode(text)) == normalize(text)
    assert sp_es.vocab_size == 800


def test_sentencepiece_unknown_characters(sp_es):
    ids = sp_es.encode("Tom 漢字")
    assert UNK in ids
    assert sp_es.decode([50_000, 7]) is not None  # out-of-range ids do not crash


def test_sentencepiece_lowercase(spanish):
    tok = fit_tokenizer("sentencepiece", spanish[:2000], 400, lowercase=True)
    assert tok.encode("ÉL ESTÁ AQUÍ") == tok.encode("él está aquí")


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["word", "sentencepiece"])
def test_empty_corpus_is_an_error(kind):
    with pytest.raises(TokenizerError, match="empty"):
        fit_tokenizer(kind, ["", "  "], 100)


def test_unknown_kind_is_an_error():
    with pytest.raises(TokenizerError, match="bpe"):
        fit_tokenizer("bpe", ["hola"], 100)


def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(TokenizerError, match=str(tmp_path)):
        load_tokenizer(tmp_path)


def test_digit_splitting_and_byte_fallback_spell_any_number_and_character(spanish, tmp_path):
    """Without them, 'Ω' decodes to ⁇ and a number may be one piece the model cannot split;
    with them every digit is a piece and an unseen character comes back intact."""
    plain = fit_tokenizer("sentencepiece", spanish, 600)
    spelt = fit_tokenizer("sentencepiece", spanish, 600, split_digits=True, byte_fallback=True)
    assert "⁇" in plain.decode(plain.encode("Ωmega 2017"))
    for text in ("Ωmega 2017", "Xóchitl vive en Zaragoza desde 2017.", "El vuelo IB3172 🛫"):
        assert spelt.decode(spelt.encode(text)) == text
        assert UNK not in spelt.encode(text)
    digits = [
        p for p in spelt.pieces("Compramos 19 entradas y 2017 más.") if p.strip("▁").isdigit()
    ]
    assert all(len(p.strip("▁")) == 1 for p in digits) and len(digits) == 6
    spelt.save(tmp_path / "spelt")
    assert load_tokenizer(tmp_path / "spelt").encode("Ω 42") == spelt.encode("Ω 42")


def test_the_copy_presets_vocabulary_spells_names_numbers_and_chat_replies_exactly(pairs):
    """Clean output text starts at the tokenizer: with es-en-copy's settings (one shared
    model, split digits, byte fallback) every sentence of the names-and-numbers set and of
    the chat sample decodes back to itself, so a glued ("three50"), split or re-cased word in
    an output is the model's choice of pieces, never the detokeniser's."""
    shared = fit_tokenizer(
        "sentencepiece",
        [text for pair in pairs for text in pair],
        2000,
        split_digits=True,
        byte_fallback=True,
    )
    names = (REPO / "data" / "names-numbers" / "es-en.tsv").read_text(encoding="utf-8")
    chat = (REPO / "data" / "sample" / "chat_messages.txt").read_text(encoding="utf-8")
    texts = [t for line in names.splitlines() for t in line.split("\t")] + chat.splitlines()
    assert len(texts) > 400
    for text in texts:
        ids = shared.encode(text)
        assert UNK not in ids, text
        assert shared.decode(ids) == text


def test_digit_and_byte_options_are_checked_in_the_config():
    from seq2seq.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="data.split_digits is a SentencePiece option"):
        load_config("quickstart", overrides=["data.tokenizer=word", "data.split_digits=true"])
    with pytest.raises(ConfigError, match="byte_fallback adds 256 byte pieces"):
        load_config(
            "quickstart", overrides=["data.byte_fallback=true", "data.source_vocab_size=300"]
        )
