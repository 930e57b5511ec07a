"""Exports: the SavedModel translates text like ``Translator``, stands alone, survives bad
input; the graph tokenizers match ``seq2seq.data.tokenizers``; TFLite greedy matches too; an
unwritable output folder exits 2 (``average``'s too)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_bench import one_error_line, run_module

from seq2seq.data.dialogue import build_source
from seq2seq.data.tokenizers import SentencePieceTokenizer, WordTokenizer, normalize
from seq2seq.export import main
from seq2seq.exporting.exporters import (
    INPUT_NAME,
    METADATA_FILE,
    OUTPUT_NAMES,
    TERMS_NAME,
    TERMS_SIGNATURE,
    TFLITE_FILE,
    ExportError,
    dialogue_ids,
    export_saved_model,
    export_tflite,
)
from seq2seq.exporting.graph_tokenizers import (
    GraphTextError,
    WordCodec,
    graph_codec,
    normalize_graph,
    valid_utf8,
)
from seq2seq.inference.glossary import parse_glossary
from seq2seq.inference.translator import Translator
from seq2seq.runs import RunError

pytest.importorskip("tensorflow_text")

TINY_SENTENCES = [
    "One two three .",
    "Nine nine .",
    "seven   EIGHT\u00a0nine .",
    "Zero , one ; two !",
    "four \u200bfive six seven .",
    "Eight 'nine' \"zero\" .",
    "unknown words here .",
    "one",
]

# Inputs the search cannot use, and what ``Translator`` says about each.
REJECTED = {"": "input is empty", " \u200b\t ": "input is empty", "x" * 10_000: "limit is 1000"}

BIN = Path(sys.executable).parent


def serve(export_dir: Path, sentences: list) -> dict[str, np.ndarray]:
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    outputs = signature(**{INPUT_NAME: tf.constant(sentences, tf.string)})
    return {name: value.numpy() for name, value in outputs.items()}


def texts_of(outputs) -> list[str]:
    return [t.decode("utf-8") for t in outputs["translations"]]


def assert_same_as_translator(outputs, translations) -> None:
    assert texts_of(outputs) == [t.text for t in translations]
    np.testing.assert_allclose(outputs["scores"], [t.score for t in translations], atol=1e-4)
    assert outputs["lengths"].tolist() == [len(t.tokens) for t in translations]


@pytest.fixture(scope="module")
def exact_translator(tiny_run):
    """The reference: ``Translator`` without XLA runs exactly the exported graph's ops."""
    return Translator.from_run(tiny_run, jit_compile=False)


