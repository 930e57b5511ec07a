"""Line-oriented text in and out for the command-line tools, safe against hostile input.

Reading: input is read as bytes and split on ``\\n`` only (a lone ``\\r`` or U+2028 inside a
line does not start a new one, so output lines stay aligned with input lines); ``\\r\\n``
endings are stripped; bytes that are not UTF-8 are replaced by U+FFFD and reported as
``NAME:LINE``; NUL characters are removed with a notice; UTF-16 input is refused with a
hint to convert it. Command-line arguments get the same replacement (Python hands
undecodable argument bytes over as lone surrogates, which no tokenizer accepts).

Writing: ``open_output`` refuses a target that is the input file (also through links) or
a folder, and writes a regular file through a temporary file in the same folder that is
renamed over the target only when everything was written, so an interrupted or failed
run never leaves a truncated file (nor empties the input). This module imports no
TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
REPLACEMENT = "\ufffd"


class TextInputError(ValueError):
    """An input or output file cannot be used as asked (the message names it)."""


@dataclass
class Line:
    """One input line: its 1-based number, its text, and notices about how it was read."""

    number: int
    text: str
    notices: list[str] = field(default_factory=list)
    error: str | None = None  # the line cannot be used at all (longer than the reading cap)


def clean_text(raw: bytes | str) -> tuple[str, list[str]]:
    """Text of one line (bytes decoded as UTF-8 with replacement, surrogates from undecodable
    arguments replaced, NULs removed) and the notices that say what was changed."""
    notices = []
    try:
        text = raw if isinstance(raw, str) else raw.decode("utf-8")
        text.encode("utf-8")  # lone surrogates (undecodable argument bytes) fail here
    except UnicodeError:
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape" if is_escaped(raw) else "replace")
        text = raw.decode("utf-8", "replace")
        notices.append("invalid UTF-8 bytes were replaced by U+FFFD")
    if "\x00" in text:
        text = text.replace("\x00", "")
        what = "only NUL bytes" if not text.strip() else "NUL bytes"
        notices.append(f"the line held {what} (binary data?); they were removed")
    return text, notices


def is_escaped(text: str) -> bool:
    """Whether every surrogate in ``text`` stands for one raw byte (Python's
    ``surrogateescape``, used for command-line arguments and file names)."""
    return all("\udc80" <= c <= "\udcff" for c in text if "\ud800" <= c <= "\udfff")


def looks_like_utf16(head: bytes) -> bool:
    """A UTF-16 byte-order mark, or mostly-ASCII UTF-16: NULs in nearly every other byte
    and almost none in between (a line of NULs alone is not UTF-16)."""
    if head.startswith(UTF16_BOMS):
        return True
    sample = head[:200]
    if len(sample) < 4:
        return False
    even, odd = sample[0::2], sample[1::2]
    zeros = sorted((even.count(0) / len(even), odd.count(0) / len(odd)))
    return zeros[1] >= 0.5 and zeros[0] <= 0.1


def read_lines(stream: BinaryIO, name: str, max_chars: int | None = None) -> Iterator[Line]:
    """The lines of a binary stream, split on ``\\n`` only, each with its notices.

    ``TextInputError`` if the stream looks like UTF-16 (checked on the first line).
    ``max_chars`` caps what is held of one line while reading: a line longer than that
    many characters is read through in blocks and dropped (a ``Line`` whose ``error`` says
    so), so a huge line without a newline costs no more memory than a line at the cap.
    """
    limit = None if max_chars is None else 4 * max_chars + 8  # UTF-8: <= 4 bytes a character
    number = 0
    while raw := stream.readline(-1 if limit is None else limit):
        number += 1
        if limit is not None and len(raw) >= limit and not raw.endswith(b"\n"):
            size = skip_rest_of_line(stream, len(raw))
            yield Line(
                number,
                "",
                error=f"line is {size:,} bytes long; the limit is {max_chars:,} "
                "characters (--max-input-chars)",
            )
            continue
        if number == 1 and looks_like_utf16(raw):
            raise TextInputError(
                f"{name} looks like UTF-16 text; this tool reads UTF-8. Convert it first, "
                f"e.g. `iconv -f UTF-16 -t UTF-8 {name} > converted.txt`"
            )
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        text, notices = clean_text(raw)
        yield Line(number, text, notices)


def skip_rest_of_line(stream: BinaryIO, size: int) -> int:
    """Read up to the end of the current line in blocks; the line's size in bytes."""
    while chunk := stream.readline(1 << 20):
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return size


