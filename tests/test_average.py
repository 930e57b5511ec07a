"""Checkpoint averaging: the mean of the last K epoch weights becomes an ordinary run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from seq2seq.average import AverageError, average_run, last_checkpoints, main
from seq2seq.inference.translator import Translator
from seq2seq.runs import RunError, RunPaths, open_run
from seq2seq.training.checkpoints import epoch_weights as epoch_checkpoints
from seq2seq.training.checkpoints import epoch_weights_file as checkpoint_path

SENTENCES = ["One two three .", "Nine eight ."]


def load_model(run):
    import keras

    import seq2seq.model  # noqa: F401  (registers the model classes)

    return keras.models.load_model(open_run(run).best_model, safe_mode=True, compile=False)


def float_weights(model) -> list[np.ndarray]:
    return [w.numpy() for w in model.weights if np.issubdtype(np.dtype(w.dtype), np.floating)]


@pytest.fixture
def run_with_checkpoints(tiny_run, tmp_path):
    """A copy of ``tiny_run`` holding epochs 1-3 as the training loop writes them:
    epoch e has the trained weights + e * noise (noise fixed, small)."""
    run = tmp_path / "run"
    ignore = shutil.ignore_patterns("backup", "checkpoints", "eval-*")
    shutil.copytree(tiny_run, run, ignore=ignore)
    model = load_model(run)
    base = [w.numpy() for w in model.weights]
    noise = [
        np.random.default_rng(i).normal(0, 1e-3, b.shape).astype(b.dtype)
        if np.issubdtype(b.dtype, np.floating)
        else np.zeros_like(b)
        for i, b in enumerate(base)
    ]
    for epoch in (1, 2, 3):
        for weight, b, n in zip(model.weights, base, noise, strict=True):
            weight.assign(b + epoch * n)
        path = checkpoint_path(run, epoch)
        path.parent.mkdir(exist_ok=True)
        model.save_weights(path)
    return run, base, noise


@pytest.mark.slow
def test_average_of_last_two_epochs_is_a_usable_run(run_with_checkpoints, tmp_path):
    from seq2seq.evaluate import evaluate_run
    from seq2seq.exporting.exporters import export_saved_model

    run, base, noise = run_with_checkpoints
    assert list(epoch_checkpoints(run)) == [1, 2, 3]
    out = tmp_path / "avg"
    assert average_run(run, 2, out) == [2, 3]
    averaged = load_model(out)
    expected = [
        b + 2.5 * n for b, n in zip(base, noise, strict=True) if np.issubdtype(b.dtype, np.floating)
    ]
    for got, want in zip(float_weights(averaged), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["averaged"]["epochs"] == [2, 3]
    assert metrics["averaged"]["checkpoints"] == ["epoch-0002.weights.h5", "epoch-0003.weights.h5"]
    for name in ("config.yaml", "FORMAT", "source_vocab/tokenizer.json", "target_vocab/vocab.txt"):
        assert (out / name).is_file(), name
    # Evaluates, translates and exports like any other run.
    translations = Translator.from_run(out).translate(SENTENCES)
    assert all(t.text for t in translations)
    report = evaluate_run(out, split="test", output_dir=tmp_path / "eval")
    assert report["pairs"] > 0 and report["metrics"]["bleu"] >= 0.0
    export_saved_model(out, tmp_path / "export")
    assert (tmp_path / "export" / "saved_model.pb").is_file()


def test_averaging_identical_checkpoints_changes_nothing(tiny_run, tmp_path):
    run = tmp_path / "run"
    ignore = shutil.ignore_patterns("backup", "checkpoints", "eval-*")
    shutil.copytree(tiny_run, run, ignore=ignore)
    model = load_model(run)
    for epoch in (4, 5):
        path = checkpoint_path(run, epoch)
        path.parent.mkdir(exist_ok=True)
        model.save_weights(path)
    average_run(run, 2, tmp_path / "avg")
    for got, want in zip(
        float_weights(load_model(tmp_path / "avg")), float_weights(model), strict=True
    ):
        np.testing.assert_array_equal(got, want)


def test_clear_errors(run_with_checkpoints, tmp_path, capsys):
    run, _, _ = run_with_checkpoints
    with pytest.raises(AverageError, match="--last is 0; allowed: a whole number >= 1"):
        average_run(run, 0, tmp_path / "a")
    with pytest.raises(AverageError, match=r"holds 3 epoch checkpoint\(s\) \(epochs: 1, 2, 3\)"):
        average_run(run, 4, tmp_path / "a")
    (tmp_path / "taken").mkdir()
    with pytest.raises(AverageError, match="already exists"):
        average_run(run, 2, tmp_path / "taken")
    with pytest.raises(RunError, match="run folder not found"):
        average_run(tmp_path / "missing", 2, tmp_path / "a")
    checkpoint_path(run, 4).write_bytes(b"not an h5 file")
    with pytest.raises(AverageError, match="epoch-0004.weights.h5: not a checkpoint"):
        average_run(run, 2, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "taken"], "nothing left behind"

    code = main(["--model", str(run), "--last", "7", "--output", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot average the last 7" in err and "Traceback" not in err


def test_run_without_checkpoints(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    ignore = shutil.ignore_patterns("backup", "checkpoints", "eval-*")
    shutil.copytree(tiny_run, run, ignore=ignore)
    assert main(["--model", str(run), "--last", "1", "--output", str(tmp_path / "o")]) == 2
    assert "holds 0 epoch checkpoint(s) (epochs: none)" in capsys.readouterr().err


@pytest.mark.slow
def test_training_keeps_the_epoch_weights_that_averaging_reads(tiny_run, tmp_path):
    """The contract between the training loop and averaging, on a really trained run."""
    assert list(epoch_checkpoints(tiny_run)) == [1, 2, 3, 4, 5]  # train.keep_checkpoints=5
    average_run(tiny_run, 2, tmp_path / "averaged")
    last = load_model(tiny_run)  # sanity: the run itself still opens
    averaged = load_model(tmp_path / "averaged")
    assert len(float_weights(averaged)) == len(float_weights(last))
    assert Translator.from_run(tmp_path / "averaged").translate(SENTENCES)[0].text


def fake_checkpoints(run: Path, epochs: list[int]) -> None:
    folder = RunPaths(run).checkpoints
    folder.mkdir(parents=True)
    for epoch in epochs:
        (folder / f"epoch-{epoch:04d}.weights.h5").write_bytes(b"")


def test_averaging_refuses_epochs_with_a_gap_unless_asked(tmp_path):
    fake_checkpoints(tmp_path, [1, 2, 4])
    with pytest.raises(AverageError, match=r"epochs 2, 4, not consecutive: epoch\(s\) 3 missing"):
        last_checkpoints(tmp_path, 2)
    assert list(last_checkpoints(tmp_path, 2, allow_gaps=True)) == [2, 4]
    assert list(last_checkpoints(tmp_path, 1)) == [4]
