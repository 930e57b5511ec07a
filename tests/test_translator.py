"""Translator: loading a run folder, input checks, batching, decode overrides."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from fuzzing import ANY_TEXT, FUZZ
from hypothesis import given, settings
from hypothesis import strategies as st

from seq2seq.config import ConfigError
from seq2seq.data.tokenizers import UNK
from seq2seq.inference.translator import InputError, Translation, Translator
from seq2seq.runs import RunError


@pytest.fixture(scope="module")
def translator(tiny_translator) -> Translator:
    return tiny_translator


def test_translation_fields(translator):
    (result,) = translator.translate(["One two three ."])
    assert isinstance(result, Translation)
    assert result.source == "One two three ."
    assert result.text and isinstance(result.text, str)
    assert result.source_tokens == ["one", "two", "three", "."]
    assert result.attention.shape == (len(result.tokens), len(result.source_tokens))
    assert result.attention.dtype == np.float32
    np.testing.assert_allclose(result.attention.sum(-1), 1.0, atol=1e-5)
    assert result.n_best == [(result.text, result.score)]
    assert result.score <= 0 and not result.truncated


def test_order_is_kept_across_batches(translator):
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    sentences = [" ".join(words[i % 9 : i % 9 + 1 + i % 4]) + " ." for i in range(70)]
    results = translator.translate(sentences)
    assert [r.source for r in results] == sentences
    for i in (0, 5, 69):
        assert translator.translate_one(sentences[i]).text == results[i].text


@pytest.mark.parametrize("text", ["", "   ", "\u200b\n"])
def test_empty_input_is_an_error(translator, text):
    with pytest.raises(InputError, match="empty"):
        translator.translate_one(text)


def test_long_input_names_the_limit(translator):
    with pytest.raises(InputError, match="limit is 1000 characters"):
        translator.translate_one("one " * 2500)
    with pytest.raises(InputError, match="input 2 .*limit"):
        translator.translate(["one .", "x" * 10_000])


def test_emoji_and_unknown_characters(translator):
    result = translator.translate_one("one 😀 two ✈️ Ωμέγα .")
    assert result.text
    assert "😀" in result.source_tokens
    assert result.attention.shape == (len(result.tokens), len(result.source_tokens))
    assert translator.translate_one("😀").source_tokens == ["😀"]


def test_long_input_is_truncated(translator):
    result = translator.translate_one(" ".join(["five"] * 30) + " .")
    assert result.truncated
    assert len(result.source_tokens) == translator.config.data.max_source_length
    assert result.attention.shape[1] == translator.config.data.max_source_length


def test_beam_and_sampling_overrides(translator):
    result = translator.translate_one(
        "two three .", translator.decode_config(method="beam", beam_size=4, n_best=3)
    )
    assert len(result.n_best) == 3
    scores = [score for _, score in result.n_best]
    assert scores == sorted(scores, reverse=True)
    assert result.n_best[0] == (result.text, result.score)
    first = translator.translate_one(
        "two three .", translator.decode_config(method="sample", n_best=2, seed=4)
    )
    again = translator.translate_one(
        "two three .", translator.decode_config(method="sample", n_best=2, seed=4)
    )
    assert first.n_best == again.n_best and len(first.n_best) == 2
    assert (
        translator.translate_one("two .", translator.decode_config(max_length=1)).attention.shape[0]
        <= 1
    )


def test_seeded_sampling_batches_draw_independently(translator):
    """With a seed, the second batch of 64 must not replay the first batch's noise: the
    same sentence at the same row of two batches would then get the same sample."""
    sentences = ["one two three four ."] * 128
    settings = dict(method="sample", temperature=3.0, seed=11)
    texts = [t.text for t in translator.translate(sentences, translator.decode_config(**settings))]
    assert texts[:64] != texts[64:]
    assert texts == [
        t.text for t in translator.translate(sentences, translator.decode_config(**settings))
    ]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(beam_size=0), "decode.beam_size"),
        (dict(method="nope"), "decode.method"),
        (dict(top_p=0.0), "decode.top_p"),
        (dict(n_best=9, beam_size=3, method="beam"), "n_best"),
        (dict(n_best=2), "greedy"),
        (dict(beam_width=3), "unknown field decode.beam_width"),
        (dict(max_length="long"), "decode.max_length must be int"),
    ],
)
def test_bad_overrides_are_rejected(translator, overrides, message):
    with pytest.raises(ConfigError, match=message):
        translator.translate_one("one .", translator.decode_config(**overrides))


def test_replace_unk_uses_the_most_attended_source_piece(translator):
    weights = np.array([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.5, 0.5, 0.0]], np.float32)
    ids = [5, UNK, 6]
    tokens = [translator.target_tokenizer.id_to_piece(i) for i in ids]
    text = translator.target_tokenizer.decode(ids)
    assert "<unk>" in text
    new_text, new_tokens = translator._replace_unk(
        ids, tokens, text, weights, ["Pedro", "vio", "Zaragoza"]
    )
    assert new_tokens[1] == "Zaragoza" and "Zaragoza" in new_text and "<unk>" not in new_text
    assert translator.translate_one("one two .", translator.decode_config(replace_unk=True)).text


def test_missing_run_folder(tmp_path):
    with pytest.raises(RunError, match="run folder not found"):
        Translator.from_run(tmp_path / "nowhere")


def copy_run(tiny_run, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(tiny_run, target, ignore=shutil.ignore_patterns("logs", "backup"))
    return target


def test_incompatible_run_format(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    (run / "FORMAT").write_text("999\n", encoding="utf-8")
    with pytest.raises(RunError, match="run format '999'"):
        Translator.from_run(run)


def test_incomplete_run_folders(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    for name in ("model.keras", "last.keras"):
        (run / name).unlink()
    with pytest.raises(RunError, match="no trained model"):
        Translator.from_run(run)
    shutil.rmtree(run / "target_vocab")
    with pytest.raises(RunError, match="target_vocab"):
        Translator.from_run(run)


def test_corrupt_model_file(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    (run / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(RunError, match="model.keras is corrupt"):
        Translator.from_run(run)


# -- fuzz: generated text ----------------------------------------------------------------


@settings(FUZZ, max_examples=400)
@given(sentences=st.lists(ANY_TEXT, min_size=1, max_size=5))
def test_fuzz_translates_every_valid_input_in_order(plain_translator, sentences):
    """Generated text (surrogates, control characters, long runs): a batch with an invalid
    input is refused as a whole; valid ones come back in order, one line each."""
    valid = []
    for sentence in sentences:
        try:
            plain_translator.check_input(sentence)
            valid.append(sentence)
        except InputError:
            pass
    if len(valid) < len(sentences):
        with pytest.raises(InputError):
            plain_translator.translate(sentences)
    if valid:
        results = plain_translator.translate(valid)
        assert [r.source for r in results] == valid
        assert all("\n" not in r.text for r in results)


# -- glossaries: constrained beam search through the translator -----------------------

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_glossary_terms_reach_every_constrained_translation(translator):
    """Each source digit word the glossary names gets its (deliberately wrong) target
    word, in every sentence that holds it; sentences without one are untouched."""
    from seq2seq.inference.glossary import has_term, parse_glossary

    glossary = parse_glossary("two\tocho\nfive\tuno\nseven\tcero cero\n", "g.tsv")
    rng = np.random.default_rng(5)
    sentences = [
        " ".join(DIGITS[d] for d in rng.integers(0, 10, rng.integers(1, 5))) + " ."
        for _ in range(40)
    ]
    decode = translator.decode_config(method="beam", beam_size=4)
    plain = translator.translate(sentences, decode)
    forced = translator.translate(sentences, decode, glossary=glossary)
    constrained = 0
    for sentence, before, after in zip(sentences, plain, forced, strict=True):
        terms = glossary.matches(sentence)
        constrained += bool(terms)
        for term in terms:
            assert has_term(after.text, term.target), (sentence, after.text, term.target)
        if not terms:
            assert after.text == before.text and after.score == before.score
    assert 10 < constrained < 40


def test_a_glossary_needs_beam_search_and_spellable_terms(translator):
    from seq2seq.inference.glossary import GlossaryError, parse_glossary

    glossary = parse_glossary("two\tocho\n", "g.tsv")
    with pytest.raises(GlossaryError, match=r"^g.tsv: a glossary constrains beam search only"):
        translator.translate(
            ["one two ."], translator.decode_config(method="greedy"), glossary=glossary
        )
    unknown = parse_glossary("two\tocho\nthree\tdrei\n", "g.tsv")
    with pytest.raises(GlossaryError, match=r"^g.tsv:2: the target term 'drei' cannot be spelled"):
        translator.translate(["one ."], translator.decode_config(method="beam"), glossary=unknown)
    # an empty glossary constrains nothing, whatever the search
    (plain,) = translator.translate(["one two ."])
    (same,) = translator.translate(["one two ."], glossary=parse_glossary(""))
    assert same.text == plain.text
