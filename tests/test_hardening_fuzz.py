"""Issue 14: generated inputs (1,000 in all) through the translate CLI's --input path, the
``Translator`` and the app's translate handler: no crash, one output per input line.

The searches run without XLA here (``decode.jit_compile: false``): with XLA each new input
shape would compile for seconds. Everything runs in-process on ``tiny_run``.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from seq2seq.cli import line_io  # noqa: E402
from seq2seq.inference.translator import InputError, Translator  # noqa: E402
from seq2seq.translate import translate_lines  # noqa: E402

FUZZ = settings(
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure always reproduces
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
WORDS = ["one", "two", "three", "four", ".", "¿", "zero", "nine"]
# Real words, separators that are not "\n", invalid UTF-8, NULs, BOMs, long runs.
PIECES = st.one_of(
    st.sampled_from([w.encode() for w in WORDS]),
    st.sampled_from([b" ", b"\r", b"\r\n", b"\xe2\x80\xa8", b"\x0c", b"\x85", b"\t", b"\x00"]),
    st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\xfe\xff"]),
    st.binary(max_size=6),
    st.text(max_size=6).map(lambda t: t.encode("utf-8")),
    st.just(b"one " * 20),
)
LINE = st.lists(PIECES, max_size=8).map(b"".join)
FILE = st.lists(LINE, max_size=6).map(b"\n".join)
ANY_TEXT = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=30),  # surrogates too
    st.lists(st.sampled_from(WORDS), max_size=30).map(" ".join),
)


@pytest.fixture(scope="module")
def plain_run(tiny_run, tmp_path_factory) -> Path:
    """A copy of ``tiny_run`` that decodes without XLA, as the only run of a models folder."""
    models = tmp_path_factory.mktemp("fuzz-models")
    run = models / "tiny"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("logs", "backup", "eval-*"))
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config["decode"]["jit_compile"] = False
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def translator(plain_run) -> Translator:
    return Translator.from_run(plain_run, max_input_chars=100)


@pytest.fixture(scope="module")
def registry(plain_run):
    from apps.registry import Registry

    return Registry(plain_run.parent, max_input_chars=50)


def expected_lines(data: bytes) -> int:
    return data.count(b"\n") + (bool(data) and not data.endswith(b"\n"))


@settings(FUZZ, max_examples=400)
@given(data=FILE)
def test_cli_input_path_keeps_one_output_line_per_input_line(translator, data):
    out = io.StringIO()
    stream = io.BufferedReader(io.BytesIO(data))
    try:
        good, bad = translate_lines(
            translator, line_io.read_lines(stream, "f.txt"), "f.txt", out, {}, False
        )
    except line_io.TextInputError as error:  # refused as a whole (UTF-16): said clearly
        assert "UTF-16" in str(error)
        return
    assert good + bad == expected_lines(data)
    assert out.getvalue().count("\n") == expected_lines(data)


@settings(FUZZ, max_examples=400)
@given(sentences=st.lists(ANY_TEXT, min_size=1, max_size=5))
def test_translator_translates_every_valid_input_in_order(translator, sentences):
    valid = []
    for sentence in sentences:
        try:
            translator.check_input(sentence)
            valid.append(sentence)
        except InputError:
            pass
    if len(valid) < len(sentences):
        with pytest.raises(InputError):
            translator.translate(sentences)
    if valid:
        results = translator.translate(valid)
        assert [r.source for r in results] == valid
        assert all("\n" not in r.text for r in results)


@settings(FUZZ, max_examples=200)
@given(text=ANY_TEXT, method=st.sampled_from(["greedy", "beam", "sample"]))
def test_app_translate_handler_answers_or_refuses(registry, text, method):
    from apps import web

    try:
        result, rows, _, notes = web.translate(
            registry, text, "tiny", method, 3, 2, 1.0, 0, 1.0, 12
        )
    except gr.Error as error:
        assert error.print_exception is False  # a refusal, logged in one line
        return
    assert isinstance(result, str) and rows and rows[0][1] == result
