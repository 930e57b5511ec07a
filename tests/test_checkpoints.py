"""The run's saves (training states, averaging checkpoints, models) and their faults: a full
disk, a kill while an averaging checkpoint is renamed; and what the saves hold (weights only,
but the backup)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_distributed import NO_DEV_BLEU, environment, write_config

from seq2seq.runs import DiskFullError, RunPaths

REPO = Path(__file__).resolve().parents[1]


def train(args: list[str], env: dict, **faults: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seq2seq.train", *args],
        cwd=REPO,
        env={**env, **faults},
        capture_output=True,
        text=True,
        timeout=600,
    )


def recorded_epochs(run: Path) -> list[int]:
    return [e["epoch"] for e in json.loads((run / "metrics.json").read_text())["epochs"]]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def has_optimizer(h5: Path | h5py.File) -> bool:
    if isinstance(h5, Path):
        with h5py.File(h5, "r") as file:
            return has_optimizer(file)
    return "optimizer" in h5 and len(h5["optimizer"].get("vars", {})) > 0


def test_a_save_that_would_not_fit_is_refused_before_writing(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import keras

    from seq2seq.training import checkpoints

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1000)])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    paths = RunPaths(tmp_path)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10**9, 10**9, 1 << 20))
    with pytest.raises(DiskFullError, match=r"disk full: the state needs about .* MB free"):
        checkpoints.save_state(paths, model, optimizer, 1)
    assert list(paths.backup.iterdir()) == [], "nothing half-written"
    with pytest.raises(DiskFullError, match="epoch-0001.weights.h5 needs about"):
        checkpoints.save_epoch_weights(paths, model, 1, keep=5)


@pytest.mark.slow
def test_a_disk_that_fills_during_saves_ends_with_one_line_and_resume_recovers(tmp_path):
    config = write_config(tmp_path, epochs=3, steps_per_epoch=3, **NO_DEV_BLEU)
    env = environment(tmp_path)
    run = tmp_path / "run"
    # The second epoch's training state hits ENOSPC (injected: SEQ2SEQ_FULL_DISK_AT).
    full = train(
        ["--config", str(config), "--output", str(run)], env, SEQ2SEQ_FULL_DISK_AT="state:2"
    )
    assert full.returncode == 2, full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    (line,) = error_lines(full.stderr)
    assert line.startswith("error: disk full while writing") and "No space left" in line
    assert f"python -m seq2seq.train --output {run} --resume" in line
    assert not list(run.rglob(".partial-*")), "the failed state was dropped whole"
    # Then model.keras, the first time the best model is written after the resume.
    resume = ["--output", str(run), "--resume"]
    full = train(resume, env, SEQ2SEQ_FULL_DISK_AT="model.keras:1")
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-3000:]
    assert error_lines(full.stderr)[0].startswith("error: disk full while writing")
    done = train(resume, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert recorded_epochs(run) == [1, 2, 3]


@pytest.mark.slow
def test_a_kill_while_renaming_a_checkpoint_loses_no_epoch_and_saves_hold_weights_only(tmp_path):
    """The reported case: killed between writing and renaming epoch 3's averaging
    checkpoint. The resume rewrites it, the .partial file goes, and averaging the last 2
    takes epochs 3 and 4. Every file but the backup holds the weights alone."""
    config = write_config(tmp_path, epochs=3, steps_per_epoch=3, keep_checkpoints=5, **NO_DEV_BLEU)
    env = environment(tmp_path)
    run = tmp_path / "run"
    killed = train(
        ["--config", str(config), "--output", str(run)],
        env,
        SEQ2SEQ_KILL_AT="epoch-0003.weights.h5:1",
    )
    assert killed.returncode == -9
    checkpoints = RunPaths(run).checkpoints
    assert (checkpoints / ".partial-epoch-0003.weights.h5").is_file()
    assert sorted(p.name for p in checkpoints.glob("epoch-*")) == [
        "epoch-0001.weights.h5",
        "epoch-0002.weights.h5",
    ]
    resumed = train(["--output", str(run), "--resume", "train.epochs=4"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert recorded_epochs(run) == [1, 2, 3, 4]
    assert not list(run.rglob(".partial-*")), "leftover .partial files are cleaned up"
    averaged = subprocess.run(
        [sys.executable, "-m", "seq2seq.average", "--model", str(run), "--last", "2"]
        + ["--output", str(tmp_path / "avg")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert averaged.returncode == 0, averaged.stderr[-3000:]
    assert json.loads(averaged.stdout.strip().splitlines()[-1])["averaged_epochs"] == [3, 4]

    # Weights only in the checkpoints and the models; the optimizer state in the backup.
    for checkpoint in checkpoints.glob("epoch-*.weights.h5"):
        assert not has_optimizer(checkpoint), checkpoint.name
    for name in ("model.keras", "last.keras"):
        with zipfile.ZipFile(run / name) as archive, archive.open("model.weights.h5") as inner:
            with h5py.File(inner, "r") as weights:
                assert not has_optimizer(weights), name
    (state,) = sorted((run / "backup").glob("epoch-0004"))
    assert not has_optimizer(state / "model.weights.h5")
    with np.load(state / "optimizer.npz") as optimizer:
        assert len(optimizer.files) > 3  # Adam's iteration count, rate and two slots per weight


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs (root only; skipped elsewhere), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Fill ``folder``'s file system but ``leave`` bytes."""
    import shutil

    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as handle:
        handle.truncate(0)
        handle.write(b"\0" * max(free - leave, 0))


NO_FREE_SPACE_CHECK = (
    "import sys, seq2seq.runs as r, seq2seq.training.checkpoints as c, "
    "seq2seq.training.callbacks as b, seq2seq.training.run_folder as f; "
    "r.check_free_space = c.check_free_space = b.check_free_space = f.check_free_space = "
    "lambda *a: None; from seq2seq.train import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.slow
def test_a_real_full_disk_ends_with_one_line(tmp_path, small_disk):
    """On a real small tmpfs: the free-space check refuses the first save; with the check
    switched off, the failed write itself (h5py, or a JSON record) ends the same way,
    without the segfault (exit 139) h5py's teardown gave."""
    config = write_config(tmp_path, epochs=2, steps_per_epoch=2, **NO_DEV_BLEU)
    env = environment(tmp_path)
    run = small_disk / "run"
    checked = train(["--config", str(config), "--output", str(run)], env)
    assert checked.returncode == 2, checked.stderr[-3000:]
    (line,) = error_lines(checked.stderr)
    assert line.startswith("error: disk full: model.keras needs about") and "MB free" in line
    assert "Traceback" not in checked.stderr
    shutil_rmtree(run)
    fill(small_disk, leave=48 * 1024)  # the config and tokenizers fit, the state does not
    raw = subprocess.run(
        [sys.executable, "-c", NO_FREE_SPACE_CHECK, "--config", str(config), "--output", str(run)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert raw.returncode == 2, raw.stderr[-3000:]
    assert "Traceback" not in raw.stderr
    errors = error_lines(raw.stderr)
    assert len(errors) == 1 and errors[0].startswith("error: disk full while writing"), errors


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
