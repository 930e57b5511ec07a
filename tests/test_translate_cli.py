"""``python -m seq2seq.translate``: arguments, stdin, files, errors (exit 2, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from seq2seq.translate import main


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "seq2seq.translate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_sentences_as_arguments(tiny_run, capsys):
    # in-process: the subprocess test below already runs the real entry point
    assert main(["--model", str(tiny_run), "One two .", "Nine ."]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(lines)
    assert main(["--model", str(tiny_run), "--no-jit", "One two .", "Nine ."]) == 0
    assert capsys.readouterr().out.splitlines() == lines  # XLA or not, same translations


def test_stdin_with_a_bad_line(tiny_run):
    done = cli("--model", str(tiny_run), "--beam", "3", stdin="one two .\n\nthree .\n")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert len(lines) == 4 and lines[0] and lines[1] == "" and lines[2] and lines[3] == ""
    assert "<stdin>:2: line is empty" in done.stderr
    assert "1 bad lines" in done.stderr


def test_bad_run_folder_exits_2_without_traceback(tmp_path):
    done = cli("--model", str(tmp_path / "missing"), "hello")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: run folder not found")
    assert "Traceback" not in done.stderr


def test_files_n_best_and_errors_in_process(tiny_run, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("one .\n\nfour five six .\n" + "x" * 2000 + "\nseven .\n", encoding="utf-8")
    output = tmp_path / "out.txt"
    assert main(["--model", str(tiny_run), "--input", str(source), "--output", str(output)]) == 0
    lines = output.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 6 and lines[-1] == ""
    assert [bool(line) for line in lines[:5]] == [True, False, True, False, True]
    err = capsys.readouterr().err
    assert f"{source}:2: line is empty" in err and f"{source}:4: line is 2000 characters" in err
    assert "translated 3 lines, 2 bad lines" in err

    assert main(["--model", str(tiny_run), "--n-best", "3", "one two ."]) == 0
    rows = [row.split("\t") for row in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and all(row[0] == "1" for row in rows)
    scores = [float(row[1]) for row in rows]
    assert scores == sorted(scores, reverse=True)

    args = ["--model", str(tiny_run), "--method", "sample", "--seed", "3", "--top-k", "3"]
    assert main([*args, "one two ."]) == 0
    first = capsys.readouterr().out
    assert main([*args, "one two ."]) == 0
    assert capsys.readouterr().out == first


@pytest.mark.parametrize(
    "args, message",
    [
        (["", "--model", "{run}"], "error: argument 1 is empty"),
        (["--beam", "0", "x", "--model", "{run}"], "error: decode.beam_size is 0"),
        (["--top-p", "2", "x", "--model", "{run}"], "error: decode.top_p"),
        (["--input", "{run}/nope.txt", "--model", "{run}"], "error: input file not found"),
    ],
)
def test_bad_arguments_exit_2(tiny_run, capsys, args, message):
    args = [a.replace("{run}", str(tiny_run)) for a in args]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_incompatible_run_exits_2(tiny_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "old"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("logs", "backup"))
    (run / "FORMAT").write_text("999\n", encoding="utf-8")
    assert main(["--model", str(run), "hello"]) == 2
    assert "run format '999'" in capsys.readouterr().err


def test_seeded_sampling_chunks_draw_independently(tiny_translator):
    """A file is translated in chunks; with --seed each chunk gets its own derived seed, so
    line i of every chunk does not replay the same sample, and reruns are identical."""
    import io

    from seq2seq.translate import translate_lines

    def run() -> list[str]:
        out = io.StringIO()
        overrides = dict(method="sample", temperature=3.0, seed=5)
        lines = ["one two three four ."] * 32
        assert translate_lines(tiny_translator, lines, "f", out, overrides, False, 16) == (32, 0)
        return out.getvalue().splitlines()

    first = run()
    assert first[:16] != first[16:]
    assert run() == first
