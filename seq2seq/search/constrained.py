"""Lexically constrained beam search: dynamic beam allocation (Post & Vilar, NAACL 2018).

Each input may carry constraints: token-id sequences that its output must contain (a
glossary's target terms, ``seq2seq.inference.glossary``). They travel as one padded
``[B, C, L]`` int32 tensor (``pack_constraints``: up to C constraints of up to L ids per
input, PAD after a constraint's ids and for missing constraints), so the search stays one
``tf.while_loop`` with no Python per step, XLA-compilable like ``beam_loop``.

Every hypothesis carries its constraint progress in the loop state, reordered with the
beam: ``met [N, C]`` (constraints fully produced; padding ones count as met),
``current [N]`` (the constraint whose first tokens were just produced, -1 for none) and
``matched [N]`` (how many of its tokens). ``advance`` updates it for a produced token: the
next token of the constraint in progress moves it on (and meets it after its last
token); any other token abandons it (its tokens no longer count), and a token that starts
an unmet constraint starts that one. ``met_tokens`` (the tokens of met constraints plus
those matched of the one in progress) is the hypothesis's progress, from 0 to the
input's total ``T``.

Each step (``constrained_beam_loop``):

1. END is banned for a hypothesis that has not met all its constraints (at ``max_length``
   the loop stops anyway and returns what it has);
2. the candidates of an input are the usual top ``K`` of all ``K x V`` expansions, each
   hypothesis's best token, and each hypothesis's tokens that advance a constraint
   (``next_tokens``: the next token of the constraint in progress, else the first token
   of every unmet one): ``K (2 + C)`` in all, duplicates dropped;
3. the beam is split into ``T + 1`` banks by progress, ``K // (T + 1)`` slots each (the
   remainder to the top bank, all constraints met); a bank with too few candidates gives
   its slots to the others, top bank first; each bank takes its best candidates by
   length-normalised score, hypotheses that have ended first (they keep their place);
4. the new beam is the chosen candidates, best first;
5. an input with constraints stops (its hypotheses are frozen) as soon as its best
   complete hypothesis (every constraint met) by normalised score has ended: the lower
   banks always hold hypotheses that cannot end yet, and would otherwise keep the batch
   running to ``max_length``.

At the end, hypotheses that ended (so met every constraint) rank first, then those that
``max_length`` or the stop cut short; the scores returned are the plain normalised
scores. An input without constraints has one bank of ``K`` slots, filled with
the top ``K`` expansions in the same order as ``beam_loop``: it decodes exactly as
without constraints, whatever the other inputs of its batch carry.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from seq2seq.constants import END, NEG_INF, PAD, START
from seq2seq.search.loops import (
    Processors,
    beam_candidates,
    beam_start,
    follow_parents,
    length_penalty_of,
    process_logits,
    tile_rows,
)


def _round_up(n: int) -> int:
    """The next power of two (1 for 0): few padded shapes, so few XLA programs."""
    return 1 << max(n - 1, 0).bit_length()


def pack_constraints(rows: Sequence[Sequence[Sequence[int]]]) -> np.ndarray | None:
    """One ``[B, C, L]`` int32 array of every input's constraints (id lists), PAD-padded;
    ``C`` and ``L`` are rounded up to powers of two. ``None`` when no input has one."""
    most = max((len(row) for row in rows), default=0)
    if most == 0:
        return None
    longest = max(len(ids) for row in rows for ids in row)
    packed = np.full((len(rows), _round_up(most), _round_up(longest)), PAD, np.int32)
    for b, row in enumerate(rows):
        for c, ids in enumerate(row):
            if not ids or any(i in (PAD, START, END) for i in ids):
                raise ValueError(f"input {b}: constraint {c} is {list(ids)}: no special ids")
            packed[b, c, : len(ids)] = ids
    return packed


# ---------------------------------------------------------------------------------------
# Constraint bookkeeping, vectorised over rows (hypotheses)


def constraint_lengths(constraints):
    """[N, C] int32: the number of ids of each constraint (0 for padding)."""
    return tf.reduce_sum(tf.cast(tf.not_equal(constraints, PAD), tf.int32), axis=-1)


def start_progress(lengths):
    """``(met, current, matched, just)`` before any token: only padding constraints are
    met; ``just`` [N] says that the last token completed a constraint."""
    rows = tf.shape(lengths)[0]
    none = tf.zeros([rows], tf.int32)
    return tf.equal(lengths, 0), tf.fill([rows], -1), none, tf.zeros([rows], tf.bool)


def met_tokens(lengths, met, matched):
    """[N] int32: tokens of met constraints plus those matched of the one in progress."""
    return tf.reduce_sum(tf.where(met, lengths, 0), axis=-1) + matched


def _in_progress(constraints, lengths, current, matched):
    """The constraint in progress (index, clipped to 0 when none), its length and the
    token that moves it on."""
    index = tf.maximum(current, 0)
    ids = tf.gather(constraints, index, batch_dims=1)  # [N, L]
    width = tf.shape(constraints)[2]
    following = tf.gather(ids, tf.minimum(matched, width - 1), batch_dims=1)
    return index, tf.gather(lengths, index, batch_dims=1), following


def next_tokens(constraints, lengths, met, current, matched):
    """[N, C] int32: per constraint, the token that advances it (-1: none). While one is in
    progress only its next token does; otherwise the first token of each unmet one."""
    count = tf.shape(constraints)[1]
    index, _, following = _in_progress(constraints, lengths, current, matched)
    first = tf.where(tf.logical_not(met), constraints[:, :, 0], -1)
    ongoing = tf.where(tf.equal(tf.range(count)[None, :], index[:, None]), following[:, None], -1)
    return tf.where((current >= 0)[:, None], ongoing, first)


def advance(constraints, lengths, met, current, matched, just, tokens):
    """The progress ``(met, current, matched, just)`` after each row produced ``tokens``
    [N] (``just``: that token completed a constraint)."""
    count = tf.shape(constraints)[1]
    index, length, following = _in_progress(constraints, lengths, current, matched)
    continues = tf.logical_and(current >= 0, tf.equal(tokens, following))
    completes = tf.logical_and(continues, tf.equal(matched + 1, length))
    starts = tf.logical_and(
        tf.logical_not(met), tf.equal(constraints[:, :, 0], tokens[:, None])
    )  # [N, C]; a padding constraint is met, so never starts
    starting = tf.logical_and(tf.reduce_any(starts, axis=-1), tf.logical_not(continues))
    first = tf.argmax(tf.cast(starts, tf.int32), axis=-1, output_type=tf.int32)
    whole = tf.logical_and(starting, tf.equal(tf.gather(lengths, first, batch_dims=1), 1))
    met = tf.logical_or(met, tf.logical_and(tf.one_hot(index, count) > 0, completes[:, None]))
    met = tf.logical_or(met, tf.logical_and(tf.one_hot(first, count) > 0, whole[:, None]))
    ongoing = tf.logical_and(continues, tf.logical_not(completes))
    begun = tf.logical_and(starting, tf.logical_not(whole))
    current = tf.where(ongoing, current, tf.where(begun, first, -1))
    matched = tf.where(ongoing, matched + 1, tf.where(begun, 1, 0))
    return met, current, matched, tf.logical_or(completes, whole)


def bank_sizes(banks, valid, totals, beams):
    """[B, NB] int32: how many of the ``beams`` slots each bank gets (Post & Vilar's
    allocation): ``beams // (T + 1)`` for banks 0..T, the remainder to bank T, then the
    slots a bank cannot fill go to the banks with candidates left, top bank first.

    ``banks`` [B, M] is each candidate's progress, ``valid`` [B, M] which candidates
    count, ``totals`` [B] each input's constraint tokens T.
    """
    width = tf.reduce_max(totals) + 1
    ids = tf.range(width)[None, :]
    members = tf.logical_and(tf.equal(banks[:, :, None], ids[:, None, :]), valid[:, :, None])
    available = tf.reduce_sum(tf.cast(members, tf.int32), axis=1)  # [B, NB]
    count = totals + 1
    even = beams // count
    sizes = tf.where(ids < count[:, None], even[:, None], 0)
    sizes += tf.where(tf.equal(ids, totals[:, None]), (beams - even * count)[:, None], 0)
    sizes = tf.minimum(sizes, available)
    left = beams - tf.reduce_sum(sizes, axis=-1)
    room = available - sizes
    above = tf.math.cumsum(room, axis=-1, exclusive=True, reverse=True)
    return sizes + tf.clip_by_value(left[:, None] - above, 0, room)


def choose_by_bank(scores, banks, valid, totals, beams, kept):
    """[B, K] indices into the M candidates: each bank's best ``bank_sizes`` candidates,
    ordered best first by ``scores`` (ties: the lower index); ``kept`` candidates (ended
    hypotheses of inputs with constraints) come first in their bank. Fewer chosen than K
    (too few valid candidates) are completed with the lowest-index unchosen ones."""
    sizes = bank_sizes(banks, valid, totals, beams)
    width = tf.shape(scores)[1]
    positions = tf.range(width)
    earlier = positions[None, :] < positions[:, None]  # [i, j]: j before i
    better = tf.logical_or(
        scores[:, None, :] > scores[:, :, None],
        tf.logical_and(tf.equal(scores[:, None, :], scores[:, :, None]), earlier[None]),
    )
    same = tf.equal(kept[:, None, :], kept[:, :, None])
    better = tf.logical_or(
        tf.logical_and(kept[:, None, :], tf.logical_not(kept[:, :, None])),
        tf.logical_and(same, better),
    )
    rivals = tf.logical_and(better, tf.equal(banks[:, None, :], banks[:, :, None]))
    rank = tf.reduce_sum(tf.cast(tf.logical_and(rivals, valid[:, None, :]), tf.int32), axis=-1)
    chosen = tf.logical_and(valid, rank < tf.gather(sizes, banks, batch_dims=1))
    key = tf.where(chosen, scores, tf.constant(-np.inf, tf.float32))
    return tf.math.top_k(key, beams).indices


# ---------------------------------------------------------------------------------------
# The search


def constrained_beam_loop(
    model, encoded, max_length, settings: Processors, beam_size, n_best, alpha, constraints, glue
):
    """Beam search whose outputs contain each input's ``constraints`` [B, C, L]: ids
    [B,n,L], normalised scores [B,n], attention [B,n,L,S], steps (as ``beam_loop``).

    ``glue`` [V] bool: the target pieces that would continue the word before them
    (``seq2seq.inference.glossary.word_continuations``); they are banned right after a
    constraint is completed, so "physician" cannot become "physiciand".
    """
    beams = beam_size
    start = beam_start(model, encoded, beams, max_length)
    batch, rows, vocab_size = start.batch, start.rows, start.vocab_size
    count = tf.shape(constraints)[1]
    width = 2 * beams + beams * count  # candidates per input
    terms = tile_rows(constraints, beams)  # [N, C, L]
    term_lengths = constraint_lengths(terms)
    totals = tf.reduce_sum(constraint_lengths(constraints), axis=-1)  # [B]
    candidate_terms = tf.repeat(constraints, width, axis=0)  # [B*M, C, L]
    candidate_lengths = constraint_lengths(candidate_terms)
    progress = start_progress(term_lengths)
    candidate_offsets = (tf.range(batch) * width)[:, None]
    is_end = tf.equal(tf.range(vocab_size), END)[None, :]
    hypothesis_base = (tf.range(beams) * vocab_size)[None, :]  # [1,K]

    def not_done(t, tokens, scores, lengths, finished, *_):
        return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

    def step(t, tokens, scores, lengths, finished, states, history, weights, seen, progress):
        met, current, matched, just = progress
        logits, new_states, attention = model.decode_step(tokens, states, start.memory, start.mask)
        logits = process_logits(logits, t, history, seen, settings)
        unmet = tf.logical_not(tf.reduce_all(met, axis=-1))
        banned = tf.logical_or(
            tf.logical_and(unmet[:, None], is_end), tf.logical_and(just[:, None], glue[None, :])
        )
        logits = tf.where(banned, NEG_INF, logits)
        candidates, normalised, new_lengths = beam_candidates(
            start, logits, scores, lengths, finished, alpha
        )
        flat_normalised = tf.reshape(normalised, [batch, beams * vocab_size])
        flat_candidates = tf.reshape(candidates, [batch, beams * vocab_size])
        # candidates: the global top K, each hypothesis's best, its constraint tokens
        top = tf.math.top_k(flat_normalised, beams).indices
        best = hypothesis_base + tf.argmax(normalised, axis=-1, output_type=tf.int32)
        advancing = tf.reshape(
            next_tokens(terms, term_lengths, met, current, matched), [batch, beams, count]
        )
        advancing = tf.where(advancing >= 0, hypothesis_base[:, :, None] + advancing, -1)
        picked = tf.concat([top, best, tf.reshape(advancing, [batch, beams * count])], axis=1)
        valid = picked >= 0
        picked = tf.maximum(picked, 0)
        positions = tf.range(width)
        earlier = positions[None, :] < positions[:, None]
        repeated = tf.logical_and(tf.equal(picked[:, :, None], picked[:, None, :]), earlier[None])
        repeated = tf.reduce_any(tf.logical_and(repeated, valid[:, None, :]), axis=-1)
        raw = tf.gather(flat_candidates, picked, batch_dims=1)  # [B,M]
        valid = tf.logical_and(tf.logical_and(valid, tf.logical_not(repeated)), raw > NEG_INF / 2)
        parent = picked // vocab_size
        chosen = picked % vocab_size
        # each candidate's progress after its token
        parent_rows = tf.reshape(parent + start.offsets, [-1])
        candidate_met, candidate_current, candidate_matched, candidate_just = advance(
            candidate_terms,
            candidate_lengths,
            *(tf.gather(part, parent_rows) for part in progress),
            tf.reshape(chosen, [-1]),
        )
        banks = tf.reshape(
            met_tokens(candidate_lengths, candidate_met, candidate_matched), [batch, width]
        )
        normalised_picked = tf.gather(flat_normalised, picked, batch_dims=1)
        # an ended hypothesis keeps its place: better complete ones that never end (a
        # model repeating itself) would otherwise push it out of its bank
        kept = tf.logical_and(tf.gather(finished, parent, batch_dims=1), (totals > 0)[:, None])
        order = choose_by_bank(normalised_picked, banks, valid, totals, beams, kept)  # [B,K]
        parent = tf.gather(parent, order, batch_dims=1)
        chosen = tf.gather(chosen, order, batch_dims=1)
        scores = tf.gather(raw, order, batch_dims=1)
        kept = tf.reshape(order + candidate_offsets, [rows])
        progress = (
            tf.gather(candidate_met, kept),
            tf.gather(candidate_current, kept),
            tf.gather(candidate_matched, kept),
            tf.gather(candidate_just, kept),
        )
        parent_finished = tf.gather(finished, parent, batch_dims=1)
        lengths = tf.gather(new_lengths, parent, batch_dims=1)
        finished = tf.logical_or(parent_finished, tf.equal(chosen, END))
        # an input with constraints stops once its best complete hypothesis (every
        # constraint met) has ended: the lower banks keep hypotheses that cannot end yet,
        # which would otherwise run every constrained batch to max_length
        complete = tf.reshape(tf.reduce_all(progress[0], axis=-1), [batch, beams])
        ranked = tf.where(
            complete,
            scores / length_penalty_of(tf.maximum(lengths, 1), alpha),
            tf.constant(-np.inf, tf.float32),
        )
        leader = tf.argmax(ranked, -1, output_type=tf.int32)
        settled = tf.logical_and(
            tf.logical_and(tf.gather(finished, leader, batch_dims=1), totals > 0),
            tf.reduce_any(complete, axis=-1),
        )
        finished = tf.logical_or(finished, settled[:, None])
        choice = (parent, chosen, parent_finished)
        tokens, states, history, weights, seen = follow_parents(
            start, t, settings, choice, (new_states, attention), (history, weights, seen)
        )
        return t + 1, tokens, scores, lengths, finished, states, history, weights, seen, progress

    state = (tf.constant(0), *start.state, progress)
    steps, _, scores, lengths, _, _, history, weights, _, progress = tf.while_loop(
        not_done, step, state, maximum_iterations=max_length
    )
    normalised = scores / length_penalty_of(tf.maximum(lengths, 1), alpha)
    complete = tf.reshape(tf.reduce_all(progress[0], axis=-1), [batch, beams])
    ended = tf.reshape(tf.reduce_any(tf.equal(history, END), axis=-1), [batch, beams])
    # with constraints, the hypotheses that ended (so met every constraint) come first,
    # then those max_length or the stop cut short
    good = tf.logical_and(complete, tf.logical_or(ended, (totals == 0)[:, None]))
    ranking = tf.where(good, normalised, normalised + 4 * NEG_INF)
    order = tf.math.top_k(ranking, n_best).indices
    ids = tf.reshape(history, [batch, beams, max_length])
    attention = tf.reshape(weights, [batch, beams, max_length, start.source_length])
    return (
        tf.gather(ids, order, batch_dims=1),
        tf.gather(normalised, order, batch_dims=1),
        tf.gather(attention, order, batch_dims=1),
        steps,
    )
