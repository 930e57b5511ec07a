"""MMI reranking (``seq2seq.inference.mmi``): the formula, finding and checking the backward run,
reranking on a tiny chat run with its tiny backward run, and the errors of the commands."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from seq2seq.config import ConfigError, load_config
from seq2seq.inference.mmi import (
    check_backward,
    find_backward,
    last_turn,
    mmi_order,
    mmi_scores,
    require_backward,
)
from seq2seq.runs import RunError
from seq2seq.search.options import resolve_decode

CHAT = load_config("chat")
BACKWARD = load_config("chat-backward")


def test_formula_on_hand_set_scores():
    forward = [-1.0, -2.0, -3.0]  # the forward model prefers candidate 0 ...
    backward = [-10.0, -2.0, -4.0]  # ... which makes the message unlikely
    lengths = [2, 5, 3]
    assert mmi_order(mmi_scores(forward, backward, lengths, 0.0, 0.0)) == [0, 1, 2]
    scores = mmi_scores(forward, backward, lengths, 0.5, 0.0)
    assert scores.tolist() == [-6.0, -3.0, -5.0]
    assert mmi_order(scores) == [1, 2, 0]
    # a length bonus of 1 per token: -4, +2, -2
    assert mmi_scores(forward, backward, lengths, 0.5, 1.0).tolist() == [-4.0, 2.0, -2.0]
    # a length penalty (gamma < 0) brings the short candidate back
    assert mmi_order(mmi_scores(forward, backward, lengths, 0.1, -1.0))[0] == 0
    assert mmi_order([1.0, 3.0, 3.0, 2.0]) == [1, 2, 3, 0]  # ties keep the search's order


def test_backward_run_is_checked_by_its_config(tmp_path):
    check_backward(CHAT, BACKWARD, "b")  # the two presets fit
    with pytest.raises(RunError, match="data.reverse is false"):
        check_backward(CHAT, CHAT.replace(data=CHAT.data.__class__(corpus="daily_dialog")), "b")
    other = load_config("chat-backward", overrides=["data.corpus=cornell_dialogs"])
    with pytest.raises(RunError, match="trained on 'cornell_dialogs'"):
        check_backward(CHAT, other, "b")
    with pytest.raises(RunError, match="forward"):
        check_backward(load_config("quickstart"), BACKWARD, "b")
    assert find_backward(tmp_path / "chat") is None
    with pytest.raises(RunError, match="not found"):
        find_backward(tmp_path / "chat", tmp_path / "missing")
    with pytest.raises(RunError, match="needs a backward model.*chat-backward"):
        require_backward(tmp_path / "chat", CHAT)


def test_mmi_settings_are_validated():
    assert resolve_decode(CHAT, {"mmi_lambda": 0.5}).mmi_candidates == 10
    with pytest.raises(ConfigError, match="decode.mmi_lambda is -1.0; allowed"):
        resolve_decode(CHAT, {"mmi_lambda": -1.0})
    with pytest.raises(ConfigError, match="greedy"):
        resolve_decode(CHAT, {"method": "greedy", "mmi_lambda": 0.5})
    with pytest.raises(ConfigError, match="mmi_candidates is 1"):
        resolve_decode(CHAT, {"mmi_lambda": 0.5, "mmi_candidates": 1})
    with pytest.raises(ConfigError, match="give --mmi-lambda too"):
        resolve_decode(CHAT, {"mmi_gamma": 0.5})


@pytest.fixture(scope="module")
def chat_translator(tiny_dialogue_run, tiny_dialogue_backward):
    from seq2seq.inference.translator import Translator

    return Translator.from_run(tiny_dialogue_run)


@pytest.mark.parametrize("method", ["beam", "sample"])
def test_mmi_picks_the_candidate_the_formula_says(chat_translator, tiny_dialogue_backward, method):
    """The reply is the n-best candidate with the highest forward + lambda * backward +
    gamma * length, each log-probability recomputed here from its parts."""
    from seq2seq.inference.mmi import candidate_decode
    from seq2seq.inference.prediction import pad_batch
    from seq2seq.search.loops import strip_ids

    translator = chat_translator
    assert translator.backward_dir == tiny_dialogue_backward  # found beside the run
    source = "hi! <sep> how are you?"
    settings = {"method": method, "mmi_lambda": 2.0, "mmi_gamma": 0.3, "mmi_candidates": 4}
    if method == "sample":
        settings["seed"] = 11
    result = translator.translate_one(source, translator.decode_config(**settings))

    decode = translator.decode_config(**settings)
    encoded = translator.encode(translator.check_input(source))
    found = translator.searcher.search(pad_batch([encoded.ids]), candidate_decode(decode))
    ids = [strip_ids(row) for row in found.ids[0]]
    texts = [translator.target_tokenizer.decode(row) for row in ids]
    assert len(ids) == 4
    limit = translator.config.data.max_source_length
    forward = translator.scorer.log_probs([encoded.ids] * 4, ids, max_source_length=limit)
    message = last_turn(translator.check_input(source), "<sep>")
    backward = translator.backward_scorer().log_probs([message] * 4, texts)
    assert np.all(forward < 0) and np.all(backward < 0)
    expected = forward + 2.0 * backward + 0.3 * np.array([len(row) for row in ids])
    best = int(np.argmax(expected))
    assert result.text == texts[best]
    assert result.score == pytest.approx(expected[best], rel=1e-4)
    assert [score for _, score in result.n_best] == pytest.approx(sorted(expected)[::-1], rel=1e-4)


@pytest.mark.parametrize("method", ["beam", "sample"])
def test_candidates_scored_once_rerank_like_translate_for_every_setting(chat_translator, method):
    """``mmi_candidates`` + ``mmi_rerank`` (the sweep's path: one search for many settings)
    gives ``translate``'s reply and score for each (lambda, gamma)."""
    from seq2seq.config import ConfigError
    from seq2seq.inference.mmi import mmi_rerank

    sources = ["hi! <sep> how are you?", "nine nine .", "what time is it?"]
    search = {"method": method, "mmi_candidates": 4, **({"seed": 5} if method == "sample" else {})}
    candidates = chat_translator.mmi_candidates(
        sources, chat_translator.decode_config(mmi_lambda=0.0, **search)
    )
    assert [len(c) for c in candidates] == [4, 4, 4]
    for lam, gamma in [(0.0, 0.0), (1.0, 0.5), (2.0, -0.3)]:
        direct = chat_translator.translate(
            sources, chat_translator.decode_config(mmi_lambda=lam, mmi_gamma=gamma, **search)
        )
        for found, scored in zip(direct, candidates, strict=True):
            best = mmi_rerank(scored, lam, gamma)[0]
            assert best.text == found.text
            assert best.score == pytest.approx(found.score, rel=1e-5)
    with pytest.raises(ConfigError, match="mmi_lambda"):
        chat_translator.mmi_candidates(sources, chat_translator.decode_config(method=method))


def test_mmi_without_backward_model_is_refused(tiny_dialogue_run, tmp_path):
    from seq2seq.inference.translator import Translator

    lonely = tmp_path / "lonely"
    shutil.copytree(tiny_dialogue_run, lonely)
    translator = Translator.from_run(lonely)
    assert translator.backward_dir is None
    assert (
        translator.translate_one("hi!", translator.decode_config(method="beam")).text is not None
    )  # no MMI: fine
    with pytest.raises(RunError, match="needs a backward model"):
        translator.translate_one("hi!", translator.decode_config(method="beam", mmi_lambda=0.5))
    with pytest.raises(RunError, match="data.reverse is false"):
        Translator.from_run(lonely, backward=tiny_dialogue_run)  # a forward run


def test_evaluate_with_mmi_on_a_tiny_run(tiny_dialogue_run, tiny_dialogue_backward, tmp_path):
    from seq2seq.evaluate import main

    out = tmp_path / "eval"
    args = ["--model", str(tiny_dialogue_run), "--split", "dev", "--max-sentences", "12"]
    args += ["--output-dir", str(out)]
    assert main([*args, "--mmi-lambda", "0.5", "--mmi-candidates", "3", "--seed", "3"]) == 0
    import json

    report = json.loads((out / "report.json").read_text())
    metrics = report["metrics"]
    assert report["decode"]["mmi_lambda"] == 0.5 and report["decode"]["method"] == "sample"
    for key in ("bleu_1", "bleu_2", "distinct_1", "distinct_2", "perplexity", "degenerate_share"):
        assert np.isfinite(metrics[key]), key
    assert 0.0 <= metrics["bleu_1"] <= 1.0 and 0.0 <= metrics["bleu_2"] <= 1.0
    assert len((out / "hypotheses.txt").read_text().splitlines()) == 12


def test_commands_refuse_mmi_without_backward_model(tiny_dialogue_run, tmp_path, capsys):
    from seq2seq.chat import main as chat_main
    from seq2seq.evaluate import main as evaluate_main

    lonely = tmp_path / "lonely"
    shutil.copytree(tiny_dialogue_run, lonely)
    for main in (chat_main, evaluate_main):
        assert main(["--model", str(lonely), "--mmi-lambda", "0.5"]) == 2
        err = capsys.readouterr().err
        assert "needs a backward model" in err and "chat-backward" in err
        assert "Traceback" not in err
        assert main(["--model", str(lonely), "--mmi-lambda", "-2"]) == 2
        assert "mmi_lambda is -2.0" in capsys.readouterr().err
        assert main(["--model", str(lonely), "--method", "greedy", "--mmi-lambda", "1"]) == 2
        assert "--mmi-lambda applies to beam search and sampling" in capsys.readouterr().err


def test_chat_table_script_writes_one_row_per_setting(
    tiny_dialogue_run, tiny_dialogue_backward, tmp_path
):
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("chat_table", REPO / "scripts/chat_table.py")
    chat_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chat_table)
    out = tmp_path / "table.md"
    args = ["--model", str(tiny_dialogue_run), "--split", "dev", "--max-sentences", "8"]
    args += ["--mmi-candidates", "3", "--samples", "3", "--output", str(out)]
    assert chat_table.main([*args, "--output-dir", str(tmp_path / "reports")]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    names = ["greedy", "beam 5", "sample", "MMI beam (3)", "MMI sample (3)", "Seq2Seq"]
    assert [row.split(" | ")[0][2:].split(",")[0] for row in rows[1:]] == names
    assert text.count("**") == 2 * 3 and "*MMI sample (3)*:" in text
    assert "SmoothingFunction().method7" in text and "NLTK 3.4 sentence_bleu" in text
    assert rows[0].count(" | ") == 9 and "BLEU-2, NLTK 3.6+" in rows[0]
    assert chat_table.main(["--model", str(tmp_path / "missing")]) == 2
    # replies to messages of our own (publishable where the corpus may not be quoted)
    messages = tmp_path / "messages.txt"
    messages.write_text("one two three .\n\nnine nine .\n", encoding="utf-8")
    args += ["--inputs", str(messages), "--output-dir", str(tmp_path / "again")]
    assert chat_table.main(args) == 0
    text = out.read_text()
    assert "Replies to the 2 messages" in text and "reference:" not in text
    assert text.count("*MMI sample (3)*:") == 2 and "**2.** input: nine nine ." in text
    # an empty messages file is refused before any evaluation runs
    messages.write_text("\n", encoding="utf-8")
    assert chat_table.main([*args, "--output-dir", str(tmp_path / "empty")]) == 2
    assert not (tmp_path / "empty").exists()


def test_plato_bleu_check_compares_reply_by_reply_with_the_module_it_is_given(
    tiny_dialogue_run, tmp_path, capsys
):
    import importlib.util

    from conftest import REPO

    from seq2seq.inference.evaluation import run_config, split_pairs

    # replies that share some words and word pairs with their references, and miss others
    references = [target for _, target in split_pairs(run_config(tiny_dialogue_run), "dev")]
    replies = [" ".join(reference.split()[:2] + ["zebra", "!"]) for reference in references[:12]]
    reports = tmp_path / "reports"
    (reports / "greedy").mkdir(parents=True)
    (reports / "greedy" / "hypotheses.txt").write_text("\n".join(replies) + "\n")
    report = {"run": str(tiny_dialogue_run), "split": "dev"}
    (reports / "greedy" / "report.json").write_text(json.dumps(report))
    spec = importlib.util.spec_from_file_location("check", REPO / "scripts/plato_bleu_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    # stand-ins for NLTK 3.4's bleu_score module (which needs a download): one computing what
    # NLTK 3.4 computes, one with the installed NLTK's smoothing
    faithful = tmp_path / "faithful.py"
    faithful.write_text(
        "from nltk.translate.bleu_score import sentence_bleu\n"
        "from seq2seq.inference.metrics import nltk34_method7\n"
        "class SmoothingFunction:\n    method7 = staticmethod(nltk34_method7)\n"
    )
    current = tmp_path / "current.py"
    current.write_text("from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu\n")
    capsys.readouterr()
    assert check.main(["--nltk34", str(faithful), "--reports", str(reports)]) == 0
    out = capsys.readouterr().out
    assert out.count("largest difference 0.0e+00 (12 replies)") == 2 and "greedy: BLEU-2" in out
    assert "BLEU-2 NLTK 3.4 0.000000" not in out
    assert check.main(["--nltk34", str(current), "--reports", str(reports)]) == 1
    capsys.readouterr()
    assert check.main(["--nltk34", str(faithful), "--reports", str(tmp_path / "none")]) == 2
    assert "no <folder>/report.json under" in capsys.readouterr().err
    assert check.main(["--nltk34", str(tmp_path / "missing.py"), "--reports", str(reports)]) == 2
    assert "cannot load" in capsys.readouterr().err
    (reports / "greedy" / "report.json").write_text(json.dumps({"run": str(tmp_path / "gone")}))
    assert check.main(["--nltk34", str(faithful), "--reports", str(reports)]) == 2
    assert "greedy/report.json" in capsys.readouterr().err


def test_mmi_sweep_script_writes_one_row_per_setting_best_bleu_2_first(
    tiny_dialogue_run, tiny_dialogue_backward, tmp_path, capsys
):
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("mmi_sweep", REPO / "scripts/mmi_sweep.py")
    mmi_sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mmi_sweep)
    args = ["--model", str(tiny_dialogue_run), "--max-sentences", "8", "--candidates", "3"]
    args += ["--lambdas", "0.5,1", "--gammas", "0,2", "--output-dir", str(tmp_path / "sweep")]
    assert mmi_sweep.main(args) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line[:3] in ("| 0", "| 1")]
    assert sorted(row.split(" | ")[:2] for row in rows) == [
        ["| 0.5", "0"],
        ["| 0.5", "2"],
        ["| 1", "0"],
        ["| 1", "2"],
    ]
    bleu_2 = [float(row.split(" | ")[3]) for row in rows]
    assert bleu_2 == sorted(bleu_2, reverse=True)
    report = json.loads((tmp_path / "sweep" / "l1-g2" / "report.json").read_text())
    assert (report["decode"]["mmi_lambda"], report["decode"]["mmi_gamma"]) == (1.0, 2.0)
    assert report["split"] == "dev" and report["pairs"] == 8
    assert mmi_sweep.main(["--model", str(tmp_path / "missing")]) == 2
    with pytest.raises(SystemExit):
        mmi_sweep.main(["--model", str(tiny_dialogue_run), "--gammas", "x"])
