"""``python -m seq2seq.bench`` refuses bad settings with one line and exit 2, before any work,
never with a traceback (``run_module`` and ``one_error_line`` serve the other commands'
refusal tests too)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
    )


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train-steps", "-5"], "--train-steps is -5; allowed: a whole number >= 1"),
        (["--repeats", "0"], "--repeats is 0; allowed: a whole number >= 1"),
        (["--warmup-steps", "-1"], "--warmup-steps is -1; allowed: a whole number >= 0"),
        (["--decode-sentences", "0"], "--decode-sentences is 0"),
        (["--only", "model"], "--only model needs --model RUN"),
        (["--model", "/nonexistent", "--only", "model"], "run folder not found: /nonexistent"),
        (["--export"], "--export times --model's export: give --model RUN"),
        (
            ["--model", "RUN", "--export", "--glossary", "/nonexistent.tsv"],
            "--glossary /nonexistent.tsv: no such file",
        ),
    ],
)
def test_bench_refuses_bad_arguments(args, message):
    assert message in one_error_line(run_module("seq2seq.bench", *args))
