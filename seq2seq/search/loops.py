"""The search loops over a ``Seq2Seq`` model's step API: greedy, beam, sampling.

Each search is one ``tf.function`` around a ``tf.while_loop`` that stops as soon as every
row (or every beam) has produced END, or ``max_length`` steps have run: no Python runs per
step, and short batches finish early. Every setting (beam size, n-best, penalties, ...)
is a tensor argument of a fixed ``input_signature`` with dynamic batch and source length,
so each search traces once per ``Searcher`` whatever the settings or shapes. By default
the loop is XLA-compiled (see ``Searcher``): buffers then have the static length
``max_length`` and the searches return the number of steps run, which ``Searcher`` cuts
them to. The same loops also run eagerly, op by op, with no start-up cost: a job of a few
sentences does that rather than wait for a program to be built (``plan_searches``).

Greedy search and sampling also stream (``Searcher.stream``): their one loop
(``token_steps``) runs in chunks of a few steps, one compiled call each, the state carried
between calls, so a chat UI shows tokens as they are produced and can stop between chunks;
the streamed result equals the one-shot search's for the same seed.

Shared logit processors (all three searches, inside the loop, in this order):

1. repetition penalty (CTRL, Keskar et al. 2019): the logit of every token already
   produced by the hypothesis is divided by the penalty when positive, multiplied when
   negative (penalty 1 leaves logits bit-for-bit unchanged);
2. bans (logit set to ``NEG_INF``): PAD and START always (they are never targets), END while
   fewer than ``min_length`` tokens were produced, and with ``no_repeat_ngram_size = n``
   every token that would complete an n-gram the hypothesis already contains.

Scores are sums of log-probabilities of the processed distribution (temperature, top-k
and top-p only shape *which* token a sampler draws, not the reported score). Beam scores
are length-normalised with the GNMT penalty ``lp(n) = ((5 + n) / 6) ** alpha`` where ``n``
counts the produced tokens including END (``alpha = 0``: raw log-probability).

Beam search keeps finished hypotheses in the beam: their score is frozen and their only
extension is PAD at zero cost, so they compete with live hypotheses on normalised score
each step (``beam_size = 1`` is then exactly greedy search). States, memory and the
per-hypothesis histories (ids, attention weights, seen tokens) are tiled to ``B*K`` rows
and reordered with ``tf.gather`` after every step, so the attention returned belongs to
the hypothesis returned. That bookkeeping (``beam_start``, ``beam_candidates``,
``follow_parents``) is shared with the glossary's constrained search
(``seq2seq.search.constrained``), which differs only in how it chooses the next beam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from seq2seq.constants import END, NEG_INF, PAD, START


@dataclass
class SearchResult:
    """ids [B,K,T] (PAD after END), scores [B,K], attention [B,K,T,S], K = n-best.

    Hypotheses are sorted best first. ``T`` is the number of steps the search ran; the
    attention row of a step after a hypothesis ended is all zeros.
    """

    ids: np.ndarray
    scores: np.ndarray
    attention: np.ndarray


# ---------------------------------------------------------------------------------------
# Logit processors


@dataclass
class Processors:
    """Tensor settings of the shared logit processors."""

    min_length: tf.Tensor
    repetition_penalty: tf.Tensor
    no_repeat_ngram_size: tf.Tensor


def ngram_bans(history, t, n, vocab_size):
    """[N,V] bool: tokens that would repeat an n-gram of ``history[:, :t]`` (n=0: none).

    Vectorised over window starts: the last n-1 produced tokens are compared with every
    earlier window of n-1 tokens; the token that followed a matching window is banned.
    """
    rows, length = tf.shape(history)[0], tf.shape(history)[1]
    width = tf.maximum(n - 1, 0)
    offsets = tf.range(width)
    starts = tf.range(length)
    last = length - 1
    windows = tf.gather(
        history, tf.clip_by_value(starts[:, None] + offsets[None, :], 0, last), axis=1
    )  # [N,L,n-1]
    prefix = tf.gather(history, tf.clip_by_value(t - width + offsets, 0, last), axis=1)
    match = tf.reduce_all(tf.equal(windows, prefix[:, None, :]), axis=-1)  # [N,L]
    valid = tf.logical_and(starts <= t - n, n > 0)
    match = tf.logical_and(match, valid[None, :])
    following = tf.gather(history, tf.clip_by_value(starts + width, 0, last), axis=1)
    row_ids = tf.broadcast_to(tf.range(rows)[:, None], [rows, length])
    indices = tf.stack([row_ids, following], axis=-1)
    counts = tf.scatter_nd(indices, tf.cast(match, tf.int32), [rows, vocab_size])
    return counts > 0


def process_logits(logits, t, history, seen, settings: Processors):
    """Apply repetition penalty, fixed bans, min-length and n-gram blocking; float32 out.

    The penalty and the n-gram bans each cost a pass over ``[N, V]``: a ``tf.cond``
    skips them when they are off (the usual case for translation).
    """
    logits = tf.cast(logits, tf.float32)
    penalty = settings.repetition_penalty

    def penalise():
        penalised = tf.where(logits > 0, logits / penalty, logits * penalty)
        return tf.where(seen, penalised, logits)

    logits = tf.cond(penalty > 1.0, penalise, lambda: logits)
    vocab_size = tf.shape(logits)[1]
    ids = tf.range(vocab_size)
    banned = tf.logical_or(tf.equal(ids, PAD), tf.equal(ids, START))
    banned = tf.logical_or(banned, tf.logical_and(tf.equal(ids, END), t < settings.min_length))
    n = settings.no_repeat_ngram_size
    repeats = tf.cond(
        n > 0,
        lambda: ngram_bans(history, t, n, vocab_size),
        lambda: tf.zeros_like(logits, tf.bool),
    )
    banned = tf.logical_or(banned[None, :], repeats)
    return tf.where(banned, tf.constant(NEG_INF, tf.float32), logits)


def mark_seen(seen, tokens, settings: Processors, parents=None):
    """Add ``tokens`` to each row's set of produced tokens (after reordering by ``parents``).

    Only the repetition penalty reads the set, so without one it stays empty and costs
    nothing: an ``[N, V]`` update (and gather, for beams) each step is skipped.
    """

    def update():
        rows = seen if parents is None else tf.gather(seen, parents)
        new = tf.one_hot(tokens, tf.shape(seen)[1], on_value=True, off_value=False, dtype=tf.bool)
        return tf.logical_or(rows, new)

    return tf.cond(settings.repetition_penalty > 1.0, update, lambda: seen)


def write_column(buffer, t, values):
    """buffer[:, t] = values for a [N,L,...] buffer, without changing its shape."""
    column = tf.equal(tf.range(tf.shape(buffer)[1]), t)
    column = tf.reshape(column, [1, -1] + [1] * (len(buffer.shape) - 2))
    return tf.where(column, tf.expand_dims(values, 1), buffer)


def tile_rows(structure, times):
    """Repeat every row of every tensor ``times`` times: [B,*] -> [B*times,*]."""
    return tf.nest.map_structure(lambda x: tf.repeat(x, times, axis=0), structure)


# ---------------------------------------------------------------------------------------
# Greedy and sampling: one token per row per step


def pick_greedy(logits, log_probs, t):
    return tf.argmax(log_probs, axis=-1, output_type=tf.int32)


def make_sampler(temperature, top_k, top_p, seed):
    """Draw from the processed distribution after temperature, top-k and top-p filtering."""

    def pick(logits, log_probs, t):
        scaled = logits / temperature
        vocab_size = tf.shape(scaled)[1]

        def keep_top_k(x):
            k = tf.clip_by_value(top_k, 1, vocab_size)  # XLA builds this branch for 0 too
            kth = tf.math.top_k(x, k).values[:, -1:]
            return tf.where(x < kth, tf.constant(NEG_INF, tf.float32), x)

        def keep_top_p(x):
            ordered = tf.sort(x, axis=-1, direction="DESCENDING")
            before = tf.math.cumsum(tf.nn.softmax(ordered, axis=-1), axis=-1, exclusive=True)
            kept = tf.where(before < top_p, ordered, tf.constant(np.inf, tf.float32))
            cutoff = tf.reduce_min(kept, axis=-1, keepdims=True)
            return tf.where(x < cutoff, tf.constant(NEG_INF, tf.float32), x)

        scaled = tf.cond(top_k > 0, lambda: keep_top_k(scaled), lambda: scaled)
        scaled = tf.cond(top_p < 1.0, lambda: keep_top_p(scaled), lambda: scaled)
        # Gumbel-max: argmax(x + Gumbel noise) is a draw from softmax(x), and unlike
        # stateless_categorical it compiles with XLA.
        step_seed = tf.stack([seed, tf.cast(t, tf.int64)])
        uniform = tf.random.stateless_uniform(
            tf.shape(scaled), step_seed, minval=np.finfo(np.float32).tiny, maxval=1.0
        )
        gumbel = -tf.math.log(-tf.math.log(uniform))
        return tf.argmax(scaled + gumbel, axis=-1, output_type=tf.int32)

    return pick


def empty_rows(mask):
    """[B] bool: sources that are all PAD (batch padding); they end before the first step."""
    return tf.logical_not(tf.reduce_any(mask, axis=-1))


def token_start(model, encoded, copies, max_length):
    """The state greedy/sampling starts from, ``copies`` rows per input of ``model.encode``'s
    output: ``(memory, mask, state)`` with ``state = (t, tokens, finished, decoder states,
    scores, history, weights, seen)``; the buffers are ``max_length`` long."""
    memory, mask, states = tile_rows(encoded, copies)
    rows = tf.shape(mask)[0]
    source_length = tf.shape(mask)[1]
    state = (
        tf.constant(0),
        tf.fill([rows], tf.constant(START, tf.int32)),
        empty_rows(mask),
        states,
        tf.zeros([rows], tf.float32),
        tf.zeros([rows, max_length], tf.int32),
        tf.zeros([rows, max_length, source_length], tf.float32),
        tf.zeros([rows, model.target_vocab_size], tf.bool),
    )
    return memory, mask, state


def token_steps(model, memory, mask, state, stop, max_length, settings: Processors, pick):
    """Greedy/sampling steps from ``state`` until step ``stop`` (exclusive), ``max_length``
    or every row has ended; returns the new state.

    The one loop of both searches: the one-shot search runs it to ``max_length``, the
    stream (``Searcher.stream``) in chunks, carrying the state between calls. A step's
    choice depends only on the state and the step number (the sampler's noise is keyed by
    (seed, step)), so both give the same tokens.
    """

    def not_done(t, tokens, finished, *_):
        running = tf.logical_and(t < stop, t < max_length)
        return tf.logical_and(running, tf.logical_not(tf.reduce_all(finished)))

    def step(t, tokens, finished, states, scores, history, weights, seen):
        logits, states, attention = model.decode_step(tokens, states, memory, mask)
        logits = process_logits(logits, t, history, seen, settings)
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        choice = pick(logits, log_probs, t)
        choice_score = tf.gather(log_probs, choice, batch_dims=1)
        tokens = tf.where(finished, tf.constant(PAD, tf.int32), choice)
        scores = scores + tf.where(finished, 0.0, choice_score)
        attention = tf.where(finished[:, None], 0.0, tf.cast(attention, tf.float32))
        seen = mark_seen(seen, tokens, settings)
        finished = tf.logical_or(finished, tf.equal(tokens, END))
        return (
            t + 1,
            tokens,
            finished,
            states,
            scores,
            write_column(history, t, tokens),
            write_column(weights, t, attention),
            seen,
        )

    return tf.while_loop(not_done, step, state, maximum_iterations=max_length)


def token_loop(model, encoded, copies, max_length, settings: Processors, pick):
    """Greedy/sampling loop over ``copies`` rows per input, from ``model.encode``'s output.

    Returns ids [B*copies,L], scores [B*copies], attention [B*copies,L,S] and the number
    of steps run T (L = max_length; steps from T on are PAD / zeros). Full-length buffers
    keep every shape static for XLA; ``Searcher`` cuts them to T.
    """
    memory, mask, state = token_start(model, encoded, copies, max_length)
    state = token_steps(model, memory, mask, state, max_length, max_length, settings, pick)
    steps, _, _, _, scores, history, weights, _ = state
    return history, scores, weights, steps


def greedy_loop(model, encoded, max_length, settings: Processors):
    """The most likely token each step: ids [B,L], scores [B], attention [B,L,S], steps."""
    return token_loop(model, encoded, 1, max_length, settings, pick_greedy)


def sample_loop(model, encoded, max_length, settings, copies, temperature, top_k, top_p, seed):
    """``copies`` samples per input, best first: ids [B,n,L], scores [B,n], att [B,n,L,S], steps."""
    pick = make_sampler(temperature, top_k, top_p, seed)
    ids, scores, attention, steps = token_loop(model, encoded, copies, max_length, settings, pick)
    batch, source_length = tf.shape(encoded[1])[0], tf.shape(encoded[1])[1]
    ids = tf.reshape(ids, [batch, copies, max_length])
    scores = tf.reshape(scores, [batch, copies])
    attention = tf.reshape(attention, [batch, copies, max_length, source_length])
    order = tf.math.top_k(scores, copies).indices
    return (
        tf.gather(ids, order, batch_dims=1),
        tf.gather(scores, order, batch_dims=1),
        tf.gather(attention, order, batch_dims=1),
        steps,
    )


# ---------------------------------------------------------------------------------------
# Beam search


def length_penalty_of(lengths, alpha):
    """GNMT length penalty ((5 + n) / 6) ** alpha; alpha = 0 gives exactly 1."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


