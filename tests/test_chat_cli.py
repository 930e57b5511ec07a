"""``python -m seq2seq.chat`` in a subprocess with piped stdin, on a tiny dialogue run."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq.dialogue import build_source

REPO = Path(__file__).resolve().parents[1]

GREETINGS = ["hi", "hello", "good morning", "hey there", "good evening"]
QUESTIONS = ["how are you", "what is new", "where are you going", "what time is it"]
ANSWERS = ["i am fine thanks", "nothing much", "to the market", "it is late"]


def synthetic_dialogues() -> list[list[str]]:
    dialogues = []
    for greeting in GREETINGS:
        for question, answer in zip(QUESTIONS, ANSWERS, strict=True):
            for mark in ("!", ".", "?"):
                dialogues.append(
                    [f"{greeting}{mark}", f"{greeting} to you.", f"{question}?", answer]
                )
    return dialogues


@pytest.fixture(scope="session")
def tiny_dialogue_run(tmp_path_factory) -> Path:
    """A word-level model on (previous turn <sep> message, reply) pairs written as a TSV."""
    from seq2seq.config import load_config
    from seq2seq.training import train

    folder = tmp_path_factory.mktemp("tiny-chat")
    corpus = folder / "dialogue.tsv"
    lines = []
    for turns in synthetic_dialogues():
        for i in range(1, len(turns)):
            lines.append(f"{build_source(turns[: i - 1], turns[i - 1], 1, '<sep>')}\t{turns[i]}\n")
    corpus.write_text("".join(lines), encoding="utf-8")
    config = load_config(
        overrides=[
            "data.corpus=tsv",
            f"data.path={corpus}",
            "data.context_turns=1",
            "data.tokenizer=word",
            "data.dev_fraction=0.15",
            "data.test_fraction=0.15",
            "data.source_vocab_size=64",
            "data.target_vocab_size=64",
            "model.embedding_dim=16",
            "model.hidden_size=16",
            "model.dropout=0.0",
            "train.epochs=1",
            "train.batch_size=16",
            "train.select_best_by=loss",
            "decode.method=sample",
            "decode.top_p=0.9",
            "decode.temperature=0.8",
            "decode.min_length=2",
            "decode.max_length=8",
            "decode.no_repeat_ngram_size=3",
        ]
    )
    run = folder / "run"
    train(config, run, verbose=0)
    return run


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
