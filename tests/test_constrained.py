"""Lexically constrained beam search (dynamic beam allocation) on a hand-built step function:
the bookkeeping of constraint progress, the bank allocation, and that inputs without
constraints decode exactly as plain beam search."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.constants import END, PAD, START
from seq2seq.search.constrained import (
    advance,
    bank_sizes,
    constrained_beam_loop,
    constraint_lengths,
    met_tokens,
    next_tokens,
    pack_constraints,
    start_progress,
)
from seq2seq.search.loops import Processors, beam_loop, strip_ids

V = 12


def toy_table() -> np.ndarray:
    """Next-token logits by previous token: START -> 4 -> 5 -> END is the likely path,
    tokens 6..11 are unlikely everywhere, after 6 the token 7 is likely, and END is the
    likeliest token after any other."""
    table = np.full((V, V), -2.0, np.float32)
    table[:, PAD] = table[:, START] = -5.0
    table[:, END] = -1.0
    table[START, 4] = 3.0
    table[4, 5] = 3.0
    table[5, END] = 3.0
    table[:, 6:] = -3.0
    table[6, 7] = 2.0
    table[7, END] = 1.0
    table[9, 10] = 1.0
    return table


class Toy:
    """The step API the search loops use, with logits that depend on the last token only."""

    target_vocab_size = V

    def __init__(self):
        self.table = tf.constant(toy_table())

    def encode(self, source):
        mask = tf.not_equal(source, PAD)
        rows = tf.shape(source)[0]
        return tf.cast(source[:, :, None], tf.float32), mask, (tf.zeros([rows, 1]),)

    def decode_step(self, tokens, states, memory, mask):
        weights = tf.cast(mask, tf.float32)
        weights /= tf.maximum(tf.reduce_sum(weights, -1, keepdims=True), 1.0)
        return tf.gather(self.table, tokens), states, weights


SETTINGS = Processors(tf.constant(0), tf.constant(1.0), tf.constant(0))
SOURCE = tf.constant([[4, 5, 0], [6, 7, 8], [5, 5, 5], [4, 0, 0]], tf.int32)


def search(constraints, beams=4, n_best=2, max_length=10, glue=None):
    model = Toy()
    glue = tf.zeros([V], tf.bool) if glue is None else tf.constant(glue)
    encoded = model.encode(SOURCE)
    if constraints is None:
        found = beam_loop(model, encoded, max_length, SETTINGS, beams, n_best, tf.constant(1.0))
    else:
        found = constrained_beam_loop(
            model, encoded, max_length, SETTINGS, beams, n_best, tf.constant(1.0), constraints, glue
        )
    ids, scores, _, steps = found
    return ids.numpy()[:, :, : int(steps)], scores.numpy()


def contains(ids: list[int], term: list[int]) -> bool:
    return any(ids[i : i + len(term)] == term for i in range(len(ids) - len(term) + 1))


def test_pack_constraints_pads_to_powers_of_two():
    packed = pack_constraints([[], [[6, 7, 8]], [[9], [4, 8], [5]]])
    assert packed.shape == (3, 4, 4)
    assert packed[1, 0].tolist() == [6, 7, 8, PAD]
    assert packed[2, 2].tolist() == [5, PAD, PAD, PAD]
    assert not packed[0].any() and not packed[2, 3].any()
    assert pack_constraints([[], []]) is None
    with pytest.raises(ValueError, match="no special ids"):
        pack_constraints([[[4, END]]])


def test_progress_bookkeeping_by_hand():
    """One constraint 'a b c' and one 'd' per row; rows produce tokens that start, continue,
    break off, restart and complete them."""
    terms = tf.constant([[[4, 5, 6], [7, 0, 0]]] * 5, tf.int32)  # [5, C=2, L=3]
    lengths = constraint_lengths(terms)
    met, current, matched, just = start_progress(lengths)
    assert lengths.numpy().tolist() == [[3, 1]] * 5
    assert next_tokens(terms, lengths, met, current, matched).numpy().tolist() == [[4, 7]] * 5
    assert not just.numpy().any()

    def run(sequence):
        state = start_progress(lengths[:1])
        for token in sequence:
            state = advance(terms[:1], lengths[:1], *state, tf.constant([token]))
        met, current, matched, just = (x.numpy()[0].tolist() for x in state)
        count = int(met_tokens(lengths[:1], *[tf.constant([v]) for v in (met, matched)])[0])
        return met, current, matched, just, count

    assert run([4]) == ([False, False], 0, 1, False, 1)  # started
    assert run([4, 5]) == ([False, False], 0, 2, False, 2)  # continued
    assert run([4, 5, 6]) == ([True, False], -1, 0, True, 3)  # completed
    assert run([4, 5, 9]) == ([False, False], -1, 0, False, 0)  # broke off: tokens lost
    assert run([4, 4, 5, 6]) == ([True, False], -1, 0, True, 3)  # broke off, restarted
    assert run([7]) == ([False, True], -1, 0, True, 1)  # a one-token constraint: met at once
    assert run([4, 7]) == ([False, True], -1, 0, True, 1)  # breaks 'a b c' off, meets 'd'
    assert run([7, 7, 4, 5, 6, 9]) == ([True, True], -1, 0, False, 4)  # met stays met

    state = start_progress(lengths[:1])
    state = advance(terms[:1], lengths[:1], *state, tf.constant([4]))
    # in progress: only the next token of the constraint in progress advances it
    assert next_tokens(terms[:1], lengths[:1], *state[:3]).numpy().tolist() == [[5, -1]]


def test_bank_sizes_split_the_beam_and_give_unused_slots_away_top_first():
    # one input, T = 3 constraint tokens -> 4 banks; beam 8: 2 each
    totals = tf.constant([3])
    banks = tf.constant([[0] * 5 + [1] * 5 + [2] * 5 + [3] * 5])
    valid = tf.ones_like(banks, tf.bool)
    assert bank_sizes(banks, valid, totals, 8).numpy().tolist() == [[2, 2, 2, 2]]
    # beam 10: the remainder goes to the top bank
    assert bank_sizes(banks, valid, totals, 10).numpy().tolist() == [[2, 2, 2, 4]]
    # bank 3 has one candidate, bank 1 none: their 3 slots go to bank 2, then bank 0
    banks = tf.constant([[0] * 5 + [2] * 3 + [3]])
    valid = tf.ones_like(banks, tf.bool)
    assert bank_sizes(banks, valid, totals, 8).numpy().tolist() == [[4, 0, 3, 1]]
    # no constraints: one bank with every slot
    assert bank_sizes(tf.zeros([1, 9], tf.int32), tf.ones([1, 9], tf.bool), tf.constant([0]), 5)[
        0
    ].numpy().tolist() == [5]


def test_every_constraint_is_in_the_output_and_it_ends():
    constraints = pack_constraints([[[6, 7]], [[9], [10, 11]], [[8]], []])
    ids, scores = search(tf.constant(constraints))
    natural = [4, 5]
    for row, terms in enumerate([[[6, 7]], [[9], [10, 11]], [[8]]]):
        best = ids[row, 0].tolist()
        output = strip_ids(ids[row, 0])
        assert END in best, best  # it finished: constraints do not stop it from ending
        for term in terms:
            assert contains(output, term), (row, output, term)
        assert contains(output, natural) or len(output) <= 2 + sum(map(len, terms))
    # without constraints: the model's own choice
    assert strip_ids(ids[3, 0]) == natural
    # each input stopped once its best hypothesis ended, not at max_length (10)
    assert ids.shape[2] < 10
    assert np.all(np.isfinite(scores))


def test_unconstrained_inputs_decode_exactly_as_plain_beam_search():
    plain_ids, plain_scores = search(None)
    # every input without constraints (the loop still runs with C = 1 padding constraint)
    empty = np.zeros((4, 1, 1), np.int32)
    ids, scores = search(tf.constant(empty))
    np.testing.assert_array_equal(ids, plain_ids)
    np.testing.assert_array_equal(scores, plain_scores)
    # inputs 0 and 3 unconstrained, beside constrained ones in the same batch
    mixed = pack_constraints([[], [[6, 7], [9]], [[8, 9, 10]], []])
    ids, scores = search(tf.constant(mixed))
    steps = min(ids.shape[2], plain_ids.shape[2])
    for row in (0, 3):
        assert strip_ids(ids[row, 0]) == strip_ids(plain_ids[row, 0])
        np.testing.assert_array_equal(ids[row, :, :steps], plain_ids[row, :, :steps])
        np.testing.assert_array_equal(scores[row], plain_scores[row])


@pytest.mark.parametrize("beams", [1, 2, 5])
def test_any_beam_size_places_the_constraints(beams):
    constraints = pack_constraints([[[6, 7]], [[9], [11]], [[8, 10]], [[4]]])
    ids, _ = search(tf.constant(constraints), beams=beams, n_best=1, max_length=12)
    for row, terms in enumerate([[[6, 7]], [[9], [11]], [[8, 10]], [[4]]]):
        for term in terms:
            assert contains(strip_ids(ids[row, 0]), term), (beams, row, ids[row, 0])


def test_no_piece_glues_onto_a_completed_constraint():
    """After 6 the toy model prefers 7; with 7 marked as a piece that would continue the
    word, a constraint ending in 6 is followed by something else."""
    constraints = pack_constraints([[[6]], [[6]], [[9, 6]], []])
    ids, _ = search(tf.constant(constraints))
    assert any(contains(strip_ids(ids[row, 0]), [6, 7]) for row in range(3))
    glue = np.zeros(V, bool)
    glue[7] = True
    ids, _ = search(tf.constant(constraints), glue=glue)
    for row in range(3):
        output = strip_ids(ids[row, 0])
        assert contains(output, [6]) and not contains(output, [6, 7]), output


def test_max_length_cuts_a_search_that_cannot_place_its_constraints():
    """Three constraints of 3 tokens cannot fit in 4 steps: the search stops there, with
    no END, rather than run on."""
    constraints = pack_constraints([[[6, 7, 8], [9, 10, 11], [8, 8, 8]]] * 4)
    ids, scores = search(tf.constant(constraints), max_length=4)
    assert ids.shape[2] == 4
    assert END not in ids[0, 0].tolist()
    assert np.all(np.isfinite(scores))


def test_it_compiles_with_xla():
    model = Toy()
    constraints = tf.constant(pack_constraints([[[6, 7]], [[9]], [], [[8]]]))

    @tf.function(jit_compile=True, autograph=False)
    def run(source, constraints):
        return constrained_beam_loop(
            model, model.encode(source), 10, SETTINGS, 3, 1, tf.constant(1.0), constraints, glue
        )

    glue = tf.zeros([V], tf.bool)

    ids, _, _, steps = run(SOURCE, constraints)
    eager_ids, _ = search(constraints, beams=3, n_best=1)
    np.testing.assert_array_equal(ids.numpy()[:, :, : int(steps)], eager_ids)


# -- the Searcher, on the tiny trained run's model ----------------------------------------


def test_searcher_places_constraints_and_leaves_other_inputs_alone(tiny_translator):
    from seq2seq.config import DecodeConfig

    translator = tiny_translator
    texts = ["one two three .", "nine .", "five six seven .", "zero four ."]
    source = np.zeros((4, 5), np.int32)
    for row, ids in enumerate(translator.source_tokenizer.encode_batch(texts)):
        source[row, : len(ids)] = ids
    term = translator.target_tokenizer.encode
    wanted = [[term("ocho")], [], [term("dos"), term("cero")], []]
    decode = DecodeConfig(method="beam", beam_size=4, n_best=2, max_length=12)
    plain = translator.searcher.search(source, decode)
    found = translator.searcher.search(source, decode, pack_constraints(wanted))
    for row, terms in enumerate(wanted):
        output = strip_ids(found.ids[row, 0])
        for ids in terms:
            assert contains(output, ids), (texts[row], output, ids)
        if not terms:  # same ids and scores as without constraints
            np.testing.assert_array_equal(
                strip_ids(found.ids[row, 0]), strip_ids(plain.ids[row, 0])
            )
            np.testing.assert_array_equal(found.scores[row], plain.scores[row])
    with pytest.raises(ValueError, match="need beam search, not greedy"):
        translator.searcher.search(source, DecodeConfig(), pack_constraints(wanted))
