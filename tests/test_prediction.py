"""Prediction: length-sorted batches, per-batch seeds, teacher-forced loss, corpus scores."""

from __future__ import annotations

import numpy as np
import pytest

from seq2seq.config import DecodeConfig, ModelConfig
from seq2seq.constants import END, PAD, START
from seq2seq.inference.prediction import (
    batch_seed,
    batches,
    corpus_scores,
    decode_corpus,
    pad_batch,
    teacher_forced_loss,
)
from seq2seq.search.loops import SearchResult

SOURCES = [[5, 6, 7], [8], [9, 10, 11, 12, 13], [14, 15], [16]]


def test_pad_batch_right_pads_with_pad():
    np.testing.assert_array_equal(pad_batch([[4, 5], [6]]), [[4, 5], [6, PAD]])


def test_batches_are_length_sorted_and_cover_every_input_once():
    found = list(batches(SOURCES, batch_size=2))
    assert [b.positions.tolist() for b in found] == [[1, 4], [3, 0], [2]]
    np.testing.assert_array_equal(found[1].source, [[14, 15, PAD], [5, 6, 7]])
    unsorted = list(batches(SOURCES, batch_size=2, sort_by_length=False))
    assert [b.positions.tolist() for b in unsorted] == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="batch_size is 0"):
        list(batches(SOURCES, batch_size=0))


def test_batch_seeds_are_derived_and_reproducible():
    assert batch_seed(None, 3) is None
    assert batch_seed(11, 0) == 11  # a one-batch job uses the seed it was given
    seeds = [batch_seed(11, number) for number in range(1, 50)]
    assert len(set(seeds)) == len(seeds) and 11 not in seeds
    assert seeds == [batch_seed(11, number) for number in range(1, 50)]
    assert all(0 <= seed < 2**62 for seed in seeds)


class EchoSearcher:
    """Returns each source row as its hypothesis (then END), and records the seeds."""

    def __init__(self):
        self.seeds = []

    def search(self, source, decode):
        self.seeds.append(decode.seed)
        ids = np.concatenate([source, np.full((len(source), 1), END)], axis=1)[:, None]
        shape = (len(source), 1)
        return SearchResult(ids, np.zeros(shape), np.zeros((*shape, ids.shape[2], 1)))


def test_decode_corpus_returns_outputs_in_input_order_with_a_seed_per_batch():
    searcher = EchoSearcher()
    decode = DecodeConfig(method="sample", seed=7)
    texts = decode_corpus(searcher, SOURCES, decode, lambda ids: " ".join(map(str, ids)), 2)
    assert texts == [" ".join(map(str, ids)) for ids in SOURCES]
    assert searcher.seeds == [7, batch_seed(7, 1), batch_seed(7, 2)]


def test_corpus_scores_known_values():
    perfect = corpus_scores(["the cat sat on the mat ."], ["the cat sat on the mat ."])
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    disjoint = corpus_scores(["xyz qqq"], ["the cat sat on the mat ."])
    assert disjoint["bleu"] == 0.0
    assert perfect["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


def reference_loss(model, sources, targets):
    """Mean -log p(token) over every target token and END, computed apart from the
    pipeline: one pair at a time, START/END framing written out here."""
    total, count = 0.0, 0
    for source, target in zip(sources, targets, strict=True):
        target_in = np.array([[START, *target]], np.int32)
        logits = model((np.array([source], np.int32), target_in)).numpy()[0].astype(np.float64)
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        for position, token in enumerate([*target, END]):
            total -= log_probs[position, token]
            count += 1
    return total / count, count


def test_teacher_forced_loss_uses_the_training_framing():
    import keras

    from seq2seq.model import build_model

    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(embedding_dim=8, hidden_size=8, dropout=0.0), 30, 20)
    sources = [[5, 6, 7, 8, 9], [10], [11, 12], [13, 14, 15]]
    targets = [[4, 5], [6, 7, 8], [9], [10, 11, 12, 13]]
    result = teacher_forced_loss(
        model, [*sources, [], [4]], [*targets, [5], []], max_source_length=3, batch_size=2
    )
    cut = [ids[:3] for ids in sources]  # sources are cut like the translator cuts them
    expected, tokens = reference_loss(model, cut, targets)
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["loss_tokens"] == tokens == 14
    assert result["loss_pairs"] == 4 and result["loss_skipped_pairs"] == 2
    assert result["perplexity"] == pytest.approx(np.exp(expected), rel=1e-5)