def count_lines(path: Path) -> int:
    """Lines ``read_lines`` will yield (for a progress bar): ``\\n`` count, plus a last
    line without one."""
    count, last = 0, b"\n"
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def check_input_file(path: Path) -> None:
    """``TextInputError`` naming the problem if ``path`` is not a readable file."""
    if not path.exists():
        raise TextInputError(f"input file not found: {path}")
    if path.is_dir():
        raise TextInputError(f"--input {path} is a folder, not a file")
    if path.is_char_device() or path.is_block_device():
        raise TextInputError(
            f"--input {path} is a device, not a file (an endless stream such as /dev/zero "
            "would never end); pipe it to standard input if you mean it"
        )
    if not os.access(path, os.R_OK):
        raise TextInputError(f"input file {path} is not readable (permission denied)")


def same_file(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist
        return False


def describe(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "no space left on the device"
    return error.strerror or str(error)


def check_output(path: Path, input_path: str | Path | None = None) -> None:
    """``TextInputError`` if ``path`` cannot be an output file (see ``open_output``)."""
    if input_path is not None and same_file(Path(input_path), path):
        raise TextInputError(
            f"--output {path} is the input file; writing it would destroy the input. "
            "Choose another output file."
        )
    if path.is_dir():
        raise TextInputError(f"--output {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise TextInputError(f"cannot write {path}: the folder {path.parent} does not exist")


@contextlib.contextmanager
def open_output(path: str | Path, input_path: str | Path | None = None) -> Iterator[OutputFile]:
    """A text stream that becomes ``path`` only if the ``with`` block finishes.

    A regular file (new or existing) is written to a temporary file beside it, flushed,
    synced and renamed over ``path`` at the end, so a failure or a kill never leaves half
    a file. Special files (``/dev/null``, a FIFO, a terminal) are written in place.
    ``TextInputError`` if ``path`` is ``input_path`` (also through a link), a folder, or
    in a folder that does not exist or cannot be written; ``OSError`` from writing it is
    turned into ``TextInputError`` too (other errors of the ``with`` block pass unchanged).
    """
    path = Path(path)
    check_output(path, input_path)
    try:
        mode = path.stat().st_mode  # through links: /dev/stdout -> a pipe, a file, a tty
    except OSError:
        mode = None
    special = mode is not None and not stat.S_ISREG(mode)
    if path.is_symlink() and not special:  # replace the link's target, not the link
        path = path.resolve()  # (a pipe's target, 'pipe:[N]', is no path: open the link)
    folder = path.parent
    try:
        if special:
            stream = path.open("w", encoding="utf-8", newline="\n")
            temporary = None
        else:
            handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
            temporary = Path(name)
            stream = os.fdopen(handle, "w", encoding="utf-8", newline="\n")
    except OSError as error:
        raise TextInputError(f"cannot write {path}: {describe(error)}") from error
    try:
        yield OutputFile(stream, path)  # errors of the caller's own work pass unchanged
        with output_errors(path):
            stream.flush()
            if temporary is not None:
                os.fsync(stream.fileno())
            stream.close()
        if temporary is not None:
            with output_errors(path):
                mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
                os.chmod(temporary, 0o666 & ~current_umask() if mode is None else mode)
                os.replace(temporary, path)
            temporary = None
    finally:
        with contextlib.suppress(OSError):  # after a failure: closing flushes (fails) again
            stream.close()
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink()


@contextlib.contextmanager
def output_errors(path: Path) -> Iterator[None]:
    """``OSError`` while writing ``path`` -> ``TextInputError`` naming it (disk full, ...)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as error:
        raise TextInputError(f"cannot write {path}: {describe(error)}") from error


class OutputFile:
    """A text stream whose write errors name the file (``--output /dev/full``)."""

    def __init__(self, stream: TextIO, path: Path):
        self.stream = stream
        self.path = path

    def write(self, text: str) -> int:
        with output_errors(self.path):
            return self.stream.write(text)

    def flush(self) -> None:
        with output_errors(self.path):
            self.stream.flush()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def single_line(text: str) -> str:
    """``text`` on one line: any line break a model might output becomes a space."""
    return " ".join(text.splitlines())


def write_rows(out: TextIO, rows: Iterable[str]) -> None:
    """One output line per row, so outputs stay aligned with input lines."""
    out.write("".join(single_line(row) + "\n" for row in rows))


def print_notices(line: Line, name: str) -> None:
    for notice in line.notices:
        print(f"{name}:{line.number}: {notice}", file=sys.stderr)


BROKEN_PIPE_EXIT = 141  # what a shell reports for a command stopped by SIGPIPE


def silence_stdout() -> int:
    """After ``BrokenPipeError`` (``| head`` stopped reading): point stdout at /dev/null so
    Python's final flush prints no second error, and return the exit code to use."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return BROKEN_PIPE_EXIT
