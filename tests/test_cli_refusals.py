"""Commands refuse bad settings and unusable folders with one line and exit 2, before any
work, never with a traceback: bench, evaluate, export, average, and resume with a damaged
``metrics.json``."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from seq2seq.inference.evaluation import EvaluationError, check_writable, evaluate_run
from seq2seq.run_lock import check_new_folder
from seq2seq.runs import RunError, RunPaths, read_metrics


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
    ],
)
def test_bench_refuses_bad_arguments(args, message):
    assert message in one_error_line(run_module("seq2seq.bench", *args))


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("degenerate_threshold", math.nan),
        ("degenerate_threshold", 1.5),
        ("degenerate_threshold", -0.1),
        ("stock_fraction", 5.0),
        ("stock_fraction", 0.0),
        ("stock_fraction", math.inf),
    ],
)
def test_evaluate_range_checks_its_shares(tmp_path, setting, value):
    with pytest.raises(EvaluationError, match=f"{setting} is {value}; allowed: a number with 0"):
        evaluate_run(tmp_path / "never-opened", **{setting: value})


def test_evaluate_output_folder_is_checked_without_leaving_folders(tmp_path):
    check_writable(tmp_path / "a" / "b" / "c")
    assert list(tmp_path.iterdir()) == [], "the check leaves no folder behind"
    (tmp_path / "file").write_text("x")
    with pytest.raises(EvaluationError, match="cannot write the report to .*file/out"):
        check_writable(tmp_path / "file" / "out")


def test_new_output_folders_that_cannot_be_created_are_refused_first(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="cannot create .*file/out: .*file is not a folder"):
        check_new_folder(tmp_path / "file" / "out")
    check_new_folder(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_evaluate_checks_the_output_folder_before_decoding(tiny_run, tmp_path, monkeypatch):
    from seq2seq.inference import evaluation

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before checking the output folder")

    monkeypatch.setattr(evaluation, "decode_sources", no_decoding)
    (tmp_path / "file").write_text("x")
    with pytest.raises(EvaluationError, match="cannot write the report"):
        evaluate_run(tiny_run, output_dir=tmp_path / "file" / "eval")
    done = run_module(
        "seq2seq.evaluate", "--model", str(tiny_run), "--stock-fraction", "5", "--split", "dev"
    )
    assert "stock_fraction is 5.0" in one_error_line(done)


@pytest.mark.slow
def test_export_and_average_into_an_unwritable_place_exit_2(tiny_run, tmp_path):
    (tmp_path / "file").write_text("x")
    for module, extra in (("seq2seq.export", []), ("seq2seq.average", ["--last", "2"])):
        done = run_module(
            module, "--model", str(tiny_run), "--output", str(tmp_path / "file" / "out"), *extra
        )
        assert "is not a folder" in one_error_line(done), module


def test_a_damaged_metrics_json_is_named(tmp_path):
    paths = RunPaths(tmp_path)
    assert read_metrics(paths) == {}
    paths.metrics.write_text('{"epochs": [', encoding="utf-8")
    with pytest.raises(RunError, match="metrics.json cannot be read .*JSONDecodeError"):
        read_metrics(paths)
    paths.metrics.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(RunError, match="metrics.json is damaged: it holds a list"):
        read_metrics(paths)
    paths.metrics.write_bytes(b"\xff\xfe{}")
    with pytest.raises(RunError, match="metrics.json cannot be read"):
        read_metrics(paths)


@pytest.mark.slow
def test_resume_with_a_damaged_metrics_json_exits_2(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("logs", "eval-*"))
    metrics = run / "metrics.json"
    metrics.write_text(metrics.read_text()[:40], encoding="utf-8")  # cut short
    done = run_module("seq2seq.train", "--output", str(run), "--resume", "train.epochs=6")
    assert "metrics.json cannot be read" in one_error_line(done)
    json.loads((tiny_run / "metrics.json").read_text())  # the original is untouched