@dataclass(frozen=True)
class BeamStart:
    """What every beam search (``beam_loop``, ``constrained_beam_loop``) starts from:
    sizes, the tiled memory, and ``state`` (tokens, scores, lengths, finished, decoder
    states, history, attention weights, seen tokens) with only the first of each input's
    ``beams`` hypotheses live, so the beams are distinct."""

    beams: tf.Tensor
    batch: tf.Tensor
    rows: tf.Tensor  # batch * beams
    memory: tf.Tensor
    mask: tf.Tensor
    source_length: tf.Tensor
    vocab_size: int
    offsets: tf.Tensor  # [B,1]: each input's first row
    pad_only: tf.Tensor  # [V]: the log-probabilities of an ended hypothesis
    state: tuple


def beam_start(model, encoded, beams, max_length) -> BeamStart:
    batch = tf.shape(encoded[1])[0]
    empty = empty_rows(encoded[1])
    memory, mask, states = tile_rows(encoded, beams)
    rows = batch * beams
    source_length = tf.shape(mask)[1]
    vocab_size = model.target_vocab_size
    first = tf.equal(tf.range(beams), 0)
    state = (
        tf.fill([rows], tf.constant(START, tf.int32)),  # tokens
        tf.tile(tf.where(first, 0.0, NEG_INF)[None, :], [batch, 1]),  # scores [B,K]
        tf.zeros([batch, beams], tf.int32),  # lengths
        tf.tile(empty[:, None], [1, beams]),  # finished
        states,
        tf.zeros([rows, max_length], tf.int32),  # history
        tf.zeros([rows, max_length, source_length], tf.float32),  # weights
        tf.zeros([rows, vocab_size], tf.bool),  # seen
    )
    return BeamStart(
        beams=beams,
        batch=batch,
        rows=rows,
        memory=memory,
        mask=mask,
        source_length=source_length,
        vocab_size=vocab_size,
        offsets=(tf.range(batch) * beams)[:, None],
        pad_only=tf.where(tf.equal(tf.range(vocab_size), PAD), 0.0, NEG_INF),
        state=state,
    )


