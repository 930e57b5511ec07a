"""The run folder: a run killed at any write keeps its last good state, and ``--resume`` takes
it from there; a full disk is recognised; a damaged ``metrics.json`` is named, and ``--resume``
of it exits 2.

Kills are deterministic: ``SEQ2SEQ_KILL_AT=name:N`` makes the trainer cut the N-th write of
``name`` in half and SIGKILL itself before the rename (the test seam ``seq2seq.runs.fault_seam``).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_bench import one_error_line, run_module
from test_distributed import NO_DEV_BLEU, environment, write_config

from seq2seq.runs import RunError, RunPaths, is_disk_full, read_metrics


def train(args: list[str], env: dict, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = dict(env)
    if kill_at:
        env["SEQ2SEQ_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "seq2seq.train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def check_consistent(run: Path) -> list[int]:
    """Every visible file is whole; returns the epochs that metrics.json records."""
    import keras

    from seq2seq.model import Seq2Seq  # noqa: F401  (registers the class for loading)

    for name in ("model.keras", "last.keras"):
        if (run / name).exists():
            keras.saving.load_model(run / name, safe_mode=True, compile=False)
    epochs = []
    if (run / "metrics.json").exists():
        epochs = [e["epoch"] for e in json.loads((run / "metrics.json").read_text())["epochs"]]
    if (run / "history.csv").exists():
        rows = (run / "history.csv").read_text().splitlines()[1:]
        assert [int(r.split(",")[0]) + 1 for r in rows] == epochs
    for state in (run / "backup").glob("epoch-*"):
        assert {p.name for p in state.iterdir()} == {
            "model.weights.h5",
            "optimizer.npz",
            "state.json",
        }
    return epochs


@pytest.mark.slow
def test_kills_at_every_kind_of_write_lose_nothing(tmp_path):
    config = write_config(tmp_path, epochs=3, steps_per_epoch=4, **NO_DEV_BLEU)
    run = tmp_path / "run"
    env = environment(tmp_path)
    first = ["--config", str(config), "--output", str(run)]
    resume = ["--output", str(run), "--resume"]
    # Mid-way through the training state of epoch 2: epoch 1's state is the one to resume.
    killed = train(first, env, kill_at="state:2")
    assert killed.returncode == -9
    assert check_consistent(run) == [1, 2]
    # The resumed run forgets epoch 2 (its state was lost), redoes it, and is killed while
    # recording it in metrics.json.
    killed = train(resume, env, kill_at="metrics.json:2")
    assert killed.returncode == -9
    assert check_consistent(run) == [1]
    # Killed while writing last.keras at the very end: every epoch's state is there.
    killed = train(resume, env, kill_at="last.keras:1")
    assert killed.returncode == -9
    assert not (run / "last.keras").exists()
    assert check_consistent(run) == [1, 2, 3]
    done = train(resume, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert check_consistent(run) == [1, 2, 3]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and (run / "last.keras").is_file()
    assert not list(run.rglob(".partial-*")), "a temporary file was left behind"


@pytest.mark.slow
def test_a_damaged_state_falls_back_and_a_finished_run_resumes_only_to_more_epochs(tmp_path):
    """One run, two stories (each training subprocess costs seconds): a damaged newest state
    falls back to the one before; then ``--resume`` of the finished run changes nothing,
    refuses other overrides and trains on only when ``train.epochs`` is raised."""
    config = write_config(tmp_path, epochs=3, steps_per_epoch=4, **NO_DEV_BLEU)
    run = tmp_path / "run"
    env = environment(tmp_path)
    killed = train(["--config", str(config), "--output", str(run)], env, kill_at="state-renamed:2")
    assert killed.returncode == -9
    newest = run / "backup" / "epoch-0002" / "model.weights.h5"
    newest.write_bytes(newest.read_bytes()[:100])  # e.g. a disk that lost the tail
    resumed = train(["--output", str(run), "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "skipping a damaged training state" in resumed.stderr
    assert "epoch-0001" in resumed.stderr
    assert check_consistent(run) == [1, 2, 3]

    history = (run / "history.csv").read_text()
    last = (run / "last.keras").stat().st_mtime_ns
    again = train(["--output", str(run), "--resume"], env)
    assert again.returncode == 0
    assert "already finished" in again.stdout
    assert (run / "history.csv").read_text() == history
    assert (run / "last.keras").stat().st_mtime_ns == last
    refused = train(["--output", str(run), "--resume", "model.cell=lstm"], env)
    assert refused.returncode == 2 and "cannot change it" in refused.stderr
    more = train(["--output", str(run), "--resume", "train.epochs=4"], env)
    assert more.returncode == 0, more.stderr[-3000:]
    assert check_consistent(run) == [1, 2, 3, 4]


@pytest.mark.slow
def test_bad_input_found_after_parsing_leaves_no_run_folder(tmp_path):
    config = write_config(tmp_path)
    env = environment(tmp_path)
    missing = tmp_path / "missing.tsv"
    run = tmp_path / "run"
    result = train(["--config", str(config), "--output", str(run), f"data.path={missing}"], env)
    assert result.returncode == 2
    assert "missing.tsv" in result.stderr and "Traceback" not in result.stderr
    assert not run.exists()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_a_read_only_output_folder_is_a_clear_error(tmp_path):
    config = write_config(tmp_path)
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        result = train(
            ["--config", str(config), "--output", str(parent / "run")], environment(tmp_path)
        )
    finally:
        parent.chmod(0o755)
    assert result.returncode == 2
    assert "cannot write the run folder" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_ctrl_c_ends_training_with_one_line_and_the_run_resumes(tmp_path):
    """Ctrl-C mid-epoch: exit 130 at once with a line naming the resume command (no
    traceback, no wait for TensorFlow's teardown), and ``--resume`` continues the run."""
    import signal
    import time

    config = write_config(tmp_path, epochs=500, patience=500, **NO_DEV_BLEU)
    run = tmp_path / "run"
    env = environment(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "seq2seq.train", "--config", str(config), "--output", str(run)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in process.stdout:  # wait until two epochs are done
            if line.startswith("Epoch 3/"):
                break
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr[-3000:]
    assert time.monotonic() - started < 30
    assert "Traceback" not in stderr
    assert f"python -m seq2seq.train --output {run} --resume" in stderr
    done = check_consistent(run)
    assert len(done) >= 2
    more = train(["--output", str(run), "--resume", f"train.epochs={len(done) + 1}"], env)
    assert more.returncode == 0, more.stderr[-3000:]
    assert check_consistent(run) == list(range(1, len(done) + 2))


# -- run-folder records: a full disk, a damaged metrics.json -------------------------------


def test_disk_full_errors_are_recognised():
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    # h5py's wording, errno lost
    assert is_disk_full(
        OSError("Unable to synchronously create file (errno = 28, ...: No space left on device)")
    )
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))


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
