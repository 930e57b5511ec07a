"""Ctrl-C or SIGTERM in the middle of an epoch keeps the epoch so far (a mid-epoch state in
``backup/``), and ``--resume`` goes on with the batch it stopped at: the epoch ends with the
loss and weights of a run that was never stopped; SIGTERM ends training like Ctrl-C, with one
line naming the resume command."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REPO
from test_checkpoints import recorded_epochs, train
from test_distributed import NO_DEV_BLEU, environment, write_config

from seq2seq.runs import RunPaths, open_run, read_progress
from seq2seq.training.interrupts import BetweenSteps, Terminated, raise_terminated
from seq2seq.training.mid_epoch import restore_mid_epoch, resume_point

STEPS = 6  # per epoch; SIGTERM comes after the 2nd step of epoch 2
STATE = "mid-epoch-0002-batch-00000002"


def weights(file: Path) -> dict[str, np.ndarray]:
    """Every array of a Keras weights file, by its path inside the file."""
    found = {}
    with h5py.File(file, "r") as handle:
        handle.visititems(
            lambda name, item: (
                found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None
            )
        )
    return found


@pytest.mark.slow
def test_sigterm_mid_epoch_keeps_the_epoch_so_far_and_resume_continues_it(
    tmp_path, monkeypatch, caplog
):
    config = write_config(tmp_path, epochs=2, steps_per_epoch=STEPS, **NO_DEV_BLEU)
    env = environment(tmp_path)
    straight, run = tmp_path / "straight", tmp_path / "run"
    never_stopped = train(["--config", str(config), "--output", str(straight)], env)
    assert never_stopped.returncode == 0, never_stopped.stderr[-3000:]

    # The test seam sends SIGTERM from inside the 8th step's bookkeeping, as a scheduler would.
    stopped = train(
        ["--config", str(config), "--output", str(run)], env, SEQ2SEQ_TERM_AT=f"step:{STEPS + 2}"
    )
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == (
        f"terminated (SIGTERM): {run} keeps epoch 2 up to batch 2 of {STEPS}; "
        f"continue with python -m seq2seq.train --output {run} --resume"
    )
    assert recorded_epochs(run) == [1]
    backup = RunPaths(run).backup
    assert sorted(p.name for p in backup.iterdir()) == ["epoch-0001", STATE]
    state = json.loads((backup / STATE / "state.json").read_text())
    assert (state["epochs_done"], state["batches_done"], state["steps"]) == (1, 2, STEPS)

    # Resumed here, in-process, to count the steps it trains.
    from seq2seq.training import loop
    from seq2seq.training.step import Trainer

    steps = []
    step = Trainer.step
    monkeypatch.setattr(Trainer, "step", lambda self, batch: steps.append(1) or step(self, batch))
    caplog.set_level(logging.INFO, logger="seq2seq")
    metrics = loop.train(None, run, resume=True, verbose=0)
    assert len(steps) == STEPS - 2, "the resumed epoch starts at batch 3, not batch 1"
    assert f"epoch 2 goes on after batch 2 of {STEPS}" in caplog.text
    assert metrics["finished"] and recorded_epochs(run) == [1, 2]
    assert sorted(p.name for p in backup.iterdir()) == ["epoch-0001", "epoch-0002"]

    # The same epoch 2 as the run that was never stopped: its loss over all 6 batches, and
    # its weights (a resume that trained batches 1 and 2 again would differ).
    expected = json.loads((straight / "metrics.json").read_text())["epochs"]
    for got, want in zip(metrics["epochs"], expected, strict=True):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
    ours = weights(backup / "epoch-0002" / "model.weights.h5")
    theirs = weights(straight / "backup" / "epoch-0002" / "model.weights.h5")
    assert ours.keys() == theirs.keys() and ours
    for name, array in ours.items():
        np.testing.assert_allclose(array, theirs[name], rtol=1e-5, atol=1e-6, err_msg=name)

    from seq2seq.inference.translator import Translator

    open_run(run)
    assert Translator.from_run(run).translate(["one two ."])[0].text


def test_a_mid_epoch_state_behind_the_newest_epoch_state_is_deleted_not_used(tmp_path):
    paths = RunPaths(tmp_path)
    paths.config.write_text("name: tiny\n")
    stale = paths.backup / "mid-epoch-0001-batch-00000004"
    stale.mkdir(parents=True)
    stale_state = {"epochs_done": 0, "batches_done": 4, "steps": 9, "loss_sum": 1, "tokens": 2}
    (stale / "state.json").write_text(json.dumps(stale_state))
    (paths.backup / "epoch-0001").mkdir()
    assert resume_point(tmp_path) == "keeps its last finished epoch"
    # Not loaded (no model is needed to refuse it), and deleted by the chief.
    assert restore_mid_epoch(paths, None, None, epochs_done=1, is_chief=True) is None
    assert not stale.exists()

    current = paths.backup / "mid-epoch-0002-batch-00001200"
    current.mkdir()
    state = {"epochs_done": 1, "batches_done": 1200, "steps": 1640, "loss_sum": 1, "tokens": 2}
    (current / "state.json").write_text(json.dumps(state))
    assert resume_point(tmp_path) == "keeps epoch 2 up to batch 1,200 of 1,640"
    (paths.backup / "epoch-0001").rmdir()
    assert resume_point(tmp_path) == "has no finished epoch yet"
    assert resume_point(tmp_path / "nothing") is None


def test_ctrl_c_and_sigterm_wait_for_the_step_in_progress():
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        with BetweenSteps() as interrupts:
            os.kill(os.getpid(), signal.SIGTERM)  # held: the step goes on
            os.kill(os.getpid(), signal.SIGINT)  # the first signal is the one raised
            with pytest.raises(Terminated):
                interrupts.check()
            interrupts.check()  # raised once only
        with pytest.raises(KeyboardInterrupt):  # held to the end of the block, then raised
            with BetweenSteps():
                os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):  # outside the block: at once, as before
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGTERM) is raise_terminated
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.slow
def test_sigterm_mid_epoch_ends_like_ctrl_c_and_resume_continues(tmp_path):
    config = write_config(tmp_path, epochs=50, steps_per_epoch=200, **NO_DEV_BLEU)
    env = environment(tmp_path)
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "seq2seq.train", "--config", str(config), "--output", str(run)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while read_progress(RunPaths(run)).get("epoch", 0) < 2 and process.poll() is None:
            assert time.monotonic() < deadline, "training never reached epoch 2"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("terminated (SIGTERM):")
    assert f"python -m seq2seq.train --output {run} --resume" in last
    assert recorded_epochs(run)[:1] == [1]
    done = train(["--output", str(run), "--resume", "train.epochs=2"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert recorded_epochs(run) == [1, 2]
