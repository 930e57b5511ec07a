"""The samples in data/ are read by the real readers, and the README's own-TSV example works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seq2seq.config import load_config
from seq2seq.data.corpora.loading import load_splits
from seq2seq.data.corpora.readers import LineReport, read_dailydialog
from seq2seq.inference.evaluation import read_pairs_file

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "sample"


def readme_example() -> list[str]:
    """The ``section.field=value`` overrides of data/README.md's training command."""
    text = (REPO / "data" / "README.md").read_text(encoding="utf-8")
    command = re.search(r"python -m seq2seq.train (.*?)\n(?!\s)", text, re.S).group(1)
    return [word for word in command.replace("\\\n", " ").split() if "=" in word]


def test_sample_pairs_are_clean_anki_layout():
    pairs, report = read_pairs_file(SAMPLES / "pairs.tsv")
    assert len(pairs) == report.total == 48 and not report.bad
    assert pairs[0] == (
        "Good morning, Clara from the bakery.",
        "Buenos días, Clara de la panadería.",
    )
    reversed_pairs, _ = read_pairs_file(SAMPLES / "pairs.tsv", reverse=True)
    assert reversed_pairs[0] == (
        "Buenos días, Clara de la panadería.",
        "Good morning, Clara from the bakery.",
    )


def test_sample_dialogues_are_clean_dailydialog_layout():
    report = LineReport()
    dialogues = list(read_dailydialog(SAMPLES / "dialogues.txt", report))
    assert len(dialogues) == 10 and not report.bad
    assert dialogues[-1][1] == [
        "Is the shop open on Sundays?",
        "Only in the morning, until one.",
        "Then I will go early.",
    ]


def test_readme_example_config_splits_the_sample_without_leaks(monkeypatch):
    monkeypatch.chdir(REPO)  # the README's path is relative to the repository
    config = load_config("quickstart", overrides=readme_example())
    splits = load_splits(config.data)
    assert sum(len(pairs) for pairs in splits.values()) == 48
    assert all(splits.values()), "train, dev and test all get pairs"
    sources = {name: {pair.source for pair in pairs} for name, pairs in splits.items()}
    assert not sources["train"] & (sources["dev"] | sources["test"])


@pytest.mark.slow
def test_readme_example_trains_and_evaluates(tmp_path, monkeypatch):
    from seq2seq.inference.evaluation import evaluate_run
    from seq2seq.runs import RunPaths, read_metrics
    from seq2seq.training.loop import train

    monkeypatch.chdir(REPO)
    config = load_config(
        "quickstart", overrides=[*readme_example(), "train.epochs=1", "train.mixed_precision='off'"]
    )
    run = tmp_path / "run"
    train(config, run, verbose=0)
    assert [epoch["epoch"] for epoch in read_metrics(RunPaths(run))["epochs"]] == [1]
    decode = config.decode.replace(max_length=5)
    result = evaluate_run(run, pairs_file=SAMPLES / "pairs.tsv", decode=decode)
    assert result["pairs"] == 48 and result["decode"]["max_length"] == 5
    outputs = (run / "eval-pairs" / "hypotheses.txt").read_text(encoding="utf-8").splitlines()
    assert len(outputs) == 48
