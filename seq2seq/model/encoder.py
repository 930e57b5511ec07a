"""Recurrent encoder: embedding, then N stacked (optionally bidirectional) RNN layers.

Layers keep Keras's defaults (tanh/sigmoid, no recurrent dropout, ``unroll=False``,
GRU ``reset_after=True``) so TensorFlow picks the cuDNN kernels on a GPU; elsewhere
``fast_rnn`` runs the same weights with the input projection outside the time loop. Dropout
sits between layers instead of inside the cells, and masks come from right-padded ids.
"""

from __future__ import annotations

import keras
from keras import ops

from seq2seq.constants import PAD
from seq2seq.model import fast_rnn
from seq2seq.model.arguments import check_choice, check_positive, check_rate

RNN_LAYERS = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM, "rnn": keras.layers.SimpleRNN}


def recurrent_layer(cell: str, units: int, name: str) -> keras.layers.Layer:
    """A sequence-returning, state-returning RNN layer of the named cell type."""
    check_choice("cell", cell, RNN_LAYERS)
    return RNN_LAYERS[cell](units, return_sequences=True, return_state=True, name=name)


def states_per_layer(cell: str) -> int:
    """LSTM carries (h, c); GRU and the plain RNN carry h only."""
    return 2 if cell == "lstm" else 1


@keras.saving.register_keras_serializable(package="seq2seq")
class Encoder(keras.layers.Layer):
    """Maps source ids to per-position memory and a summary of the final states.

    Args:
        vocab_size: source vocabulary size (ids ``0 .. vocab_size - 1``; 0 is PAD).
        embedding_dim: width of the token embeddings.
        units: hidden size of each recurrent layer (per direction).
        num_layers: stacked recurrent layers.
        cell: ``"gru"``, ``"lstm"`` or ``"rnn"`` (Keras ``SimpleRNN``).
        bidirectional: run each layer both ways and concatenate; the memory is then
            ``2 * units`` wide.
        dropout: rate applied to the embeddings and between layers (not after the top).
        residual: add each layer's input to its output from the second layer on.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        source: int ids ``[batch, source_length]``, right-padded with PAD.
        training: whether dropout is active.

    Returns:
        ``(memory, mask, final_states)``: memory ``[batch, source_length, output_width]``,
        mask ``[batch, source_length]`` (True at real tokens), and the top layer's final
        states, directions concatenated (``[h]``, or ``[h, c]`` for LSTM), each
        ``[batch, output_width]``.
    """

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
        check_positive(
            vocab_size=vocab_size, embedding_dim=embedding_dim, units=units, num_layers=num_layers
        )
        check_choice("cell", cell, RNN_LAYERS)
        check_rate("dropout", dropout)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.cell_type = cell
        self.bidirectional = bidirectional
        self.dropout_rate = dropout
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

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "cell": self.cell_type,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout_rate,
            "residual": self.residual,
        }

    def call(self, source, training=False):
        """Return (memory [B,S,M], mask [B,S], final states of the top layer [B,M] each)."""
        mask = ops.not_equal(source, PAD)
        outputs = self.dropout(self.embedding(source), training=training)
        final_states = []
        for index, rnn in enumerate(self.rnns):
            results = fast_rnn.run(rnn, outputs, mask, training=training)
            sequence, final_states = results[0], results[1:]
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
