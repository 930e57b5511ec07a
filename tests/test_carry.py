"""Names and numbers carried: the terms a pair defines, what counts as carried, the set."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from seq2seq.inference.carry import carry_report, missing, terms

ROOT = Path(__file__).resolve().parent.parent
SET = ROOT / "data" / "names-numbers" / "es-en.tsv"


def test_terms_are_the_names_and_numbers_the_reference_keeps():
    assert terms("El vuelo IB3172 sale a las 14:45.", "Flight IB3172 leaves at 14:45.") == [
        "IB3172",
        "14",
        "45",
    ]
    # "3,5" becomes "3.5": both digit runs are kept; "Tres" is not a term (not in the reference)
    assert terms("Tres paquetes pesan 3,5 kilos.", "Three parcels weigh 3.5 kilos.") == ["3", "5"]
    # a capital the reference does not keep ("Dios" -> "God") is no term
    assert terms("Xóchitl cree en Dios.", "Xóchitl believes in God.") == ["Xóchitl"]
    assert terms("vive aquí", "lives here") == []
    # a term written twice in both counts twice
    assert terms("Ana y Ana", "Ana and Ana") == ["Ana", "Ana"]


def test_a_term_is_carried_as_a_whole_word_with_its_case():
    source, reference = "Xóchitl vive en Tlaxcala desde 2017.", "Xóchitl lives in Tlaxcala."
    assert missing(source, reference, "Xóchitl lives in Tlaxcala since 2017.") == []
    # glued, re-cased or mangled pieces are not the term
    assert missing(source, reference, "Xóchitls lives in tlaxcala.") == ["Xóchitl", "Tlaxcala"]
    assert missing("Ana y Ana", "Ana and Ana", "Ana and Maria") == ["Ana"]


def test_carry_report_counts_only_sentences_with_terms():
    report = carry_report(
        ["Tengo 19 gatos.", "Hola.", "Ngozi vive en Plovdiv."],
        ["I have 19 cats.", "Hello.", "Ngozi lives in Plovdiv."],
        ["I have 19 cats.", "Hi.", "Nose lives in Plovdiv."],
    )
    assert (report["terms"], report["carried"], report["sentences_with_terms"]) == (3, 2, 2)
    assert report["carry_rate"] == 2 / 3
    assert report["misses"] == [
        {
            "source": "Ngozi vive en Plovdiv.",
            "hypothesis": "Nose lives in Plovdiv.",
            "missing": ["Ngozi"],
        }
    ]
    assert carry_report(["Hola."], ["Hello."], ["Hi."])["carry_rate"] is None


def test_the_fixed_set_is_what_its_script_writes(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "names_numbers_set", ROOT / "scripts" / "names_numbers_set.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--output", str(tmp_path / "set.tsv")])
    assert (tmp_path / "set.tsv").read_bytes() == SET.read_bytes()
    lines = SET.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 200
    pairs = [line.split("\t") for line in lines]
    assert all(len(pair) == 2 and terms(pair[1], pair[0]) for pair in pairs)
    names = {
        word
        for english, spanish in pairs
        for word in terms(spanish, english)
        if not any(c.isdigit() for c in word)
    }
    assert names <= set(script.NAMES) | set(script.PLACES)