def beam_candidates(start: BeamStart, logits, scores, lengths, finished, alpha):
    """Every hypothesis's every next token: raw scores [B,K,V], normalised by the length
    penalty [B,K,V], and the lengths [B,K] they would have (ended hypotheses only extend
    by PAD, at no cost and no length)."""
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    flat_finished = tf.reshape(finished, [start.rows])
    log_probs = tf.where(flat_finished[:, None], start.pad_only[None, :], log_probs)
    shape = [start.batch, start.beams, start.vocab_size]
    candidates = scores[:, :, None] + tf.reshape(log_probs, shape)
    new_lengths = tf.where(finished, lengths, lengths + 1)
    normalised = candidates / length_penalty_of(new_lengths, alpha)[:, :, None]
    return candidates, normalised, new_lengths


def follow_parents(start: BeamStart, t, settings: Processors, choice, step_outputs, state):
    """The chosen hypotheses' rows, ``(tokens, states, history, weights, seen)``.

    ``choice`` is ``(parent, chosen, parent_finished)`` [B,K]: each new hypothesis's
    parent, its token, and whether the parent had ended (then it only adds PAD);
    ``step_outputs`` the step's ``(new decoder states, attention)``; ``state`` the
    ``(history, weights, seen)`` before the step."""
    parent, chosen, parent_finished = choice
    new_states, attention = step_outputs
    history, weights, seen = state
    rows = start.rows
    flat_parent = tf.reshape(parent + start.offsets, [rows])
    tokens = tf.reshape(tf.where(parent_finished, PAD, chosen), [rows])
    attention = tf.gather(tf.cast(attention, tf.float32), flat_parent)
    attention = tf.where(tf.reshape(parent_finished, [rows, 1]), 0.0, attention)
    states = tf.nest.map_structure(lambda s: tf.gather(s, flat_parent), new_states)
    history = write_column(tf.gather(history, flat_parent), t, tokens)
    weights = write_column(tf.gather(weights, flat_parent), t, attention)
    seen = mark_seen(seen, tokens, settings, parents=flat_parent)
    return tokens, states, history, weights, seen


