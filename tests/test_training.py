"""Training end to end on real Tatoeba pairs: loss falls, runs resume after a kill."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from seq2seq.config import load_config
from seq2seq.runs import RunError, open_run
from seq2seq.training.data import evenly_spaced
from seq2seq.training.loop import train

TINY = [
    "data.max_pairs=3000",
    "data.source_vocab_size=600",
    "data.target_vocab_size=600",
    "model.embedding_dim=48",
    "model.hidden_size=48",
    "train.dev_bleu_sentences=100",
]


def epochs_in(history) -> list[int]:
    with open(history, newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_tiny_model_learns_from_real_pairs(shared_data_dir, tmp_path):
    config = load_config("quickstart", overrides=[*TINY, "train.epochs=3"])
    metrics = train(config, tmp_path / "run", verbose=0)
    losses = [epoch["loss"] for epoch in metrics["epochs"]]
    dev_losses = [epoch["val_loss"] for epoch in metrics["epochs"]]
    # The output bias starts at the unigram distribution, so epoch 1 is already past the
    # easy part: require a steady fall of train and dev loss rather than a large ratio.
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0] * 0.92, losses
    assert dev_losses == sorted(dev_losses, reverse=True), dev_losses
    assert metrics["pairs"]["train"] > 2000 and metrics["finished"]
    assert all("dev_bleu" in epoch for epoch in metrics["epochs"])
    paths = open_run(tmp_path / "run")
    assert paths.best_model.is_file() and paths.last_model.is_file()
    assert (paths.source_vocab / "spm.model").is_file()
    assert any(paths.logs.rglob("events.out.tfevents.*")), "TensorBoard logs written"


def test_dev_bleu_sentences_are_spread_over_the_whole_dev_split():
    # Anki's file is sorted by length: the first dev pairs are the shortest sentences.
    assert evenly_spaced(list(range(10)), 3) == [0, 3, 6]
    assert evenly_spaced(list(range(1000)), 4) == [0, 250, 500, 750]
    assert evenly_spaced(list(range(4)), 9) == [0, 1, 2, 3]
    assert evenly_spaced(list(range(4)), 0) == []


def test_existing_run_is_not_overwritten(tmp_path):
    config = load_config("quickstart", overrides=TINY)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("name: x\n")
    with pytest.raises(RunError, match="already holds a run; pass --resume"):
        train(config, tmp_path / "run")
    with pytest.raises(RunError, match="nothing to resume"):
        train(config, tmp_path / "empty", resume=True)


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_epoch(shared_data_dir, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "seq2seq.train", "--preset", "quickstart"]
    command += ["--output", str(run), *TINY, "train.epochs=3"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    history = run / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if history.is_file() and epochs_in(history) == [0]:
            break
        time.sleep(0.2)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "last.keras").exists()

    resumed = subprocess.run(
        [sys.executable, "-m", "seq2seq.train", "--output", str(run), "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert epochs_in(history) == [0, 1, 2], "epoch 0 is not trained twice"
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert metrics["finished"]


def test_train_cli_reports_bad_config_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "seq2seq.train", "--preset", "quickstart", "model.cell=transformer"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "model.cell is 'transformer'; allowed: gru, lstm, rnn" in result.stderr
    assert "Traceback" not in result.stderr


def test_output_bias_starts_at_the_unigram_distribution():
    """Guards against the collapse seen on DailyDialog (saturated tanh layers, constant output)."""
    import numpy as np
    from keras import ops

    from seq2seq.config import ModelConfig
    from seq2seq.model import build_model
    from seq2seq.training.loop import initialise_output_bias

    counts = np.array([0, 0, 0, 3, 3, 1, 1, 1, 0, 0], "float64")  # END (3) once per sentence
    model = build_model(ModelConfig(embedding_dim=8, hidden_size=8, dropout=0.0), 12, 10)
    model.decoder.projection.kernel.assign(np.zeros((8, 10), "float32"))
    initialise_output_bias(model, counts)
    source = np.array([[5, 6, 0]], "int32")
    logits = model((source, np.array([[2, 4]], "int32")))
    probabilities = ops.softmax(logits, axis=-1).numpy()[0, 0]
    expected = (counts + 1) / (counts.sum() + 10)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5)


def test_early_stopping_patience_survives_a_resume(tmp_path):
    """Epochs recorded before the crash count: BLEU 10, 12, 11, 11 with patience 3 has
    waited 2 epochs, so one more epoch without gain stops the resumed run."""
    import keras

    from seq2seq.runs import RunPaths, write_metrics
    from seq2seq.training.callbacks import ResumableEarlyStopping, ResumablePlateau

    paths = RunPaths(tmp_path).create()
    scores = [10.0, 12.0, 11.0, 11.0]
    write_metrics(
        paths, {"epochs": [{"epoch": i + 1, "dev_bleu": s} for i, s in enumerate(scores)]}
    )
    stopper = ResumableEarlyStopping(paths, monitor="dev_bleu", mode="max", patience=3)
    stopper.set_model(keras.Sequential([keras.layers.Dense(1)]))
    stopper.on_train_begin()
    assert (stopper.wait, stopper.best, stopper.best_epoch) == (2, 12.0, 1)
    stopper.on_epoch_end(4, {"dev_bleu": 11.5})
    assert stopper.model.stop_training

    # The LR plateau too: dev loss 3.0, 2.9, 3.0 with patience 1 lowered the rate after the
    # third epoch (the optimizer's state brings the rate back); the wait starts again at 0.
    write_metrics(
        paths,
        {"epochs": [{"epoch": i + 1, "val_loss": v} for i, v in enumerate([3.0, 2.9, 3.0])]},
    )
    plateau = ResumablePlateau(paths, monitor="val_loss", patience=2)
    plateau.set_model(stopper.model)
    plateau.on_train_begin()
    assert (plateau.best, plateau.wait) == (2.9, 1)
    plateau = ResumablePlateau(paths, monitor="val_loss", patience=1)
    plateau.set_model(stopper.model)
    plateau.on_train_begin()
    assert (plateau.best, plateau.wait) == (2.9, 0)

    fresh = ResumableEarlyStopping(
        RunPaths(tmp_path / "new").create(), monitor="dev_bleu", mode="max"
    )
    fresh.set_model(keras.Sequential([keras.layers.Dense(1)]))
    fresh.on_train_begin()
    assert fresh.wait == 0 and fresh.best is None
