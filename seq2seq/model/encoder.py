"""Recurrent encoder: embedding, then N stacked (optionally bidirectional) RNN layers.

Layers keep Keras's defaults (tanh/sigmoid, no recurrent dropout, ``unroll=False``,
GRU ``reset_after=True``) so TensorFlow picks the cuDNN kernels on a GPU; dropout sits
between layers instead of inside the cells, and masks come from right-padded ids.
"""

from __future__ import annotations

import keras
from keras import ops

RNN_LAYERS = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM, "rnn": keras.layers.SimpleRNN}


def recurrent_layer(cell: str, units: int, name: str) -> keras.layers.Layer:
    """A sequence-returning, state-returning RNN layer of the named cell type."""
    return RNN_LAYERS[cell](units, return_sequences=True, return_state=True, name=name)


def states_per_layer(cell: str) -> int:
    """LSTM carries (h, c); GRU and the plain RNN carry h only."""
    return 2 if cell == "lstm" else 1


class Encoder(keras.layers.Layer):
    """Maps source ids to per-position memory and a summary of the final states."""

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        units: int,
        num_layers: int = 1,
        cell: str = "gru",
        bidirectional: bool = True,
        dropout: float = 0.0,
        residual: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cell_type = cell
        self.bidirectional = bidirectional
        self.residual = residual
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.dropout = keras.layers.Dropout(dropout)
        self.rnns = []
        for index in range(num_layers):
            layer = recurrent_layer(cell, units, name=f"{cell}_{index}")
            if bidirectional:
                layer = keras.layers.Bidirectional(layer, name=f"bi_{cell}_{index}")
            self.rnns.append(layer)
        self.output_width = units * (2 if bidirectional else 1)

    def call(self, source, training=False):
        """Return (memory [B,S,M], mask [B,S], final states of the top layer [B,M] each)."""
        mask = ops.not_equal(source, 0)
        outputs = self.dropout(self.embedding(source), training=training)
        final_states = []
        for index, rnn in enumerate(self.rnns):
            results = rnn(outputs, mask=mask, training=training)
            sequence, final_states = results[0], list(results[1:])
            if self.residual and index > 0:
                sequence = sequence + outputs
            outputs = (
                self.dropout(sequence, training=training)
                if index < len(self.rnns) - 1
                else sequence
            )
        return outputs, mask, self.combine_directions(final_states)

    def combine_directions(self, states: list) -> list:
        """Concatenate forward and backward states: [h] or [h, c], each [B, M]."""
        if not self.bidirectional:
            return states
        per_direction = states_per_layer(self.cell_type)
        forward, backward = states[:per_direction], states[per_direction:]
        return [ops.concatenate([f, b], axis=-1) for f, b in zip(forward, backward, strict=True)]
