"""Pure-Python corpus readers (no TensorFlow), shared by the TFDS builders and tests.

Every physical line is accounted for: good lines are yielded, bad ones are recorded in
a ``LineReport`` with file, line number and reason. Decoding happens line by line so one
undecodable line cannot take the whole file down with it.
"""

from __future__ import annotations

import ast
import gzip
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from seq2seq.data.corpora.spec import CorpusError, CorpusNotFoundError

log = logging.getLogger(__name__)

DEFAULT_MAX_BAD_FRACTION = 0.001
CORNELL_SEPARATOR = " +++$+++ "
EOU = "__eou__"
# U+FFFD stored as UTF-8 (EF BF BD) but read as Latin-1, as in the Cornell copy. We map it
# back to U+FFFD: the text stays faithful to the bytes and downstream code sees a single
# well-known "unknown character" instead of three accented letters.
MOJIBAKE_REPLACEMENT = "\u00ef\u00bf\u00bd"
SHOWN_BAD_LINES = 5
LOGGED_BAD_LINES = 20


@dataclass(frozen=True)
class BadLine:
    """One rejected line: where it is and why."""

    path: str
    line_number: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_number}: {self.reason}"


@dataclass
class LineReport:
    """Counts lines read and collects bad ones, so nothing is dropped silently."""

    total: int = 0
    bad: list[BadLine] = field(default_factory=list)

    def add_bad(self, path: str | Path, line_number: int, reason: str) -> None:
        self.bad.append(BadLine(str(path), line_number, reason))

    @property
    def bad_fraction(self) -> float:
        return len(self.bad) / self.total if self.total else 0.0

    def summary(self) -> str:
        return f"{self.total} lines read, {len(self.bad)} bad ({self.bad_fraction:.4%} of lines)"

    def check(self, max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION) -> None:
        """Raise if too many lines are bad; otherwise log every kind of bad line."""
        if not self.bad:
            return
        if self.bad_fraction > max_bad_fraction:
            shown = "\n".join(f"  {bad}" for bad in self.bad[:SHOWN_BAD_LINES])
            more = len(self.bad) - SHOWN_BAD_LINES
            tail = f"\n  ... and {more} more" if more > 0 else ""
            raise CorpusError(
                f"{len(self.bad)} of {self.total} lines are bad ({self.bad_fraction:.4%}), "
                f"more than the allowed data.max_bad_fraction={max_bad_fraction}:\n"
                f"{shown}{tail}"
            )
        self.log_bad_lines()

    def log_bad_lines(self) -> None:
        log.warning("skipping bad lines: %s", self.summary())
        for bad in self.bad[:LOGGED_BAD_LINES]:
            log.warning("bad line %s", bad)
        if len(self.bad) > LOGGED_BAD_LINES:
            log.warning("... and %d more bad lines", len(self.bad) - LOGGED_BAD_LINES)


