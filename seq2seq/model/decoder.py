"""Recurrent decoder with attention, usable over a whole sequence or one step at a time.

Training without input feeding runs each RNN layer over the full target sequence (one
cuDNN call per layer on a GPU, ``fast_rnn`` elsewhere) and attends afterwards,
Luong-style. Decoding, and training with input feeding, steps the layers' ``.cell``
objects instead: the weights are the same, and a loop of plain cell calls can be compiled
into a ``tf.while_loop``.

Decoder state is a flat tuple of ``[B, *]`` tensors — the recurrent states of every
layer, then the previous attentional vector when input feeding is on — so beam search
can reorder it with one ``tf.gather`` per element.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from seq2seq.constants import PAD
from seq2seq.model import fast_rnn
from seq2seq.model.arguments import check_choice, check_positive, check_rate
from seq2seq.model.attention import KINDS, LUONG_SCORES, make_attention
from seq2seq.model.encoder import RNN_LAYERS, recurrent_layer, states_per_layer

COPY_FLOOR = 1e-9
"""Added to the copy model's probabilities before the log: a token neither generated nor
copied keeps a finite score (log 1e-9 = -20.7) and a finite gradient."""


@keras.saving.register_keras_serializable(package="seq2seq")
class Decoder(keras.layers.Layer):
    """Stacked recurrent decoder with attention over the encoder's memory.

    Args:
        vocab_size: target vocabulary size (the width of the logits).
        embedding_dim: width of the target embeddings.
        units: hidden size of each recurrent layer.
        memory_width: width of the encoder outputs it attends to.
        num_layers: stacked recurrent layers.
        cell: ``"gru"``, ``"lstm"`` or ``"rnn"``; must match the encoder's.
        attention: ``"bahdanau"``, ``"luong"`` or ``"none"``.
        luong_score: ``"dot"`` or ``"general"`` (Luong attention only).
        input_feeding: feed the previous attentional vector into the next step (Luong
            et al., 2015); training then steps the cells in a loop. Needs attention.
        dropout: rate on the embeddings, between layers and on the attentional vector.
        residual: add each layer's input to its output from the second layer on.
        tie_embeddings: reuse the embedding matrix as the output projection; needs
            ``embedding_dim == units``.
        copy_attention: a pointer-generator output (See et al., 2017): a learned switch
            mixes the generated distribution with the attention weights put on the target
            ids of the source tokens (``copy_ids``), so names and numbers can be copied.
            The outputs are then log-probabilities, which every consumer of logits (the
            loss, ``log_softmax`` in search) takes unchanged. Each step's input also
            holds CopyNet's selective read (Gu et al., 2016): the mean encoder output
            of the source positions that hold the previous token, so the recurrent
            state knows which source piece was just written and can move past it
            instead of copying it again. Needs attention.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments (whole sequence, teacher forcing):
        target_in: int ids ``[batch, target_length]`` (START + target, PAD-padded).
        memory, keys: the encoder outputs and ``precompute_keys(memory)``.
        source_mask: ``[batch, source_length]`` bool.
        states: ``initial_states(...)``, a flat tuple (see the module docstring).
        training: whether dropout is active.
        copy_ids: ``[batch, source_length]`` target id of each source token, -1 where the
            target vocabulary has no such piece (needed with ``copy_attention``).

    Returns:
        float32 logits ``[batch, target_length, vocab_size]`` (log-probabilities with
        ``copy_attention``) and attention weights ``[batch, target_length,
        source_length]``. ``step`` does the same for one token.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        units: int,
        memory_width: int,
        num_layers: int = 1,
        cell: str = "gru",
        attention: str = "bahdanau",
        luong_score: str = "general",
        input_feeding: bool = False,
        dropout: float = 0.0,
        residual: bool = False,
        tie_embeddings: bool = False,
        copy_attention: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive(
            vocab_size=vocab_size,
            embedding_dim=embedding_dim,
            units=units,
            memory_width=memory_width,
            num_layers=num_layers,
        )
        check_choice("cell", cell, RNN_LAYERS)
        check_choice("attention", attention, KINDS)
        check_choice("luong_score", luong_score, LUONG_SCORES)
        check_rate("dropout", dropout)
        if input_feeding and attention == "none":
            raise ValueError("input_feeding needs an attention mechanism (attention is 'none')")
        if copy_attention and attention == "none":
            raise ValueError("copy_attention needs an attention mechanism (attention is 'none')")
        if tie_embeddings and embedding_dim != units:
            raise ValueError(
                f"tie_embeddings needs embedding_dim == units, got {embedding_dim} and {units}"
            )
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.memory_width = memory_width
        self.num_layers = num_layers
        self.cell_type = cell
        self.attention_kind = attention
        self.luong_score = luong_score
        self.input_feeding = input_feeding
        self.dropout_rate = dropout
        self.residual = residual
        self.tie_embeddings = tie_embeddings
        self.copy_attention = copy_attention
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.dropout = keras.layers.Dropout(dropout)
        self.rnns = [recurrent_layer(cell, units, name=f"{cell}_{i}") for i in range(num_layers)]
        self.bridge_h = keras.layers.Dense(units * num_layers, activation="tanh", name="bridge_h")
        self.bridge_c = (
            keras.layers.Dense(units * num_layers, name="bridge_c") if cell == "lstm" else None
        )
        self.attention = make_attention(attention, units, memory_width, luong_score)
        self.combine = (
            keras.layers.Dense(units, activation="tanh", use_bias=False, name="combine")
            if self.attention is not None
            else None
        )
        self.projection = None if tie_embeddings else keras.layers.Dense(vocab_size, name="logits")
        self.copy_switch = keras.layers.Dense(1, name="copy_switch") if copy_attention else None

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "memory_width": self.memory_width,
            "num_layers": self.num_layers,
            "cell": self.cell_type,
            "attention": self.attention_kind,
            "luong_score": self.luong_score,
            "input_feeding": self.input_feeding,
            "dropout": self.dropout_rate,
            "residual": self.residual,
            "tie_embeddings": self.tie_embeddings,
            "copy_attention": self.copy_attention,
        }

    def build(self, *args, **kwargs):
        """Sub-layers build on their first call; ``Seq2Seq.build`` runs every path once.

        (Without this, Keras warns that the decoder has unbuilt state when input feeding
        first calls it inside a ``tf.while_loop``.)
        """
        self.built = True

    # -- states ------------------------------------------------------------------------

    def initial_states(self, encoder_states: list, batch_size) -> tuple:
        """Bridge the encoder's final states to every decoder layer's initial states."""
        hs = ops.split(self.bridge_h(encoder_states[0]), self.num_layers, axis=-1)
        if self.bridge_c is not None:
            source_c = encoder_states[1] if len(encoder_states) > 1 else encoder_states[0]
            cs = ops.split(self.bridge_c(source_c), self.num_layers, axis=-1)
            states = [s for pair in zip(hs, cs, strict=True) for s in pair]
        else:
            states = list(hs)
        if self.input_feeding:
            states.append(ops.zeros((batch_size, self.units), dtype=hs[0].dtype))
        return tuple(states)

    def layer_states(self, states: tuple, index: int) -> list:
        width = states_per_layer(self.cell_type)
        return list(states[index * width : (index + 1) * width])

    # -- output ------------------------------------------------------------------------

    def precompute_keys(self, memory):
        return None if self.attention is None else self.attention.precompute(memory)

    def attend(self, rnn_output, memory, keys, source_mask, training=False):
        """Attentional vector tanh(W[c; h]) and attention weights, or the RNN output."""
        if self.attention is None:
            batch, length = ops.shape(rnn_output)[0], ops.shape(rnn_output)[1]
            return rnn_output, ops.zeros((batch, length, ops.shape(memory)[1]), "float32")
        context, weights = self.attention(rnn_output, memory, keys, source_mask)
        combined = self.combine(ops.concatenate([context, rnn_output], axis=-1))
        return self.dropout(combined, training=training), weights

    def logits(self, vectors):
        if self.projection is not None:
            return ops.cast(self.projection(vectors), "float32")
        table = ops.cast(self.embedding.embeddings, "float32")
        return ops.matmul(ops.cast(vectors, "float32"), ops.transpose(table))

    def output(self, vectors, embedded, weights, copy_ids):
        """Scores over the vocabulary for attentional vectors [B,T,U]: logits, or with
        ``copy_attention`` log(p_gen * softmax(logits) + (1 - p_gen) * copied), where
        ``copied`` sums the attention [B,T,S] put on each target id of the source."""
        logits = self.logits(vectors)
        if self.copy_switch is None:
            return logits
        if copy_ids is None:
            raise ValueError("a decoder with copy_attention needs the source's copy_ids")
        switch_inputs = ops.concatenate([vectors, ops.cast(embedded, vectors.dtype)], axis=-1)
        generate = ops.sigmoid(ops.cast(self.copy_switch(switch_inputs), "float32"))
        # one_hot of -1 is a zero row: a source piece the target cannot spell copies nothing
        # (that attention mass is dropped; log_softmax in the loss and search renormalise).
        sources = tf.one_hot(copy_ids, self.vocab_size, dtype=tf.float32)  # [B,S,V]
        copied = tf.matmul(ops.cast(weights, "float32"), sources)  # [B,T,V]
        mixed = generate * ops.softmax(logits, axis=-1) + (1.0 - generate) * copied
        return ops.log(mixed + COPY_FLOOR)

    # -- inputs ------------------------------------------------------------------------

    def rnn_inputs(self, embedded, tokens, memory, copy_ids):
        """The first layer's inputs [B,T,*] for the previous tokens [B,T]: their embeddings,
        and with ``copy_attention`` the selective read of ``memory`` beside them.

        Without it a copy model is blind to what it copied: the same attention that put
        "6" in the output points at "6" again, and "1986" comes out as "19866666"."""
        if self.copy_switch is None:
            return embedded
        if copy_ids is None:
            raise ValueError("a decoder with copy_attention needs the source's copy_ids")
        # -1 (a source piece the target cannot spell) and the specials match no token.
        hits = ops.cast(
            ops.equal(ops.expand_dims(tokens, -1), ops.expand_dims(copy_ids, 1)), memory.dtype
        )  # [B,T,S]
        count = ops.maximum(ops.sum(hits, axis=-1, keepdims=True), ops.cast(1, memory.dtype))
        read = ops.matmul(hits, memory) / count  # [B,T,memory_width]
        return ops.concatenate([embedded, ops.cast(read, embedded.dtype)], axis=-1)

    # -- whole sequence (training) -----------------------------------------------------

    def call(self, target_in, memory, keys, source_mask, states, training=False, copy_ids=None):
        """Teacher-forced logits [B,T,V] (float32) and attention [B,T,S]."""
        if self.input_feeding:
            return self.unrolled(target_in, memory, keys, source_mask, states, training, copy_ids)
        target_mask = ops.not_equal(target_in, PAD)
        embedded = self.embedding(target_in)
        outputs = self.dropout(
            self.rnn_inputs(embedded, target_in, memory, copy_ids), training=training
        )
        for index, rnn in enumerate(self.rnns):
            results = fast_rnn.run(
                rnn, outputs, target_mask, self.layer_states(states, index), training
            )
            sequence = results[0]
            if self.residual and index > 0:
                sequence = sequence + outputs
            outputs = self.dropout(sequence, training=training)
        vectors, weights = self.attend(outputs, memory, keys, source_mask, training)
        return self.output(vectors, embedded, weights, copy_ids), weights

    def unrolled(self, target_in, memory, keys, source_mask, states, training, copy_ids):
        """Input feeding makes every step depend on the last: loop over time with the cells."""
        steps = tf.shape(target_in)[1]
        logits_array = tf.TensorArray(tf.float32, size=steps)
        weights_array = tf.TensorArray(tf.float32, size=steps)

        def body(t, states, logits_array, weights_array):
            logits, states, weights = self.step(
                target_in[:, t], states, memory, keys, source_mask, training, copy_ids
            )
            return t + 1, states, logits_array.write(t, logits), weights_array.write(t, weights)

        _, _, logits_array, weights_array = tf.while_loop(
            lambda t, *_: t < steps, body, (tf.constant(0), states, logits_array, weights_array)
        )
        transpose = (1, 0, 2)
        return (
            tf.transpose(logits_array.stack(), transpose),
            tf.transpose(weights_array.stack(), transpose),
        )

    # -- one step (decoding) -----------------------------------------------------------

    def step(self, tokens, states, memory, keys, source_mask, training=False, copy_ids=None):
        """One decoder step for ids [B]: (logits [B,V] float32, new states, attention [B,S])."""
        embedded = self.embedding(tokens)
        inputs = self.rnn_inputs(embedded[:, None], tokens[:, None], memory, copy_ids)[:, 0]
        inputs = self.dropout(inputs, training=training)
        if self.input_feeding:
            inputs = ops.concatenate([inputs, states[-1]], axis=-1)
        new_states = []
        for index, rnn in enumerate(self.rnns):
            output, layer_states = rnn.cell(
                inputs, self.layer_states(states, index), training=training
            )
            layer_states = (
                layer_states if isinstance(layer_states, list | tuple) else [layer_states]
            )
            new_states.extend(layer_states)
            if self.residual and index > 0:
                output = output + inputs
            inputs = self.dropout(output, training=training)
        vectors, weights = self.attend(
            ops.expand_dims(inputs, 1), memory, keys, source_mask, training
        )
        scores = self.output(vectors, ops.expand_dims(embedded, 1), weights, copy_ids)
        if self.input_feeding:
            new_states.append(vectors[:, 0])
        return scores[:, 0], tuple(new_states), weights[:, 0]