def beam_loop(model, encoded, max_length, settings: Processors, beam_size, n_best, alpha):
    """Beam search: ids [B,n,L], normalised scores [B,n], attention [B,n,L,S], steps."""
    beams = beam_size
    start = beam_start(model, encoded, beams, max_length)
    batch, vocab_size = start.batch, start.vocab_size

    def not_done(t, tokens, scores, lengths, finished, *_):
        return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

    def step(t, tokens, scores, lengths, finished, states, history, weights, seen):
        logits, new_states, attention = model.decode_step(tokens, states, start.memory, start.mask)
        logits = process_logits(logits, t, history, seen, settings)
        candidates, normalised, new_lengths = beam_candidates(
            start, logits, scores, lengths, finished, alpha
        )
        best = tf.math.top_k(tf.reshape(normalised, [batch, beams * vocab_size]), beams)
        parent = best.indices // vocab_size  # [B,K]
        chosen = best.indices % vocab_size
        scores = tf.gather(tf.reshape(candidates, [batch, -1]), best.indices, batch_dims=1)
        parent_finished = tf.gather(finished, parent, batch_dims=1)
        lengths = tf.gather(new_lengths, parent, batch_dims=1)
        finished = tf.logical_or(parent_finished, tf.equal(chosen, END))
        choice = (parent, chosen, parent_finished)
        tokens, states, history, weights, seen = follow_parents(
            start, t, settings, choice, (new_states, attention), (history, weights, seen)
        )
        return t + 1, tokens, scores, lengths, finished, states, history, weights, seen

    steps, _, scores, lengths, _, _, history, weights, _ = tf.while_loop(
        not_done, step, (tf.constant(0), *start.state), maximum_iterations=max_length
    )
    normalised = scores / length_penalty_of(tf.maximum(lengths, 1), alpha)
    order = tf.math.top_k(normalised, n_best)  # sorted best first
    ids = tf.reshape(history, [batch, beams, max_length])
    attention = tf.reshape(weights, [batch, beams, max_length, start.source_length])
    return (
        tf.gather(ids, order.indices, batch_dims=1),
        order.values,
        tf.gather(attention, order.indices, batch_dims=1),
        steps,
    )


def strip_ids(ids: np.ndarray) -> list[int]:
    """Ids up to (not including) the first END or PAD."""
    out = []
    for token in ids.tolist():
        if token in (END, PAD):
            break
        out.append(int(token))
    return out