def open_binary(path: str | Path) -> BinaryIO:
    """Open a plain or gzip file for binary reading; a missing file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise CorpusNotFoundError(path.name, [path])
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")  # type: ignore[return-value]


def read_lines(
    path: str | Path, report: LineReport, encoding: str = "utf-8"
) -> Iterator[tuple[int, str]]:
    """Yield (line_number, text without line ending); undecodable lines are reported."""
    with open_binary(path) as stream:
        for number, raw in enumerate(stream, start=1):
            report.total += 1
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as error:
                report.add_bad(
                    path,
                    number,
                    f"not valid {encoding.upper()}: {error.reason} at byte {error.start}",
                )
                continue
            yield number, text.rstrip("\r\n")


def split_columns(
    path: str | Path, number: int, text: str, report: LineReport, max_columns: int
) -> list[str] | None:
    """Split a tab-separated line into 2..max_columns non-empty leading columns."""
    columns = text.split("\t")
    if len(columns) < 2:
        report.add_bad(path, number, "missing tab between the two sides")
        return None
    if len(columns) > max_columns:
        report.add_bad(path, number, f"too many columns ({len(columns)}, at most {max_columns})")
        return None
    for side, column in zip(("first", "second"), columns[:2], strict=True):
        if not column.strip():
            report.add_bad(path, number, f"empty {side} column")
            return None
    return columns


def read_anki(path: str | Path, report: LineReport) -> Iterator[tuple[int, str, str]]:
    """Anki/Tatoeba export: English, other language, optional attribution (ignored)."""
    for number, text in read_lines(path, report):
        columns = split_columns(path, number, text, report, max_columns=3)
        if columns:
            yield number, columns[0], columns[1]


def read_tsv(path: str | Path, report: LineReport) -> Iterator[tuple[int, str, str]]:
    """Generic two-column ``source<TAB>target`` file."""
    for number, text in read_lines(path, report):
        columns = split_columns(path, number, text, report, max_columns=2)
        if columns:
            yield number, columns[0], columns[1]


def split_utterances(text: str) -> tuple[list[str], str | None]:
    """Split a DailyDialog line into utterances; return (turns, reason if bad)."""
    pieces = [piece.strip() for piece in text.split(EOU)]
    if pieces and not pieces[-1]:
        pieces.pop()
    if any(not piece for piece in pieces):
        return pieces, "empty utterance"
    if len(pieces) < 2:
        return pieces, f"fewer than 2 utterances ({len(pieces)})"
    return pieces, None


# DailyDialog's text keeps traces of its tokenisation, which a model trained on it learns
# and writes back: "It' s" (403 times in train), "I'Ve" (737), "name ," (297), "8 : 30".
CONTRACTION_SPACE = re.compile(r"(\w)['’] (s|t|re|ve|ll|d|m)\b")
CONTRACTION_CAPITAL = re.compile(r"(\w)'(Ve|Ll|Re|S|T|D|M)\b")
SPACE_BEFORE_PUNCTUATION = re.compile(r"(\w) ([,.!?;:])(?=\s|$)")
SPACED_TIME = re.compile(r"(\d) : (\d\d)\b")


def repair_dailydialog(text: str) -> str:
    """Undo DailyDialog's tokenisation traces: "It' s" -> "It's", "I'Ve" -> "I've",
    "Bill , here" -> "Bill, here", "8 : 30" -> "8:30"."""
    text = CONTRACTION_SPACE.sub(r"\1'\2", text)
    text = CONTRACTION_CAPITAL.sub(lambda m: f"{m[1]}'{m[2].lower()}", text)
    text = SPACED_TIME.sub(r"\1:\2", text)
    return SPACE_BEFORE_PUNCTUATION.sub(r"\1\2", text)


def read_dailydialog(path: str | Path, report: LineReport) -> Iterator[tuple[int, list[str]]]:
    """One dialogue per line; yields (0-based line index, utterances), repaired
    (``repair_dailydialog``)."""
    for number, text in read_lines(path, report):
        turns, reason = split_utterances(text)
        if reason:
            report.add_bad(path, number, reason)
        else:
            yield number - 1, [repair_dailydialog(turn) for turn in turns]


def cornell_fields(
    path: str | Path, number: int, text: str, report: LineReport, expected: int
) -> list[str] | None:
    fields = text.split(CORNELL_SEPARATOR)
    if len(fields) != expected:
        report.add_bad(
            path,
            number,
            f"expected {expected} fields separated by "
            f"{CORNELL_SEPARATOR.strip()!r}, found {len(fields)}",
        )
        return None
    return fields


def read_cornell_lines(path: str | Path, report: LineReport) -> dict[str, tuple[str, str]]:
    """Map line id -> (movie id, utterance text) from ``movie_lines.txt``."""
    lines: dict[str, tuple[str, str]] = {}
    for number, text in read_lines(path, report, encoding="iso-8859-1"):
        fields = cornell_fields(path, number, text, report, expected=5)
        if fields is None:
            continue
        line_id, _, movie_id, _, utterance = fields
        # An empty utterance is kept: the corpus has a few (e.g. L24609) and their
        # conversations are otherwise fine; pair building skips empty turns.
        if line_id in lines:
            report.add_bad(path, number, f"duplicate line id {line_id}")
        else:
            lines[line_id] = (movie_id, utterance.replace(MOJIBAKE_REPLACEMENT, "\ufffd"))
    return lines


def parse_id_list(text: str) -> list[str] | None:
    """Parse ``['L1', 'L2']`` safely; None if it is not a list of strings."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return value


def conversation_problem(
    ids: list[str] | None, movie_id: str, lines: dict[str, tuple[str, str]]
) -> str | None:
    if ids is None:
        return "utterance ids are not a list like ['L1', 'L2']"
    if len(ids) < 2:
        return f"fewer than 2 utterances ({len(ids)})"
    missing = [line_id for line_id in ids if line_id not in lines]
    if missing:
        return f"refers to missing line id(s) {', '.join(missing[:5])}"
    other = [line_id for line_id in ids if lines[line_id][0] != movie_id]
    if other:
        return f"line {other[0]} belongs to movie {lines[other[0]][0]}, not {movie_id}"
    return None


def read_cornell(
    lines_path: str | Path, conversations_path: str | Path, report: LineReport
) -> Iterator[tuple[int, str, list[str]]]:
    """Yield (0-based conversation index, movie id, utterances in order)."""
    lines = read_cornell_lines(lines_path, report)
    for number, text in read_lines(conversations_path, report, encoding="iso-8859-1"):
        fields = cornell_fields(conversations_path, number, text, report, expected=4)
        if fields is None:
            continue
        movie_id, ids = fields[2], parse_id_list(fields[3])
        reason = conversation_problem(ids, movie_id, lines)
        if reason:
            report.add_bad(conversations_path, number, reason)
            continue
        yield number - 1, movie_id, [lines[line_id][1] for line_id in ids or []]
