"""Hypothesis settings and input strategies shared by the fuzz tests (1,000 generated inputs
in all) of the translate CLI's --input path, the ``Translator`` and the app's handler."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

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
