"""One writer per run folder (an OS lock a crash releases), and the vocabulary fingerprint
that binds a model to its tokenizers; a new output folder that cannot be created is refused
before any work."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_distributed import NO_DEV_BLEU, environment, write_config

from seq2seq import run_lock
from seq2seq.run_lock import RunLockError, check_new_folder
from seq2seq.runs import RunError

REPO = Path(__file__).resolve().parents[1]
HOLD = (
    "import sys; from seq2seq import run_lock; "
    "run_lock.acquire(sys.argv[1], 'training'); print('held', flush=True); sys.stdin.read()"
)


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s lock until its stdin closes."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def release(holder: subprocess.Popen) -> None:
    holder.stdin.close()
    holder.wait(timeout=60)


def run_cli(module: str, args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_second_writer_is_refused_naming_the_holder_and_a_crash_frees_the_lock(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = hold_lock(folder)
    try:
        with pytest.raises(RunLockError) as refused:
            run_lock.acquire(folder, "training")
        message = str(refused.value)
        assert f"PID {holder.pid} on {socket.gethostname()}" in message
        assert run_lock.is_locked(folder)
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: no clean-up code runs
        holder.wait(timeout=60)
    assert not run_lock.is_locked(folder)
    lock = run_lock.acquire(folder, "training")  # the kernel released it
    assert run_lock.acquire(folder, "training") is lock  # the holder may take it again
    assert f"PID {os.getpid()}" in run_lock.holder(folder)
    run_lock.release(folder)
    assert not run_lock.is_locked(folder)


def test_two_writers_racing_for_a_new_folder(tmp_path):
    out = tmp_path / "new"
    run_lock.claim_new_folder(out, "export")
    try:
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from seq2seq import run_lock; "
                "run_lock.claim_new_folder(sys.argv[1], 'export')",
                str(out),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert child.returncode != 0
        assert f"is being written by PID {os.getpid()}" in child.stderr
    finally:
        run_lock.release(out)
    with pytest.raises(RunError, match="already exists"):
        run_lock.claim_new_folder(out, "export")


def test_training_and_resume_into_a_locked_folder_are_refused_at_once(tmp_path):
    config = write_config(tmp_path, epochs=1, steps_per_epoch=2, **NO_DEV_BLEU)
    env = environment(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(config, run / "config.yaml")  # a run to resume
    holder = hold_lock(run)
    try:
        resumed = run_cli("seq2seq.train", ["--output", str(run), "--resume"], env)
        other = tmp_path / "other"
        other.mkdir()
        second = hold_lock(other)
        try:
            fresh = run_cli("seq2seq.train", ["--config", str(config), "--output", str(other)], env)
        finally:
            release(second)
    finally:
        release(holder)
    for result, pid in ((resumed, holder.pid), (fresh, second.pid)):
        assert result.returncode == 2, result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert f"is in use by PID {pid} on {socket.gethostname()}" in lines[0]
    assert sorted(p.name for p in run.iterdir()) == [".lock", "config.yaml"], "nothing written"
    assert [p.name for p in other.iterdir()] == [".lock"]


@pytest.mark.slow
def test_two_trainings_on_one_output_one_is_refused(tmp_path):
    """The reported race: both start together; one trains, the other exits 2 at once
    (whichever locks first), and the run left is one run's, whole."""
    config = write_config(tmp_path, epochs=2, steps_per_epoch=3, **NO_DEV_BLEU)
    env = environment(tmp_path)
    run = tmp_path / "run"
    args = [sys.executable, "-m", "seq2seq.train", "--config", str(config), "--output", str(run)]
    first = subprocess.Popen(args, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(args, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    errors = [first.communicate(timeout=600)[1], second.communicate(timeout=600)[1]]
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 2], errors
    refusal = errors[[first.returncode, second.returncode].index(2)]
    assert "is in use by PID" in refusal or "already holds a run" in refusal, refusal
    assert "Traceback" not in refusal


def fake_run(folder: Path) -> Path:
    """Enough of a run folder for the output checks that come before any loading."""
    for name in ("source_vocab", "target_vocab"):
        (folder / name).mkdir(parents=True)
    (folder / "FORMAT").write_text("1\n")
    (folder / "config.yaml").write_text("name: x\n")
    (folder / "model.keras").write_bytes(b"")
    return folder


@pytest.mark.parametrize("module", ["seq2seq.average", "seq2seq.export"])
def test_average_and_export_into_a_folder_being_written_are_refused(tmp_path, module):
    run = fake_run(tmp_path / "run")
    out = tmp_path / "out"
    out.mkdir()
    holder = hold_lock(out)
    try:
        args = ["--model", str(run), "--output", str(out)]
        if module == "seq2seq.average":
            args += ["--last", "2"]
        result = run_cli(module, args)
    finally:
        release(holder)
    assert result.returncode == 2
    assert f"is being written by PID {holder.pid}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- the vocabulary fingerprint ---------------------------------------------------------


@pytest.mark.slow
def test_tokenizers_swapped_in_from_another_run_are_refused(tiny_run, tmp_path):
    from seq2seq.inference.translator import Translator

    assert (tiny_run / "vocabularies.sha256").is_file()
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("backup", "logs", "eval-*"))
    Translator.from_run(run)  # its own tokenizers: fine
    vocab = run / "target_vocab" / "vocab.txt"
    words = vocab.read_text(encoding="utf-8").split("\n")
    words[-3], words[-2] = words[-2], words[-3]  # same size, two ids swapped
    vocab.write_text("\n".join(words), encoding="utf-8")
    with pytest.raises(RunError, match="not the tokenizers this model was trained with"):
        Translator.from_run(run)
    result = run_cli("seq2seq.translate", ["--model", str(run)])
    assert result.returncode == 2
    assert "not the tokenizers this model was trained with" in result.stderr
    assert "Traceback" not in result.stderr
    # A run from before fingerprints (none recorded) still loads.
    (run / "vocabularies.sha256").unlink()
    Translator.from_run(run)


@pytest.mark.slow
def test_resume_refuses_swapped_tokenizers_and_average_keeps_fingerprint(tiny_run, tmp_path):
    from seq2seq.average import average_run
    from seq2seq.training.loop import train

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("logs", "eval-*"))
    averaged = tmp_path / "avg"
    average_run(run, 2, averaged)
    assert (averaged / "vocabularies.sha256").read_text() == (
        run / "vocabularies.sha256"
    ).read_text()
    assert not (averaged / ".lock").exists()
    (run / "source_vocab" / "vocab.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(RunError, match="not the tokenizers"):
        train(None, run, resume=True, epochs=6, verbose=0)


def test_new_output_folders_that_cannot_be_created_are_refused_first(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="cannot create .*file/out: .*file is not a folder"):
        check_new_folder(tmp_path / "file" / "out")
    check_new_folder(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()
