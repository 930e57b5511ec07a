"""Gradient flow through time: how much of the input at position t reaches the final state.

For a recurrent layer with final hidden state ``h_T``, the gradient of a scalar read out of
``h_T`` with respect to the input ``x_t`` is a product of ``T - t`` step Jacobians
(backpropagation through time). Its norm against the distance ``k = T - t`` is the
vanishing-gradient curve: a plain ``tanh`` RNN multiplies by ``diag(1 - h²) W`` at every
step, a gated cell can carry a nearly constant state instead.

The scalar is ``u · h_T`` for a few random unit vectors ``u`` (the same ones for every
layer of a given width): the curve then depends on the layer alone, not on a loss that also
reaches position t through attention. Each row's curve is divided by its value at distance
0, and rows are combined with a geometric mean, because the decay is multiplicative.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

# log(0) guard: a gradient that underflowed to zero counts as 1e-30 of the distance-0 value.
TINY = 1e-30


@dataclass
class GradientCurve:
    """``relative[k]``: gradient norm at distance k over the norm at distance 0 (so 1 at
    k=0); ``rows[k]``: how many sequences were long enough to have distance k."""

    relative: np.ndarray
    rows: np.ndarray

    def to_dict(self) -> dict[str, list]:
        return {"relative": self.relative.tolist(), "rows": self.rows.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> GradientCurve:
        return cls(np.asarray(data["relative"], float), np.asarray(data["rows"], int))


def final_hidden(layer: keras.layers.Layer, outputs) -> tf.Tensor:
    """The last hidden state of each row (the last *unmasked* step for padded rows)."""
    if isinstance(outputs, list | tuple):
        return outputs[1] if getattr(layer, "return_sequences", False) else outputs[0]
    if getattr(layer, "return_sequences", False):
        raise ValueError(
            f"{layer.name} returns sequences without its state; build it with "
            "return_state=True so the final state of padded rows is known"
        )
    return outputs


def gradient_through_time(
    layer: keras.layers.Layer,
    inputs,
    mask=None,
    directions: int = 8,
    seed: int = 0,
) -> GradientCurve:
    """The vanishing-gradient curve of a recurrent ``layer`` on ``inputs`` [B, T, E].

    ``mask`` [B, T] marks real positions (right padding); without it every row has length T.
    """
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    batch, steps = int(inputs.shape[0]), int(inputs.shape[1])
    if mask is None:
        mask = np.ones((batch, steps), bool)
    mask = np.asarray(mask, bool)
    lengths = mask.sum(axis=1)
    if batch == 0 or lengths.min() < 1:
        raise ValueError("every row needs at least one real position")
    if np.any(mask[:, 1:] & ~mask[:, :-1]):
        raise ValueError("the mask must be right-padded (real positions first)")
    tiled = tf.tile(inputs, [directions, 1, 1])
    tiled_mask = tf.constant(np.tile(mask, (directions, 1)))
    with tf.GradientTape() as tape:
        tape.watch(tiled)
        hidden = final_hidden(layer, layer(tiled, mask=tiled_mask, training=False))
        readout = tf.constant(unit_directions(directions, int(hidden.shape[-1]), seed))
        readout = tf.repeat(readout, batch, axis=0)  # direction d for rows d*B .. d*B+B-1
        objective = tf.reduce_sum(tf.cast(hidden, tf.float32) * readout)
    gradients = tape.gradient(objective, tiled)
    norms = tf.norm(gradients, axis=-1).numpy().reshape(directions, batch, steps)
    norms = np.sqrt(np.mean(norms.astype(np.float64) ** 2, axis=0))  # [B, T], RMS over u
    return by_distance(norms, lengths)


def unit_directions(count: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, width))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def by_distance(norms: np.ndarray, lengths: np.ndarray) -> GradientCurve:
    """Per-row norms [B, T] -> geometric mean over rows of norm(k) / norm(0), k = len-1-t."""
    longest = int(lengths.max())
    log_sum = np.zeros(longest)
    rows = np.zeros(longest, int)
    for row, length in zip(norms, lengths, strict=True):
        length = int(length)
        reversed_norms = row[:length][::-1]  # index k is distance k from the last step
        start = max(reversed_norms[0], TINY)
        log_sum[:length] += np.log(np.maximum(reversed_norms, TINY) / start)
        rows[:length] += 1
    return GradientCurve(np.exp(log_sum / rows), rows)


def first_encoder_layer(model) -> keras.layers.Layer:
    """The recurrent layer that reads the source embeddings (its forward half when the
    encoder is bidirectional: the backward half counts distance from the start)."""
    layer = model.encoder.rnns[0]
    return getattr(layer, "forward_layer", layer)


def embedded_source(model, source) -> tuple[tf.Tensor, np.ndarray]:
    """The first encoder layer's inputs for source ids [B, S], and the mask of real tokens."""
    source = np.asarray(source, np.int32)
    return model.encoder.embedding(tf.constant(source)), source != 0


def encoder_gradient_curve(model, source, directions: int = 8, seed: int = 0) -> GradientCurve:
    """``gradient_through_time`` of a ``Seq2Seq``'s first encoder layer on source ids."""
    inputs, mask = embedded_source(model, source)
    return gradient_through_time(first_encoder_layer(model), inputs, mask, directions, seed)