@pytest.fixture(scope="module")
def greedy_export(tiny_run, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exports") / "greedy"
    export_saved_model(tiny_run, folder, method="greedy")
    return folder


@pytest.fixture(scope="module")
def beam_export(tiny_run, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exports") / "beam"
    export_saved_model(tiny_run, folder, method="beam", beam_size=3)
    return folder


# -- SavedModel vs Translator ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_export_translates_like_the_translator(request, exact_translator, method):
    folder = request.getfixturevalue(f"{method}_export")
    metadata = json.loads((folder / METADATA_FILE).read_text())
    assert metadata["method"] == method and metadata["max_input_chars"] == 1000
    assert metadata["beam_size"] == (3 if method == "beam" else 1)
    outputs = serve(folder, TINY_SENTENCES)
    assert set(outputs) == set(OUTPUT_NAMES)
    beam = {"beam_size": 3} if method == "beam" else {}
    expected = exact_translator.translate(
        TINY_SENTENCES, exact_translator.decode_config(method=method, **beam)
    )
    assert_same_as_translator(outputs, expected)


def serve_with_terms(export_dir: Path, sentences: list, terms: list) -> dict[str, np.ndarray]:
    signature = tf.saved_model.load(str(export_dir)).signatures[TERMS_SIGNATURE]
    outputs = signature(
        **{INPUT_NAME: tf.constant(sentences, tf.string), TERMS_NAME: tf.constant(terms, tf.string)}
    )
    return {name: value.numpy() for name, value in outputs.items()}


@pytest.mark.slow
def test_beam_export_takes_each_sentences_target_terms(beam_export, exact_translator):
    """``translate_with_terms`` is the glossary's search in the graph: rows with terms give
    ``Translator``'s glossary translations (texts and scores), rows without give
    ``serving_default``'s; bad terms and shapes are errors that say what is wrong."""
    folder = beam_export
    metadata = json.loads((folder / METADATA_FILE).read_text())
    assert metadata["signature"][TERMS_SIGNATURE] == {"inputs": [INPUT_NAME, TERMS_NAME]}
    glossary = parse_glossary("Two\tocho\nthree\tcuatro cinco\nSix\tnueve\n", "terms.tsv")
    sentences = ["One two three .", "Nine nine .", "Six .", "Four five .", ""]
    matched = [[term.target for term in glossary.matches(s)] for s in sentences]
    assert [len(row) for row in matched] == [2, 0, 1, 0, 0]
    terms = [row + [""] * (2 - len(row)) for row in matched]
    outputs = serve_with_terms(folder, sentences, terms)
    decode = exact_translator.decode_config(method="beam", beam_size=3)
    expected = exact_translator.translate(sentences[:4], decode, glossary=glossary)
    assert_same_as_translator({k: v[:4] for k, v in outputs.items()}, expected)
    texts = texts_of(outputs)
    assert "ocho" in texts[0].split() and "cuatro cinco" in texts[0] and "nueve" in texts[2]
    assert texts[4] == "" and outputs["lengths"][4] == 0  # empty input: rejected as ever
    plain = serve(folder, sentences)
    for row in (1, 3, 4):  # no terms: exactly serving_default's translation
        assert texts_of(plain)[row] == texts[row]
        assert plain["scores"][row] == pytest.approx(outputs["scores"][row], abs=1e-6)
    assert texts_of(plain)[0] != texts[0] and "ocho" not in texts_of(plain)[0]
    no_terms = serve_with_terms(folder, sentences, [[]] * len(sentences))
    assert texts_of(no_terms) == texts_of(plain)
    with pytest.raises(tf.errors.InvalidArgumentError, match="cannot spell these terms.*zorro"):
        serve_with_terms(folder, ["One ."], [["zorro"]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="one row per sentence"):
        serve_with_terms(folder, ["One .", "Two ."], [["ocho"]])


@pytest.mark.slow
def test_a_greedy_export_has_no_terms_signature(greedy_export):
    loaded = tf.saved_model.load(str(greedy_export))
    assert set(loaded.signatures) == {"serving_default", "serve"}
    metadata = json.loads((greedy_export / METADATA_FILE).read_text())
    assert TERMS_SIGNATURE not in metadata["signature"]


@pytest.mark.slow
def test_bad_input_is_answered_not_raised(greedy_export, exact_translator):
    """Empty, over-long and invalid UTF-8 inputs in one batch: no crash, bounded output.

    ``Translator`` raises ``InputError`` for the first two; the export cannot raise for one
    row of a batch, so those rows get "", score 0 and length 0. Invalid bytes become U+FFFD,
    as ``bytes.decode("utf-8", "replace")`` does.
    """
    for text, message in REJECTED.items():
        with pytest.raises(ValueError, match=message):
            exact_translator.translate_one(text)
    bad_bytes = b"one \xff\xfe two \xc3 ."
    batch = [*REJECTED, bad_bytes, "One two ."]
    outputs = serve(greedy_export, batch)
    assert texts_of(outputs)[:3] == ["", "", ""]
    assert outputs["lengths"][:3].tolist() == [0, 0, 0]
    assert outputs["scores"][:3].tolist() == [0.0, 0.0, 0.0]
    repaired = bad_bytes.decode("utf-8", "replace")
    assert_same_as_translator(
        {k: v[3:] for k, v in outputs.items()},
        exact_translator.translate([repaired, "One two ."]),
    )
    # 1,000 sentences in one call: one search, at most decode.max_length steps.
    many = serve(greedy_export, [TINY_SENTENCES[i % 8] for i in range(1000)])
    assert len(many["translations"]) == 1000
    assert int(many["lengths"].max()) <= exact_translator.config.decode.max_length
    assert texts_of(many)[:8] == texts_of(serve(greedy_export, TINY_SENTENCES))
    assert serve(greedy_export, [])["translations"].shape == (0,)


@pytest.mark.slow
def test_export_loads_where_seq2seq_cannot_be_imported(greedy_export, exact_translator, tmp_path):
    """A fresh ``python -I`` (no PYTHONPATH, no cwd) with every ``seq2seq`` import blocked."""
    script = tmp_path / "load.py"
    script.write_text(
        "import importlib.abc, json, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'seq2seq':\n"
        "            raise ImportError('seq2seq is blocked here')\n"
        "sys.meta_path.insert(0, Block())\n"
        "try:\n"
        "    import seq2seq\n"
        "    sys.exit('seq2seq was importable')\n"
        "except ImportError:\n"
        "    pass\n"
        "import tensorflow as tf\n"
        "import tensorflow_text  # registers the NFKC and SentencePiece kernels\n"
        "serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "out = serve(sentences=tf.constant(json.loads(sys.argv[2])))\n"
        "print(json.dumps([t.decode() for t in out['translations'].numpy()]))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('seq2seq'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-I", str(script), str(greedy_export), json.dumps(TINY_SENTENCES)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    texts, modules = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert texts == [t.text for t in exact_translator.translate(TINY_SENTENCES)]
    assert modules == []


@pytest.mark.slow
def test_saved_model_cli_lists_the_signature(greedy_export):
    cli = BIN / "saved_model_cli"
    if not cli.is_file():
        pytest.skip(f"saved_model_cli not installed beside {sys.executable}")
    result = subprocess.run(
        [str(cli), "show", "--dir", str(greedy_export), "--all"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    block = text[text.index("signature_def['serving_default']") :]
    for name, dtype in [
        (INPUT_NAME, "DT_STRING"),
        ("translations", "DT_STRING"),
        ("scores", "DT_FLOAT"),
        ("lengths", "DT_INT32"),
    ]:
        entry = block[block.index(f"['{name}'] tensor_info:") :]
        assert f"dtype: {dtype}" in entry.splitlines()[1], entry[:200]
        assert "shape: (-1)" in entry.splitlines()[2], entry[:200]
    assert "Method name is: tensorflow/serving/predict" in block
    ops = text[text.index("contains the following ops:") :].splitlines()[0]
    assert "SentencepieceOp" in ops or "LookupTableFindV2" in ops  # tokenising in the graph
    assert "While" in ops and "PyFunc" not in ops  # the search loop; no Python callbacks


@pytest.mark.slow
def test_dialogue_run_exports_with_joined_context(tiny_models, tmp_path):
    """A chat run's export takes ``build_source``'s joined string, as the Translator does."""
    run = tiny_models / "tiny-chat"
    folder = tmp_path / "chat"
    export_saved_model(run, folder)
    translator = Translator.from_run(run, jit_compile=False)
    config = translator.config.data
    sources = [
        build_source(["One two ."], "Three four .", config.context_turns, config.context_separator),
        build_source([], "Five .", config.context_turns, config.context_separator),
    ]
    history = [f"{word} two three four ." for word in ("One", "Five", "Six", "Seven")]
    long_message = " ".join(["nine eight"] * 8) + " ."
    sources += [  # shortened by the dialogue rule: oldest turns first, then the message's start
        build_source(history, "Three four .", len(history), config.context_separator),
        build_source(history, long_message, len(history), config.context_separator),
    ]
    assert "<sep>" in sources[0]
    outputs = serve(folder, sources)
    translations = translator.translate(sources)
    assert [t.truncated for t in translations] == [False, False, True, True]
    assert_same_as_translator(outputs, translations)


@pytest.mark.slow
def test_graph_dialogue_shortening_matches_the_translator(tiny_models):
    """``dialogue_ids`` gives the ids ``Translator.encode`` gives a dialogue input, for
    inputs that fit, lose some or all context turns, or cut a long message at its start."""
    translator = Translator.from_run(tiny_models / "tiny-chat", jit_compile=False)
    data = translator.config.data
    codec = graph_codec(translator.source_tokenizer, "source")
    turns = ["One two .", "Three four five six seven .", "Eight .", " ".join(["nine"] * 14)]
    texts = [
        build_source(turns[:k], message, k, data.context_separator)
        for k in range(len(turns) + 1)
        for message in ("Zero .", " ".join(["one two three"] * 5), "")
        if message or k
    ]
    texts = [translator.check_input(text) for text in texts]
    graph = dialogue_ids(
        codec, tf.constant(texts), data.context_separator, data.max_source_length
    ).to_list()
    assert graph == [translator.encode(text).ids for text in texts]
    assert any(translator.encode(text).truncated for text in texts)


def test_documented_requests_match_the_signatures():
    """docs/export.md's REST requests name the inputs and the outputs the export has: a
    1-D ``sentences`` for ``serving_default``, and a [B, C] ``terms`` beside it for
    ``translate_with_terms``."""
    page = Path(__file__).resolve().parents[1] / "docs" / "export.md"
    text = page.read_text(encoding="utf-8")
    section = text[text.index("## Serving with TensorFlow Serving") :]
    payloads = []
    for part in section.split("curl")[1:]:
        body = part[part.index("-d '") + 4 : part.index("'", part.index("-d '") + 4)]
        payloads.append(json.loads(body))
    assert [p["signature_name"] for p in payloads] == ["serving_default", TERMS_SIGNATURE]
    plain, with_terms = (p["inputs"] for p in payloads)
    assert set(plain) == {INPUT_NAME} and all(isinstance(s, str) for s in plain[INPUT_NAME])
    assert set(with_terms) == {INPUT_NAME, TERMS_NAME}
    rows = with_terms[TERMS_NAME]
    assert len(rows) == len(with_terms[INPUT_NAME]) and len({len(r) for r in rows}) == 1
    for name in OUTPUT_NAMES:
        assert f'"{name}"' in section


# -- CLI and errors -------------------------------------------------------------------


def test_cli_refuses_incomplete_runs_and_existing_outputs(tiny_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken, ignore=shutil.ignore_patterns("*.keras", "backup"))
    assert main(["--model", str(broken), "--output", str(tmp_path / "out")]) == 2
    assert "has no trained model yet" in capsys.readouterr().err
    assert main(["--model", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    assert main(["--model", str(tiny_run), "--output", str(tmp_path / "taken")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_incompatible_runs(tiny_run, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(tiny_run, old, ignore=shutil.ignore_patterns("backup"))
    (old / "FORMAT").write_text("0\n")
    assert main(["--model", str(old), "--output", str(tmp_path / "out")]) == 2
    assert "run format '0'" in capsys.readouterr().err
    sampling = tmp_path / "sampling"
    shutil.copytree(tiny_run, sampling, ignore=shutil.ignore_patterns("backup"))
    raw = yaml.safe_load((sampling / "config.yaml").read_text())
    raw["decode"]["method"] = "sample"
    (sampling / "config.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ExportError, match="decode.method is 'sample'"):
        export_saved_model(sampling, tmp_path / "out")
    beam0 = ["--method", "beam", "--beam-size", "0"]
    assert main(["--model", str(tiny_run), "--output", str(tmp_path / "o"), *beam0]) == 2
    assert "decode.beam_size is 0" in capsys.readouterr().err
    assert main(["--model", str(tiny_run), "--output", str(tmp_path / "o"), "--beam-size", "4"])
    assert "--beam-size is for beam search; the export searches greedy" in capsys.readouterr().err
    assert main(
        ["--model", str(tiny_run), "--output", "x", "--format", "tflite", "--method", "beam"]
    )
    assert "greedy search only" in capsys.readouterr().err


def test_cli_exports(tiny_run, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["--model", str(tiny_run), "--output", str(out), "--method", "beam"]) == 0
    printed = capsys.readouterr().out
    assert "beam search" in printed and f"{TERMS_SIGNATURE} (sentences, terms)" in printed
    assert (out / "saved_model.pb").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["cli"], "no staging folder left behind"


# -- graph text vs seq2seq.data.tokenizers -------------------------------------------------------

TRICKY = [
    "  Hello,\u00a0WORLD!\u2003 ",
    "¿Qué tal?  ¡Bien!",
    "ﬁne ＡＢＣ ①",
    "zero\u200bwidth\ufeff joiner\u200d",
    "tabs\tand\nnew\u2028lines\x1c\x85",
    "İstanbul ΟΔΟΣ ΣΑΣ",
    "don't l'homme « citation » 'quoted' \"double\" `tick`",
    "3.5% $20 €10 (paren) [bracket] {brace}",
    "日本語のテキスト 한국어",
    "",
    "   ",
]


@pytest.mark.parametrize("lowercase", [False, True])
def test_graph_normalize_matches_python(lowercase):
    got = normalize_graph(tf.constant(TRICKY), lowercase).numpy()
    assert [g.decode() for g in got] == [normalize(t, lowercase) for t in TRICKY]


def test_invalid_utf8_is_replaced_like_python():
    raw = [b"ok", b"\xff", b"a\xc3", b"\xe2\x82", b"\xed\xa0\x80x", b"\xf4\x90\x80\x80"]
    got = valid_utf8(tf.constant(raw)).numpy()
    assert [g.decode() for g in got] == [r.decode("utf-8", "replace") for r in raw]


@pytest.mark.slow
def test_graph_unicode_tables_differ_from_python_only_where_documented():
    """Every code point: NFKC and lower-casing agree except on the documented few.

    Python 3.11's ``unicodedata`` is Unicode 14.0; the graph uses ICU (TensorFlow Text's
    NFKC) and TensorFlow's lower-casing tables. They disagree on 98 code points for NFKC
    (all unassigned in Unicode 14, e.g. the Unicode 16 letters from U+1CCD6) and on 41
    for lower-casing (U+0000, which the graph drops, and 40 letters new in Unicode 14,
    e.g. U+2C2F, that TensorFlow leaves unchanged).
    """
    import tensorflow_text as tf_text

    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    encoded = tf.constant([c.encode() for c in chars])
    nfkc = tf_text.normalize_utf8(encoded, "NFKC").numpy()
    nfkc_diff = [
        c
        for c, n in zip(chars, nfkc, strict=True)
        if unicodedata.normalize("NFKC", c) != n.decode()
    ]
    assert len(nfkc_diff) == 98
    assert all(unicodedata.category(c) == "Cn" for c in nfkc_diff)
    lower = tf.strings.lower(encoded, encoding="utf-8").numpy()
    lower_diff = [c for c, low in zip(chars, lower, strict=True) if c.lower() != low.decode()]
    assert len(lower_diff) == 41 and "\x00" in lower_diff and "\u2c2f" in lower_diff
    assert all(c == "\x00" or unicodedata.category(c) in ("Lu", "Ll") for c in lower_diff)


def word_tokenizer(language="en", lowercase=False, user_symbols=()) -> WordTokenizer:
    corpus = [*TRICKY, "the Jones' house", "«Bonjour» dit-il", "qu'il l'a vu"]
    return WordTokenizer.fit(
        corpus, 200, lowercase=lowercase, user_symbols=user_symbols, language=language
    )


@pytest.mark.parametrize("lowercase", [False, True])
def test_word_codec_encodes_like_the_tokenizer(lowercase):
    tokenizer = word_tokenizer("en", lowercase, ("<sep>",))
    codec = graph_codec(tokenizer, "source")
    texts = [*TRICKY, "hi <sep> there <sep>", "never seen words"]
    normalized = normalize_graph(tf.constant(texts))
    assert codec.encode(normalized).to_list() == tokenizer.encode_batch(texts)


def test_sentencepiece_codec_round_trips_like_the_tokenizer():
    corpus = [f"{t} sentence number {i} <sep> reply" for i, t in enumerate(TRICKY * 20)]
    for lowercase in (False, True):
        tokenizer = SentencePieceTokenizer.fit(corpus, 120, lowercase, user_symbols=("<sep>",))
        codec = graph_codec(tokenizer, "target")
        texts = [*TRICKY, "a <sep> b"]
        ids = codec.encode(normalize_graph(tf.constant(texts)))
        assert ids.to_list() == tokenizer.encode_batch(texts)
        dense, lengths = ids.to_tensor(), ids.row_lengths()
        decoded = codec.decode(dense, tf.cast(lengths, tf.int32)).numpy()
        assert [d.decode() for d in decoded] == [tokenizer.decode(i) for i in ids.to_list()]


PIECES = ["'", '"', "`", "„", "“", "”", "'s", "'t", "l'", "qu'", ".", ",", "!", "?", ":", ";",
          "%", ")", "(", "]", "[", "¿", "¡", "$", "€", "«", "»", "-", "…", "日本", "語", "한국",
          "Jones", "house", "is", "s", "a", "Tom", "3", "<unk>"]  # fmt: skip


@functools.cache
def moses_pair(language: str) -> tuple[WordTokenizer, WordCodec]:
    tokenizer = WordTokenizer(["<pad>", "<unk>", "<s>", "</s>", *PIECES[:-1]], language=language)
    return tokenizer, graph_codec(tokenizer, "target")


@pytest.mark.parametrize("language", ["en", "es", "fr", "it", "ko"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_word_codec_detokenizes_like_moses(language, data):
    """The graph state machine gives sacremoses' output on random token sequences."""
    tokenizer, codec = moses_pair(language)
    ids = [data.draw(st.lists(st.integers(1, len(PIECES) + 2), max_size=12)) for _ in range(4)]
    ids = [[i if i != 2 and i != 3 else 1 for i in row] for row in ids]  # no START/END
    lengths = [len(row) for row in ids]
    dense = np.zeros((4, max(lengths + [1])), np.int32)
    for r, row in enumerate(ids):
        dense[r, : len(row)] = row
    got = codec.decode(tf.constant(dense), tf.constant(lengths, tf.int32)).numpy()
    assert [g.decode() for g in got] == [tokenizer.decode(row) for row in ids]


def test_languages_with_unported_moses_rules_are_refused():
    with pytest.raises(GraphTextError, match="'cs' has Moses detokenisation rules"):
        WordCodec(word_tokenizer("cs"), "target")


# -- real data ------------------------------------------------------------------------

# Three epochs are enough for varied outputs (the comparison needs no good model); no dev
# BLEU, to keep the suite short.
REAL = [
    "data.max_pairs=3000",
    "model.embedding_dim=48",
    "model.hidden_size=48",
    "train.select_best_by=loss",
    "train.dev_bleu_sentences=0",
    "train.epochs=3",
]
REAL_KINDS = {
    # the copy model's extra memory (source pieces' target ids) and mixed output through
    # the SavedModel and TFLite; the plain GRU is the tiny run's
    "sentencepiece-gru-copy": [
        "data.source_vocab_size=600",
        "data.target_vocab_size=600",
        "data.split_digits=true",
        "data.byte_fallback=true",
        "model.copy_attention=true",
    ],
    "word-lstm-luong": [
        "data.tokenizer=word",
        "data.source_vocab_size=1500",
        "data.target_vocab_size=1500",
        "model.cell=lstm",
        "model.attention=luong",
    ],
}


@pytest.fixture(scope="module", params=list(REAL_KINDS))
def real_run(request, shared_data_dir, tmp_path_factory):
    """A small es->en model trained for ~130 steps on real Tatoeba pairs, and 100 test
    sentences of its own leak-free split, from its shortest to its longest."""
    from seq2seq.config import load_config
    from seq2seq.data.corpora.loading import load_splits
    from seq2seq.training.data import evenly_spaced
    from seq2seq.training.loop import train

    config = load_config("quickstart", overrides=[*REAL, *REAL_KINDS[request.param]])
    run = tmp_path_factory.mktemp(request.param) / "run"
    train(config, run, verbose=0)
    # Spread over the split: its first pairs are its shortest sentences.
    sentences = [p.source for p in evenly_spaced(load_splits(config.data)["test"], 100)]
    return run, sentences


def real_glossary(sentences: list[str]):
    """A glossary whose source terms are the longest word of each of ``sentences`` and
    whose targets are everyday English words, in turn (words both vocabularies of
    ``real_run`` spell: the word one knows them, SentencePiece cuts them into pieces)."""
    targets = ["house", "water", "friend", "today", "money", "book", "music"]
    sources = {}
    for sentence in sentences:
        words = [w for w in sentence.replace(".", " ").split() if w.isalpha() and len(w) > 3]
        if words:
            sources.setdefault(max(words, key=len).lower(), targets[len(sources) % len(targets)])
    lines = "".join(f"{source}\t{target}\n" for source, target in sources.items())
    return parse_glossary(lines, "real-terms.tsv")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_export_matches_translator_on_100_real_sentences(real_run, tmp_path, method):
    """Same text, same score (within float rounding) on every sentence.

    The reference is ``Translator`` without XLA (the export's ops exactly); the XLA
    translator gives the same texts too, its scores differ by ~1e-6 (checked for greedy
    only: compiling beam search for every batch shape would double the test's time).
    """
    run, sentences = real_run
    folder = tmp_path / "export"
    export_saved_model(run, folder, method=method)
    outputs = serve(folder, sentences)
    plain = Translator.from_run(run, jit_compile=False)
    exact = plain.translate(sentences, plain.decode_config(method=method))
    assert_same_as_translator(outputs, exact)
    if method == "beam":  # and with a glossary's terms, through translate_with_terms
        glossary = real_glossary(sentences[:40])
        matched = [[term.target for term in glossary.matches(s)] for s in sentences]
        width = max(len(row) for row in matched)
        assert sum(map(bool, matched)) >= 20 and width >= 1
        terms = [row + [""] * (width - len(row)) for row in matched]
        forced = plain.translate(sentences, plain.decode_config(method=method), glossary=glossary)
        assert_same_as_translator(serve_with_terms(folder, sentences, terms), forced)
    if method == "greedy":
        xla = Translator.from_run(run, jit_compile=True)
        compiled = xla.translate(sentences, xla.decode_config(method=method))
        assert texts_of(outputs) == [t.text for t in compiled]


@pytest.mark.slow
def test_bench_times_the_export_beside_the_translator(tiny_run, tmp_path):
    """Structure only: speed is measured by ``python -m seq2seq.bench``, not asserted."""
    from argparse import Namespace

    from seq2seq.bench import bench_export
    from seq2seq.exporting.timing import export_lines

    glossary = tmp_path / "terms.tsv"
    glossary.write_text("two\tocho\n", encoding="utf-8")
    args = Namespace(no_jit=True, decode_sentences=70, repeats=3, glossary=glossary)
    result = bench_export(str(tiny_run), args)
    assert 0 < result["sentences"] <= 70 and result["glossary"] == str(glossary)
    assert 0 < result["sentences_with_terms"] < result["sentences"]  # a mixed job
    names = ("greedy_export", "greedy_translator", "beam_export", "beam_translator")
    for key in (*names, "beam_export_terms"):
        assert result[key]["batch1"]["p50_ms"] > 0 and result[key]["batch64_sentences_per_s"] > 0
    assert "greedy_export_terms" not in result
    lines = export_lines(result)
    assert len(lines) == 7 and "beam   export_terms" in lines[5]


# -- TFLite ---------------------------------------------------------------------------


def tflite_translate(folder: Path, tokenizers, sentences, max_source_length) -> list:
    interpreter = tf.lite.Interpreter(model_path=str(folder / TFLITE_FILE))
    runner = interpreter.get_signature_runner()
    source_tokenizer, target_tokenizer = tokenizers
    results = []
    for sentence in sentences:
        ids = source_tokenizer.encode(normalize(sentence))[:max_source_length] or [1]
        row = np.zeros((1, max_source_length), np.int32)
        row[0, : len(ids)] = ids
        out = runner(source=row)
        length = int(out["lengths"][0])
        results.append((target_tokenizer.decode(out["ids"][0, :length]), float(out["scores"][0])))
    return results


@pytest.mark.slow
def test_tflite_greedy_matches_translator(tiny_run, exact_translator, tmp_path):
    folder = tmp_path / "lite"
    export_tflite(tiny_run, folder)
    assert (folder / "source_vocab" / "tokenizer.json").is_file()
    tokenizers = (exact_translator.source_tokenizer, exact_translator.target_tokenizer)
    limit = exact_translator.config.data.max_source_length
    got = tflite_translate(folder, tokenizers, TINY_SENTENCES, limit)
    expected = exact_translator.translate(TINY_SENTENCES)
    assert [g[0] for g in got] == [t.text for t in expected]
    np.testing.assert_allclose([g[1] for g in got], [t.score for t in expected], atol=1e-4)


@pytest.mark.slow
def test_tflite_matches_translator_on_real_sentences(real_run, tmp_path):
    run, sentences = real_run
    folder = tmp_path / "lite"
    export_tflite(run, folder)
    translator = Translator.from_run(run, jit_compile=False)
    tokenizers = (translator.source_tokenizer, translator.target_tokenizer)
    limit = translator.config.data.max_source_length
    got = tflite_translate(folder, tokenizers, sentences, limit)
    expected = translator.translate(sentences)
    assert [g[0] for g in got] == [t.text for t in expected]
    np.testing.assert_allclose([g[1] for g in got], [t.score for t in expected], atol=1e-4)


def test_unloadable_run_is_a_run_error(tmp_path):
    with pytest.raises(RunError, match="run folder not found"):
        export_tflite(tmp_path / "missing", tmp_path / "out")


@pytest.mark.slow
def test_export_and_average_into_an_unwritable_place_exit_2(tiny_run, tmp_path):
    (tmp_path / "file").write_text("x")
    for module, extra in (("seq2seq.export", []), ("seq2seq.average", ["--last", "2"])):
        done = run_module(
            module, "--model", str(tiny_run), "--output", str(tmp_path / "file" / "out"), *extra
        )
        assert "is not a folder" in one_error_line(done), module
