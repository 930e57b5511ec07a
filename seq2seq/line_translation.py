"""Translating a stream of lines: one output row per input line, in order, whatever the line.

``translate_lines`` is the file and standard-input mode of ``python -m seq2seq.translate``:
lines (``textio.Line``s from ``textio.read_lines``, or strings) go to the ``Translator`` in
chunks; a line the translator refuses (empty, too long) is reported on standard error as
``NAME:LINE: reason`` and gets an empty output row, so outputs stay aligned with inputs;
an input the model had to shorten is flagged with its line. This module imports no
TensorFlow (the translator is passed in).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TextIO

from seq2seq import textio
from seq2seq.textio import Line

CHUNK = 256  # lines handed to the translator at once in file/stdin mode


def format_translation(translation, number: int, n_best: bool) -> list[str]:
    if not n_best:
        return [translation.text]
    return [f"{number}\t{score:.4f}\t{text}" for text, score in translation.n_best]


def format_blank(number: int, n_best: bool) -> list[str]:
    return [f"{number}\t\t"] if n_best else [""]


def chunks(lines: Iterable[Line | str], size: int) -> Iterator[list[Line]]:
    chunk: list[Line] = []
    for number, line in enumerate(lines, start=1):
        if isinstance(line, str):  # already-decoded text (library callers)
            text, notices = textio.clean_text(line.rstrip("\r\n"))
            line = Line(number, text, notices)
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def flag_truncated(translation, where: str, translator) -> None:
    """The README promises that over-long inputs are flagged, not cut silently."""
    if translation.truncated:
        limit = translator.config.data.max_source_length
        print(
            f"{where}: input is longer than the model's {limit} tokens "
            f"(data.max_source_length); it was shortened to fit",
            file=sys.stderr,
        )


def translate_lines(
    translator,
    lines: Iterable[Line | str],
    name: str,
    out: TextIO,
    overrides: dict,
    n_best: bool,
    chunk_size: int = CHUNK,
    progress=None,
) -> tuple[int, int]:
    """Translate line by line (in chunks); returns (translated, bad) counts.

    ``lines`` are ``textio.Line``s (from ``textio.read_lines``) or strings. Exactly one
    output line (``n_best`` rows with --n-best) is written per input line, in order.
    """
    from seq2seq.prediction import seeded_overrides
    from seq2seq.translator import InputError

    good, bad = 0, 0
    for chunk_number, chunk in enumerate(chunks(lines, chunk_size)):
        valid: list[tuple[int, str]] = []
        for line in chunk:
            textio.print_notices(line, name)
            try:
                translator.check_input(line.text, "line")
                valid.append((line.number, line.text))
            except InputError as error:
                print(f"{name}:{line.number}: {error}; writing an empty line", file=sys.stderr)
        seeded = seeded_overrides(overrides, chunk_number)
        translations = translator.translate([text for _, text in valid], **seeded)
        by_number = dict(zip((n for n, _ in valid), translations, strict=True))
        for line in chunk:
            if line.number in by_number:
                translation = by_number[line.number]
                flag_truncated(translation, f"{name}:{line.number}", translator)
                rows = format_translation(translation, line.number, n_best)
                good += 1
            else:
                rows = format_blank(line.number, n_best)
                bad += 1
            textio.write_rows(out, rows)
        out.flush()
        if progress is not None:
            progress.update(len(chunk))
    return good, bad
