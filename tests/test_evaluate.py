"""Evaluation: metrics on hand-made replies, and the library/CLI on a tiny trained run; bad
shares and an unwritable output folder refused before any decoding."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_bench import one_error_line, run_module

from seq2seq.inference.evaluation import (
    EvaluationError,
    check_writable,
    evaluate_run,
    read_pairs_file,
)
from seq2seq.inference.metrics import (
    degenerate_report,
    dialogue_metrics,
    distinct_n,
    metric_words,
    sentence_bleu_n,
)

REPO = Path(__file__).resolve().parents[1]

# -- distinct-n and the degenerate check (pure Python) ---------------------------------


def test_distinct_n_exact_values():
    texts = ["a b a", "a b"]
    # unigrams a b a | a b -> 5 total, 2 unique; bigrams (a b)(b a) | (a b) -> 3 total, 2 unique
    assert distinct_n(texts, 1) == pytest.approx(2 / 5)
    assert distinct_n(texts, 2) == pytest.approx(2 / 3)
    # n-grams never cross reply boundaries; texts too short for n contribute nothing
    assert distinct_n(["x", "y"], 2) == 0.0
    assert distinct_n([], 1) == 0.0
    assert distinct_n(["I am fine .", "I am here ."], 1) == pytest.approx(5 / 8)
    with pytest.raises(ValueError):
        distinct_n(texts, 0)


def test_bleu_n_is_plato_s_nltk_method7_per_sentence_mean():
    # "the cat sat ." against "the cat sat down .": every hypothesis n-gram matches, the
    # brevity penalty is exp(1 - 5/4); method 7 then raises BLEU-1 (it averages the
    # precisions of neighbouring orders, the zero-weighted ones too, as PLATO's weights did).
    assert metric_words("The cat sat.") == ["the", "cat", "sat", "."]
    one = sentence_bleu_n(["The cat sat."], ["the cat sat down."], 1)
    two = sentence_bleu_n(["The cat sat."], ["the cat sat down."], 2)
    assert one == pytest.approx(0.95187, abs=1e-5)
    assert two == pytest.approx(0.76831, abs=1e-5)
    # a reply sharing no word scores 0, as does an empty one; the result is the mean
    assert sentence_bleu_n(["yes", ""], ["no , thanks", "x"], 2) == 0.0
    mean = sentence_bleu_n(["The cat sat.", "yes"], ["the cat sat down.", "no"], 1)
    assert mean == pytest.approx(one / 2)
    assert sentence_bleu_n([], [], 1) == 0.0
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        sentence_bleu_n(["a", "b"], ["a"], 1)


def test_plato_protocol_reproduces_nltk_3_4_and_differs_from_current_nltk():
    # Expected values were computed once with NLTK 3.4's own bleu_score module (the version
    # PLATO's requirement.txt pins), on the same 13a words.
    long_reply, reference = ["Yes, I think so. What about you?"], ["OK."]
    assert sentence_bleu_n(long_reply, reference, 1) == pytest.approx(0.505104, abs=1e-6)
    assert sentence_bleu_n(long_reply, reference, 2) == pytest.approx(0.422485, abs=1e-6)
    # the current NLTK smooths the unmatched bigram order far less
    assert sentence_bleu_n(long_reply, reference, 2, "nltk") == pytest.approx(0.247134, abs=1e-6)
    # NLTK 3.4 divides by ln 1 on a one-word reply, which PLATO's code scored 0
    assert sentence_bleu_n(["Hello"], ["Hello there"], 1) == 0.0
    one_word = sentence_bleu_n(["Hello"], ["Hello there"], 1, "nltk")
    assert one_word == pytest.approx(0.367879, abs=1e-6)
    # with every n-gram matched there is nothing to smooth: both protocols agree
    assert sentence_bleu_n(["The cat sat."], ["the cat sat down."], 2, "nltk") == pytest.approx(
        sentence_bleu_n(["The cat sat."], ["the cat sat down."], 2)
    )
    with pytest.raises(ValueError, match="unknown BLEU-n protocol 'sacrebleu'"):
        sentence_bleu_n(long_reply, reference, 2, "sacrebleu")


def test_same_reply_for_every_input_is_degenerate_and_warned():
    inputs = [f"question number {i}?" for i in range(50)]
    replies = ["I don't know."] * 50
    metrics = dialogue_metrics(inputs, replies)
    assert metrics["degenerate_share"] == 1.0
    assert metrics["distinct_replies"] == 1
    assert metrics["stock_replies"][0] == {"reply": "i don't know.", "inputs": 50, "share": 1.0}
    assert metrics["warning"] and "degenerate" in metrics["warning"]
    # distinct-n counts lower-cased words with punctuation apart: "i don't know ." x 50
    assert metrics["distinct_1"] == pytest.approx(4 / 200)
    assert metrics["avg_reply_words"] == 3.0


def test_a_few_generic_replies_are_caught_too():
    inputs = [f"q{i}" for i in range(100)]
    replies = ["Yes.", "No.", "I don't know."] * 20 + [f"answer {i}" for i in range(40)]
    metrics = dialogue_metrics(inputs, replies)
    assert metrics["degenerate_share"] == pytest.approx(0.6)
    assert metrics["warning"]
    # the threshold is configurable
    assert dialogue_metrics(inputs, replies, degenerate_threshold=0.7)["warning"] is None


def test_varied_replies_are_not_degenerate():
    inputs = [f"question {i}" for i in range(50)]
    replies = [f"reply number {i} is here" for i in range(50)]
    metrics = dialogue_metrics(inputs, replies)
    assert metrics["degenerate_share"] == 0.0
    assert metrics["warning"] is None
    assert metrics["distinct_reply_ratio"] == 1.0


def test_degenerate_share_counts_distinct_inputs_and_normalises_replies():
    # the same input asked 10 times with the same answer is one input, not a stock reply
    report = degenerate_report(["hi"] * 10 + ["bye"], ["Hello!"] * 10 + ["See you."])
    assert report["distinct_inputs"] == 2
    assert report["degenerate_share"] == 0.0
    # replies differing only in case/spacing are the same reply
    report = degenerate_report(["a", "b", "c", "d"], ["OK .", "ok  .", "fine", "sure"])
    assert report["degenerate_share"] == pytest.approx(0.5)


# -- pairs files --------------------------------------------------------------------------


def test_pairs_file_bad_line_is_reported_with_file_and_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Hello.\tHola.\nno tab here\nBye.\tAdiós.\tCC-BY\n", encoding="utf-8")
    with pytest.raises(EvaluationError) as error:
        read_pairs_file(path)
    assert f"{path}:2: missing tab" in str(error.value)
    pairs, report = read_pairs_file(path, reverse=True, skip_bad_lines=True)
    assert pairs == [("Hola.", "Hello."), ("Adiós.", "Bye.")]
    assert [str(bad) for bad in report.bad] == [f"{path}:2: missing tab between the two sides"]


# -- a tiny trained run -------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_translation_run(tiny_run) -> Path:
    """The shared tiny trained translation run of ``conftest.py`` (digits -> Spanish)."""
    return tiny_run


@pytest.mark.slow
def test_evaluate_run_reports_bleu_chrf_perplexity_and_writes_hypotheses(
    tiny_translation_run, tmp_path
):
    from seq2seq.inference.evaluation import evaluate_run

    result = evaluate_run(tiny_translation_run, split="test", output_dir=tmp_path / "out")
    metrics = result["metrics"]
    assert result["task"] == "translation"
    assert result["pairs"] > 0
    # the tiny model has learned its digits (about 44 BLEU / 89 chrF on 15 test pairs)
    assert metrics["bleu"] > 25 and metrics["chrf"] > 70
    assert "tok:13a" in metrics["bleu_signature"] and "case:mixed" in metrics["bleu_signature"]
    assert metrics["chrf_signature"].startswith("nrefs:1")
    assert metrics["loss"] > 0 and metrics["perplexity"] == pytest.approx(
        2.718281828 ** metrics["loss"], rel=1e-6
    )
    assert metrics["loss_pairs"] == result["pairs"]
    hypotheses = (tmp_path / "out" / "hypotheses.txt").read_text(encoding="utf-8").splitlines()
    assert len(hypotheses) == result["pairs"]
    # the hypotheses file is aligned with the split's references, line by line
    from sacrebleu import corpus_bleu

    from seq2seq.config import load_run_config
    from seq2seq.data.corpora.loading import load_splits

    config = load_run_config(tiny_translation_run / "config.yaml")
    references = [pair.target for pair in load_splits(config.data)["test"]]
    assert corpus_bleu(hypotheses, [references]).score == pytest.approx(metrics["bleu"])
    shifted = corpus_bleu(hypotheses, [references[1:] + references[:1]]).score
    assert shifted < metrics["bleu"] - 10
    saved = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert saved["metrics"]["bleu"] == metrics["bleu"]
    assert "degenerate_share" not in metrics
    from seq2seq.inference.carry import carry_report

    sources = [pair.source for pair in load_splits(config.data)["test"]]
    assert metrics["carry"] == carry_report(sources, references, hypotheses)


@pytest.mark.slow
def test_evaluate_pairs_file_with_dialogue_metrics(tiny_translation_run, tmp_path):
    from seq2seq.inference.evaluation import evaluate_run, run_config
    from seq2seq.search.options import resolve_decode

    path = tmp_path / "mine.tsv"
    path.write_text("One two .\tUno dos .\nSeven .\tSiete .\n", "utf-8")  # English first
    decode = resolve_decode(run_config(tiny_translation_run), {"max_length": 8})
    result = evaluate_run(tiny_translation_run, pairs_file=path, task="dialogue", decode=decode)
    assert result["pairs_file"] == str(path) and result["pairs"] == 2
    assert result["decode"]["max_length"] == 8
    assert (tiny_translation_run / "eval-mine" / "hypotheses.txt").is_file()
    assert {"distinct_1", "distinct_2", "avg_reply_words", "degenerate_share"} <= set(
        result["metrics"]
    )


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "seq2seq.evaluate", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


def test_cli_bad_run_folder_exits_2_without_traceback(tmp_path):
    missing = run_cli("--model", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "run folder not found" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "notarun").mkdir()
    wrong = run_cli("--model", str(tmp_path / "notarun"))
    assert wrong.returncode == 2
    assert "not a seq2seq run folder" in wrong.stderr and "Traceback" not in wrong.stderr


@pytest.mark.slow
def test_cli_evaluates_and_reports_bad_pairs_lines(tiny_translation_run, tmp_path, capsys):
    good = run_cli(
        "--model", str(tiny_translation_run), "--max-sentences", "5",
        "--beam", "2", "--output-dir", str(tmp_path / "cli"),
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert "BLEU|nrefs:1|case:mixed|eff:no|tok:13a" in good.stdout
    assert "chrF2|nrefs:1" in good.stdout and "perplexity" in good.stdout
    assert len((tmp_path / "cli" / "hypotheses.txt").read_text("utf-8").splitlines()) == 5
    assert (
        json.loads((tmp_path / "cli" / "report.json").read_text("utf-8"))["decode"]["method"]
        == "beam"
    )

    bad = tmp_path / "bad.tsv"
    bad.write_text("One .\tUno .\n\tempty english\n", encoding="utf-8")
    # in-process (the run above is the real entry point): no second TensorFlow start-up
    from seq2seq.evaluate import main

    assert main(["--model", str(tiny_translation_run), "--pairs", str(bad)]) == 2
    stderr = capsys.readouterr().err
    assert f"{bad}:2: empty first column" in stderr
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_teacher_forced_loss_matches_the_training_dev_loss(tiny_translation_run, tiny_translator):
    from seq2seq.data.corpora.loading import load_splits
    from seq2seq.inference.evaluation import score
    from seq2seq.runs import RunPaths, read_metrics

    translator = tiny_translator
    dev = load_splits(translator.config.data)["dev"]
    result = score(translator, [p.source for p in dev], [p.target for p in dev], batch_size=64)
    # Keras averages per-batch means, we weight every token equally: close, not identical
    best = read_metrics(RunPaths(tiny_translation_run))["best"]["val_loss"]  # model.keras
    assert result["loss"] == pytest.approx(best, rel=0.05)
    assert result["loss_pairs"] == len(dev)


@pytest.mark.slow
def test_evaluate_with_a_glossary_reports_its_hit_rate(tiny_translation_run, tmp_path, capsys):
    from seq2seq.evaluate import main

    pairs = tmp_path / "mine.tsv"
    pairs.write_text("One two .\tUno dos .\nSeven .\tSiete .\nTwo six .\tDos seis .\n", "utf-8")
    glossary = tmp_path / "terms.tsv"
    glossary.write_text("two\tocho\n", "utf-8")
    run = ["--model", str(tiny_translation_run), "--pairs", str(pairs), "--beam", "3"]
    out = ["--output-dir", str(tmp_path / "out")]
    assert main([*run, *out, "--glossary", str(glossary)]) == 0
    printed = capsys.readouterr().out
    assert f"glossary {glossary}: 2 sources hold a source term; 2/2 target terms" in printed
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["metrics"]["glossary"]["hit_rate"] == 1.0
    hypotheses = (tmp_path / "out" / "hypotheses.txt").read_text(encoding="utf-8").lower()
    assert hypotheses.count("ocho") >= 2
    # greedy with a glossary: refused before the model loads
    assert main([*run[:4], "--method", "greedy", "--glossary", str(glossary)]) == 2
    assert "a glossary constrains beam search only" in capsys.readouterr().err


# -- refusals before any work: shares out of range, an output folder that cannot be written


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
