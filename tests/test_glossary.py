"""Glossaries: reading and checking the TSV file, one-line errors naming file and line, and
which terms a source sentence matches."""

from __future__ import annotations

import pytest

from seq2seq.constants import UNK
from seq2seq.inference.glossary import GlossaryError, parse_glossary, read_glossary


class Words:
    """A stand-in target tokenizer: known words get ids, others UNK."""

    known = {"tokyo": 5, "new": 6, "york": 7, "two": 8, "ocho": 9}

    def encode(self, text):
        return [self.known.get(word, UNK) for word in text.lower().split()]

    def pieces(self, text):
        return text.lower().split()


def test_reads_terms_and_skips_blank_lines(tmp_path):
    path = tmp_path / "terms.tsv"
    path.write_bytes("\ufeffTokio\tTokyo\r\n\n  \nNueva  York\tNew York\ndos\ttwo\n".encode())
    glossary = read_glossary(path)
    assert [(t.source, t.target, t.line) for t in glossary.terms] == [
        ("Tokio", "Tokyo", 1),
        ("Nueva York", "New York", 4),
        ("dos", "two", 5),
    ]
    assert len(glossary) == 3


def test_matches_whole_words_any_case_longest_first_once_each():
    glossary = parse_glossary("York\tYork\nNueva York\tNew York\ndos\ttwo\nTokio\tTokyo\n")
    sources = lambda text: [t.source for t in glossary.matches(text)]  # noqa: E731
    assert sources("Vivo en NUEVA   york desde hace dos años.") == ["Nueva York", "dos"]
    assert sources("York, y york otra vez") == ["York"]
    assert sources("Tokiota, dosis, yorkshire") == []  # inside longer words: no
    assert sources("¿Dos? (Tokio)") == ["dos", "Tokio"]
    assert sources("") == []
    assert parse_glossary("").matches("anything") == []


def test_constraints_are_the_target_terms_ids():
    glossary = parse_glossary("Tokio\tTokyo\nNueva York\tNew York\n").with_vocabulary(Words())
    assert glossary.constraints("De Nueva York a Tokio.") == [[6, 7], [5]]
    assert glossary.constraints("Nada.") == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("Tokio\tTokyo\nsin tab\n", r"^terms.tsv:2: expected source term<TAB>target term \(one "),
        ("a\tb\tc\n", r"^terms.tsv:1: .*found 2 tabs in 'a\\tb\\tc'$"),
        ("\tTokyo\n", r"^terms.tsv:1: the source term is empty$"),
        ("Tokio\t  \n", r"^terms.tsv:1: the target term is empty$"),
        (
            "Tokio\tTokyo\nTOKIO\tTokio\n",
            r"^terms.tsv:2: the source term 'TOKIO' is already given on line 1 with another "
            r"target \('Tokyo' vs 'Tokio'\); keep one$",
        ),
        (b"Tokio\tTokyo\n\xff\xfe\tx\n", r"^terms.tsv:2: not UTF-8"),
    ],
)
def test_bad_lines_are_refused_in_one_line_naming_file_and_line(text, message):
    with pytest.raises(GlossaryError, match=message) as caught:
        parse_glossary(text, "terms.tsv")
    assert "\n" not in str(caught.value)


def test_the_same_pair_twice_is_accepted():
    glossary = parse_glossary("Tokio\tTokyo\ntokio\tTokyo\n")
    assert len(glossary) == 1


def test_a_target_term_the_vocabulary_cannot_spell_is_refused():
    glossary = parse_glossary("Tokio\tTokyo\nKioto\tKyoto\n", "terms.tsv")
    with pytest.raises(GlossaryError) as caught:
        glossary.with_vocabulary(Words())
    assert str(caught.value) == (
        "terms.tsv:2: the target term 'Kyoto' cannot be spelled by the run's target "
        "vocabulary (the piece(s) 'kyoto' are not in it); use another spelling or a run "
        "whose vocabulary has it"
    )


def test_unreadable_files(tmp_path):
    with pytest.raises(GlossaryError, match=r"missing.tsv: cannot be read \(No such file"):
        read_glossary(tmp_path / "missing.tsv")
    with pytest.raises(GlossaryError, match="is a folder"):
        read_glossary(tmp_path)


def test_word_continuations_are_sentencepiece_pieces_inside_a_word():
    from seq2seq.inference.glossary import word_continuations

    class Pieces:
        kind = "sentencepiece"
        pieces = ["<pad>", "<unk>", "<s>", "</s>", "▁physic", "ian", "d", ".", "'s", "▁the", "9"]
        vocab_size = len(pieces)

        def id_to_piece(self, i):
            return self.pieces[i]

    glue = word_continuations(Pieces())
    assert [Pieces.pieces[i] for i in glue.nonzero()[0]] == ["ian", "d", "9"]
    Pieces.kind = "word"
    assert not word_continuations(Pieces()).any()


def test_the_sample_glossary_reads():
    from pathlib import Path

    sample = Path(__file__).resolve().parents[1] / "data" / "sample" / "glossary-es-en.tsv"
    glossary = read_glossary(sample)
    assert len(glossary) == 30
    assert [t.target for t in glossary.matches("El médico vive en Nueva York.")] == [
        "physician",
        "New York",
    ]
