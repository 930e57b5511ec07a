"""Ensembles (``--model A --model B``): per-step mean log-probabilities inside the compiled
loops, an ensemble of one equals its run, members with other vocabularies are refused."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

SENTENCES = ["One two three .", "Nine nine four .", "Five .", "Seven eight ."]


@pytest.fixture(scope="session")
def second_run(tiny_run, tmp_path_factory) -> Path:
    """``tiny_run``'s config with another seed and fewer epochs: other weights, the same
    prepared data and so the same tokenizers (an ensemble member)."""
    from seq2seq.config import load_run_config
    from seq2seq.training.loop import train

    config = load_run_config(tiny_run / "config.yaml")
    config = config.replace(train=dataclasses.replace(config.train, seed=11, epochs=3))
    run = tmp_path_factory.mktemp("ensemble") / "second"
    train(config, run, verbose=0)
    return run


@pytest.fixture(scope="session")
def pair(tiny_run, second_run):
    """Plain-graph translators of both runs and of their ensemble."""
    from seq2seq.inference.ensemble import load_ensemble
    from seq2seq.inference.translator import Translator

    first = Translator.from_run(tiny_run, jit_compile=False)
    second = Translator.from_run(second_run, jit_compile=False)
    both = load_ensemble([tiny_run, second_run], jit_compile=False)
    return first, second, both


def ensemble_of(translator, models):
    from seq2seq.inference.ensemble import EnsembleModel
    from seq2seq.inference.translator import Translator

    return Translator(
        translator.config,
        translator.paths,
        EnsembleModel(models),
        translator.source_tokenizer,
        translator.target_tokenizer,
    )


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_an_ensemble_of_one_equals_its_run(pair, method):
    first, _, _ = pair
    alone = ensemble_of(first, [first.model])
    settings = {"method": method, "n_best": 3 if method == "beam" else 1}
    expected = first.translate(SENTENCES, first.decode_config(**settings))
    found = alone.translate(SENTENCES, alone.decode_config(**settings))
    assert [t.text for t in found] == [t.text for t in expected]
    for mine, theirs in zip(found, expected, strict=True):
        assert [text for text, _ in mine.n_best] == [text for text, _ in theirs.n_best]
        np.testing.assert_allclose(
            [s for _, s in mine.n_best], [s for _, s in theirs.n_best], atol=1e-4
        )


def test_each_step_is_the_mean_of_the_members_log_probabilities(pair):
    import tensorflow as tf

    first, second, both = pair
    source = tf.constant([[5, 6, 7], [8, 9, 0]], tf.int32)
    memory, mask, states = both.model.encode(source)
    tokens = tf.constant([2, 2], tf.int32)  # START
    mean, _, attention = both.model.decode_step(tokens, states, memory, mask)
    members = []
    for model in (first.model, second.model):
        m_memory, m_mask, m_states = model.encode(source)
        logits, _, weights = model.decode_step(tokens, m_states, m_memory, m_mask)
        members.append((tf.nn.log_softmax(logits).numpy(), weights.numpy()))
    np.testing.assert_allclose(mean.numpy(), (members[0][0] + members[1][0]) / 2, atol=1e-5)
    np.testing.assert_allclose(attention.numpy(), (members[0][1] + members[1][1]) / 2, atol=1e-6)


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_an_ensemble_of_two_scores_by_the_averaged_distribution(pair, method):
    """The search's score of its output is the teacher-forced score of that output under
    the normalised mean of the members' per-step log-probabilities (no length penalty),
    and differs from both members' scores."""
    from seq2seq.inference.prediction import SequenceScorer

    first, second, both = pair
    settings = {"method": method, "max_length": 16}
    if method == "beam":
        settings["length_penalty"] = 0.0  # raw sums of log-probabilities, like greedy's
    found = both.translate(SENTENCES, both.decode_config(**settings))
    ids = [both.target_tokenizer.encode(t.text) for t in found]
    sources = both.source_ids(SENTENCES)
    limit = both.config.data.max_source_length
    rescored = SequenceScorer(both.model).log_probs(sources, ids, max_source_length=limit)
    np.testing.assert_allclose([t.score for t in found], rescored, atol=1e-3)
    for member in (first, second):
        alone = SequenceScorer(member.model).log_probs(sources, ids, max_source_length=limit)
        assert not np.allclose(alone, rescored, atol=1e-3)
    log_probs = []
    for member in (first, second):
        import tensorflow as tf

        from seq2seq.inference.prediction import pad_batch

        target_in = pad_batch([[2, *row] for row in ids])
        logits = member.model((pad_batch(sources), target_in))
        log_probs.append(tf.nn.log_softmax(logits).numpy())
    mean = (log_probs[0] + log_probs[1]) / 2
    normalised = mean - np.log(np.exp(mean).sum(-1, keepdims=True))
    manual = [
        sum(normalised[row, t, token] for t, token in enumerate([*target, 3]))
        for row, target in enumerate(ids)
    ]
    np.testing.assert_allclose(rescored, manual, atol=1e-3)


