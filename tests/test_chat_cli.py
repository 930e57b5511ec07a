"""``python -m seq2seq.chat`` in a subprocess with piped stdin, on a tiny dialogue run; invalid
bytes and Ctrl-C in process; ``--help``, and the notice for a message shortened to fit."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_translate_cli import help_text

REPO = Path(__file__).resolve().parents[1]


def chat(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "seq2seq.chat", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_piped_chat_prints_one_reply_per_message(tiny_dialogue_run):
    messages = "hi!\n\nhow are you?\n/reset\n" + "x" * 1200 + "\nwhat is new?\n/quit\nignored\n"
    result = chat("--model", str(tiny_dialogue_run), "--seed", "7", "--top-k", "5", stdin=messages)
    assert result.returncode == 0, result.stderr
    replies = result.stdout.split("\n")[:-1]
    # hi, how are you, (refused: too long -> empty line), what is new; blank line and
    # commands print nothing on stdout, and nothing after /quit is read
    assert len(replies) == 4, result.stdout
    assert replies[2] == ""
    assert all(reply.strip() for i, reply in enumerate(replies) if i != 2)
    assert "(conversation reset)" in result.stderr
    assert "1000 characters" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_chat_ends_at_end_of_input_and_refuses_bad_flags(tiny_dialogue_run, monkeypatch, capsys):
    # in-process (the test above runs the real entry point): no second TensorFlow start-up
    from seq2seq.chat import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("hello.\n"))
    assert main(["--model", str(tiny_dialogue_run), "--method", "greedy"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    bad = chat("--model", str(tiny_dialogue_run), "--top-p", "1.5", stdin="hello.\n")
    assert bad.returncode == 2
    assert "top_p" in bad.stderr and "Traceback" not in bad.stderr


def test_chat_bad_run_folder_exits_2(tmp_path):
    result = chat("--model", str(tmp_path / "missing"), stdin="hi\n")
    assert result.returncode == 2
    assert "run folder not found" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_ctrl_c_stops_the_reply_and_keeps_the_session(tiny_dialogue_run):
    """In a terminal (a pty), Ctrl-C during a streamed reply stops that reply and the
    prompt comes back; Ctrl-C at the prompt then quits."""
    import pty
    import select
    import signal
    import time

    controller, terminal = pty.openpty()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    # a reply of 900+ tokens at one chunk of 4 steps per call: long enough to interrupt
    flags = ["--min-length", "900", "--max-length", "1000", "--seed", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "seq2seq.chat", "--model", str(tiny_dialogue_run), *flags],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        cwd=REPO,
        env=env,
    )
    os.close(terminal)
    seen = b""

    def read_until(marker: bytes, after: int, timeout: float = 240.0) -> int:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen[after:]:
            assert time.monotonic() < deadline, seen.decode(errors="replace")[-2000:]
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(controller, 65536)
                except OSError:  # the child closed the terminal
                    break
        return seen.index(marker, after) + len(marker)

    try:
        at = read_until(b"you> ", 0)
        os.write(controller, b"hi!\n")
        at = read_until(b"bot> ", at)
        read_until(b" ", at)  # the first words are out: the reply is being decoded
        process.send_signal(signal.SIGINT)
        at = read_until(b"(reply stopped)", at)
        at = read_until(b"you> ", at)  # still in the session
        os.write(controller, b"/help\n")
        at = read_until(b"/reset", at)
        at = read_until(b"you> ", at)
        process.send_signal(signal.SIGINT)  # at the prompt: quit
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            read_until(b"\x00", at, timeout=1.0)  # collect what it printed, then fail
        assert code == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    assert b"Traceback" not in seen


# -- invalid bytes and Ctrl-C, in process ------------------------------------------------


def test_chat_survives_invalid_utf8_and_lone_carriage_returns(tiny_run, monkeypatch, capsys):
    from seq2seq.chat import main as chat_main

    data = b"one two .\nthree \xff four .\nfive\rsix .\n/quit\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    assert chat_main(["--model", str(tiny_run), "--method", "greedy"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3 and all(captured.out.splitlines())
    assert "<stdin>:2: invalid UTF-8" in captured.err


def test_chat_ctrl_c_while_decoding_ends_without_a_traceback(tiny_run, monkeypatch, capsys):
    from seq2seq.chat import main as chat_main
    from seq2seq.data.dialogue import ChatSession

    def interrupted(self, message, decode=None, stop=None):  # Ctrl-C not taken between chunks
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(ChatSession, "stream_reply", interrupted)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"one .\n"), encoding="utf-8"))
    assert chat_main(["--model", str(tiny_run), "--method", "greedy"]) == 130


def test_chat_help_has_examples_and_the_tags(capsys):
    from seq2seq import chat  # the module (``chat`` above runs the command)

    text = help_text(chat, capsys)
    assert "examples:" in text and "--model runs/quickstart-chat" in text
    assert "--temperature 0.7 means sampling" in text
    assert "/reset" in text


@pytest.mark.slow
def test_an_over_long_message_is_flagged_like_translate_flags_it(tiny_dialogue_run):
    config = yaml.safe_load((tiny_dialogue_run / "config.yaml").read_text(encoding="utf-8"))
    limit = config["data"]["max_source_length"]
    long_message = " ".join(["hello"] * (limit + 20))
    assert len(long_message) < 1000  # within --max-input-chars: answered, not refused
    done = subprocess.run(
        [sys.executable, "-m", "seq2seq.chat", "--model", str(tiny_dialogue_run)]
        + ["--method", "greedy"],
        input=f"hi!\n{long_message}\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    replies = done.stdout.split("\n")[:-1]
    assert len(replies) == 2 and all(reply.strip() for reply in replies)
    notices = [line for line in done.stderr.splitlines() if "shortened" in line]
    assert notices == [
        f"<stdin>:2: message is longer than the model's {limit} tokens "
        "(data.max_source_length); it was shortened to fit"
    ]
