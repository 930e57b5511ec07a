"""``python -m seq2seq.chat`` says when a message was too long for the model and shortened,
as ``translate`` does (it used to shorten it silently)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest import REPO


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