def test_sampling_and_streaming_run_over_an_ensemble(pair):
    _, _, both = pair
    sampled = [
        t.text for t in both.translate(SENTENCES, both.decode_config(method="sample", seed=5))
    ]
    assert sampled == [
        t.text for t in both.translate(SENTENCES, both.decode_config(method="sample", seed=5))
    ]
    streamed = list(both.stream(SENTENCES[0]))
    assert streamed[-1].text == both.translate_one(SENTENCES[0]).text


def test_translate_and_evaluate_take_several_models(tiny_run, second_run, tmp_path, capsys):
    from seq2seq.evaluate import main as evaluate
    from seq2seq.translate import main as translate

    assert translate(["--model", str(tiny_run), "--model", str(second_run), *SENTENCES]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(SENTENCES)
    out = tmp_path / "eval"
    args = ["--model", str(tiny_run), "--model", str(second_run), "--output-dir", str(out)]
    assert evaluate([*args, "--max-sentences", "8"]) == 0
    assert " + " in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["ensemble"] == [str(tiny_run), str(second_run)]


def other_vocabulary(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "other-vocab"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("logs", "backup", "eval-*"))
    vocab = next(p for p in sorted((copy / "target_vocab").iterdir()) if p.is_file())
    vocab.write_bytes(vocab.read_bytes() + b"\n")
    return copy


@pytest.mark.parametrize("command", ["translate", "evaluate"])
def test_members_with_another_vocabulary_are_refused(tiny_run, tmp_path, capsys, command):
    from seq2seq.evaluate import main as evaluate
    from seq2seq.translate import main as translate

    other = other_vocabulary(tiny_run, tmp_path)
    main = translate if command == "translate" else evaluate
    extra = ["One ."] if command == "translate" else []
    assert main(["--model", str(tiny_run), "--model", str(other), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ensemble members do not match")
    assert "target_vocab/" in err[0]
    assert not (tiny_run / "eval-test-ensemble2").exists()


def test_a_missing_or_repeated_member_is_refused(tiny_run, tmp_path, capsys):
    from seq2seq.translate import main as translate

    missing = tmp_path / "nope"
    assert translate(["--model", str(tiny_run), "--model", str(missing), "One ."]) == 2
    assert "run folder not found" in capsys.readouterr().err
    assert translate(["--model", str(tiny_run), "--model", str(tiny_run), "One ."]) == 2
    assert "given twice" in capsys.readouterr().err


def test_the_xla_compiled_searches_give_the_same_ensemble_output(tiny_run, second_run, pair):
    """On a CPU the members' encoders join the XLA program with the loop."""
    from seq2seq.inference.ensemble import load_ensemble

    _, _, graph = pair
    compiled = load_ensemble([tiny_run, second_run], jit_compile=True)
    for method in ("greedy", "beam"):
        expected = graph.translate(SENTENCES, graph.decode_config(method=method))
        found = compiled.translate(SENTENCES, compiled.decode_config(method=method))
        assert [t.text for t in found] == [t.text for t in expected]
        np.testing.assert_allclose([t.score for t in found], [t.score for t in expected], atol=1e-4)
