"""Compiled, batched search over a ``Seq2Seq`` model's step API.

Each search is one ``tf.function`` around a ``tf.while_loop`` that stops as soon as every
row has produced END (or ``max_length`` is reached): no Python runs per step, and short
batches finish early. Results carry ids, log-probability scores and attention weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from seq2seq.text import END, PAD, START


@dataclass
class SearchResult:
    """ids [B,K,T] (PAD after END), scores [B,K], attention [B,K,T,S], K = n-best."""

    ids: np.ndarray
    scores: np.ndarray
    attention: np.ndarray


def log_softmax(logits):
    return tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)


def greedy_loop(model, source, max_length):
    """Pick the most likely token each step; returns ids [B,T], scores [B], attention [B,T,S]."""
    memory, mask, states = model.encode(source)
    batch = tf.shape(source)[0]
    source_length = tf.shape(source)[1]
    tokens = tf.fill([batch], tf.constant(START, tf.int32))
    finished = tf.zeros([batch], tf.bool)
    scores = tf.zeros([batch], tf.float32)
    ids = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
    weights = tf.TensorArray(tf.float32, size=0, dynamic_size=True)

    def not_done(t, tokens, finished, *_):
        return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

    def step(t, tokens, finished, states, scores, ids, weights):
        logits, states, attention = model.decode_step(tokens, states, memory, mask)
        log_probs = log_softmax(logits)
        best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        best_score = tf.reduce_max(log_probs, axis=-1)
        tokens = tf.where(finished, tf.constant(PAD, tf.int32), best)
        scores = scores + tf.where(finished, 0.0, best_score)
        attention = tf.where(finished[:, None], 0.0, tf.cast(attention, tf.float32))
        finished = tf.logical_or(finished, tf.equal(tokens, END))
        return (
            t + 1,
            tokens,
            finished,
            states,
            scores,
            ids.write(t, tokens),
            weights.write(t, attention),
        )

    _, _, _, _, scores, ids, weights = tf.while_loop(
        not_done,
        step,
        (tf.constant(0), tokens, finished, states, scores, ids, weights),
        maximum_iterations=max_length,
    )
    ids = tf.reshape(tf.transpose(ids.stack(), (1, 0)), [batch, -1])
    attention = tf.reshape(tf.transpose(weights.stack(), (1, 0, 2)), [batch, -1, source_length])
    return ids, scores, attention


class Searcher:
    """Holds the compiled search functions of one model, traced once per input signature."""

    def __init__(self, model):
        self.model = model
        signature = [
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([], tf.int32),
        ]
        self._greedy = tf.function(
            lambda source, max_length: greedy_loop(model, source, max_length),
            input_signature=signature,
        )

    def greedy(self, source: np.ndarray, max_length: int) -> SearchResult:
        ids, scores, attention = self._greedy(
            tf.constant(source, tf.int32), tf.constant(max_length, tf.int32)
        )
        return SearchResult(
            ids.numpy()[:, None, :], scores.numpy()[:, None], attention.numpy()[:, None]
        )


def strip_ids(ids: np.ndarray) -> list[int]:
    """Ids up to (not including) the first END or PAD."""
    out = []
    for token in ids.tolist():
        if token in (END, PAD):
            break
        out.append(int(token))
    return out
