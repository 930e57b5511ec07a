"""``seq2seq.cli.line_io`` reading: ``--max-input-chars`` is applied while a line is read
(a huge line costs no more memory than one at the cap), and devices are refused as input."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from conftest import REPO

from seq2seq.cli import line_io


class EndlessLine(io.RawIOBase):
    """``size`` bytes of 'a' generated as they are read, then ``tail``: nothing big is held."""

    def __init__(self, size: int, tail: bytes = b"\nnext line\n"):
        self.left = size
        self.tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left > 0:
            count = min(len(buffer), self.left)
            buffer[:count] = b"a" * count
            self.left -= count
            return count
        count = min(len(buffer), len(self.tail))
        buffer[:count] = self.tail[:count]
        self.tail = self.tail[count:]
        return count


def test_a_huge_line_is_dropped_while_reading_with_bounded_memory():
    size = 200_000_000  # 200 MB without a newline
    stream = io.BufferedReader(EndlessLine(size))
    tracemalloc.start()
    try:
        lines = list(line_io.read_lines(stream, "<stdin>", max_chars=1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, f"peak {peak:,} bytes: the line was held"
    assert [line.number for line in lines] == [1, 2]
    assert lines[0].error == (
        f"line is {size + 1:,} bytes long; the limit is 1,000 characters (--max-input-chars)"
    )
    assert lines[0].text == ""
    assert lines[1].text == "next line" and lines[1].error is None


def test_lines_at_the_cap_are_read_whole():
    text = "é" * 1000  # 2,000 bytes: at the character cap, well under the byte cap
    stream = io.BytesIO(f"{text}\r\nshort\n{'b' * 5000}".encode())
    lines = list(line_io.read_lines(stream, "x", max_chars=1000))
    assert lines[0].text == text and lines[0].error is None
    assert lines[1].text == "short"
    assert lines[2].error.startswith("line is 5,000 bytes long")  # the last, no newline
    assert [line.text for line in line_io.read_lines(io.BytesIO(b"a\nb"), "x")] == ["a", "b"]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_refused_as_input():
    with pytest.raises(line_io.TextInputError, match="/dev/zero is a device, not a file"):
        line_io.check_input_file(Path("/dev/zero"))


@pytest.mark.slow
def test_translate_cli_drops_a_huge_stdin_line_and_refuses_dev_zero(tiny_run):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    stdin = b"one two .\n" + b"x" * 5_000_000 + b"\nthree .\n"
    done = subprocess.run(
        [sys.executable, "-m", "seq2seq.translate", "--model", str(tiny_run)]
        + ["--max-input-chars", "50"],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.decode().split("\n")
    assert len(out) == 4 and out[0] and out[1] == "" and out[2], out
    assert b"<stdin>:2: line is 5,000,001 bytes long" in done.stderr
    refused = subprocess.run(
        [sys.executable, "-m", "seq2seq.translate", "--model", str(tiny_run)]
        + ["--input", "/dev/zero"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: --input /dev/zero is a device, not a file (an endless stream such as "
        "/dev/zero would never end); pipe it to standard input if you mean it"
    ]


def test_output_to_dev_stdout_when_stdout_is_a_pipe():
    """``--output /dev/stdout`` in a pipeline: /dev/stdout links to 'pipe:[N]', no path."""
    code = (
        "from seq2seq.cli.line_io import open_output\n"
        "with open_output('/dev/stdout') as out:\n"
        "    out.write('one\\ntwo\\n')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "one\ntwo\n"
