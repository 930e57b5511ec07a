"""The command line a newcomer meets (issue 23): ``--help`` with examples, the model's
direction and what the [beam]/[sample] tags mean; no TensorFlow for ``--help`` or a bad
flag; ``--n-best`` lines that carry the rank; a terminal on standard input is told what
to type; a chat run given to ``translate`` gets a warning."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq import chat, translate

REPO = Path(__file__).resolve().parents[1]


def help_text(module, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        module.parse_args(["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_translate_help_has_examples_the_direction_and_the_tags(capsys):
    text = help_text(translate, capsys)
    assert "examples:" in text
    assert '.venv/bin/python -m seq2seq.translate --model runs/quickstart "Tengo hambre."' in text
    assert "translates Spanish into English" in text  # the model's direction
    assert "--beam 5 means beam search with 5 beams" in text
    assert "A tag such as [beam] or [sample] names the search a flag belongs to" in text
    assert "INPUT_NUMBER<TAB>RANK<TAB>SCORE<TAB>TEXT" in text
    assert max(len(line) for line in text.splitlines()) <= 100  # wrapped, not one long line


def test_chat_help_has_examples_and_the_tags(capsys):
    text = help_text(chat, capsys)
    assert "examples:" in text and "--model runs/quickstart-chat" in text
    assert "--temperature 0.7 means sampling" in text
    assert "/reset" in text


@pytest.mark.parametrize("module", ["translate", "chat"])
@pytest.mark.parametrize("argv", [["--help"], ["--model", "runs/x", "--no-such-flag"]])
def test_help_and_flag_errors_do_not_import_tensorflow(module, argv):
    code = (
        "import sys\n"
        f"from seq2seq import {module} as m\n"
        "try:\n"
        f"    m.parse_args({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(n for n in ('tensorflow', 'keras', 'numpy') if n in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr


@pytest.mark.slow
def test_n_best_lines_carry_input_number_and_rank(tiny_run, capsys):
    assert translate.main(["--model", str(tiny_run), "--n-best", "3", "one two .", "three ."]) == 0
    rows = [row.split("\t") for row in capsys.readouterr().out.splitlines()]
    assert [row[:2] for row in rows] == [[i, r] for i in "12" for r in "123"]
    for group in (rows[:3], rows[3:]):
        scores = [float(row[2]) for row in group]
        assert scores == sorted(scores, reverse=True) and all(row[3] for row in group)


class Terminal(io.StringIO):
    """Standard input that is a terminal, with lines already typed."""

    def __init__(self, typed: bytes):
        super().__init__()
        self.buffer = io.BytesIO(typed)

    def isatty(self) -> bool:
        return True


@pytest.mark.slow
def test_a_terminal_on_stdin_is_told_what_to_type(tiny_run, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", Terminal(b"one two .\n"))
    assert translate.main(["--model", str(tiny_run)]) == 0
    out, err = capsys.readouterr()
    assert "Type a sentence and press Enter to translate it; Ctrl-D to end." in err
    assert f"{tiny_run}: tsv" in err  # which model, which direction
    assert len(out.splitlines()) == 1 and out.strip()


@pytest.mark.slow
def test_translate_warns_when_given_a_chat_run(tiny_dialogue_run, capsys):
    assert translate.main(["--model", str(tiny_dialogue_run), "hi"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {tiny_dialogue_run} is a chat run" in err
    assert f"python -m seq2seq.chat --model {tiny_dialogue_run}" in err
