"""The encoder-decoder ``keras.Model``: teacher-forced training plus a step API for search."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from seq2seq.config import ModelConfig
from seq2seq.model.decoder import Decoder
from seq2seq.model.encoder import Encoder


@keras.saving.register_keras_serializable(package="seq2seq")
class Seq2Seq(keras.Model):
    """``call((source, target_in))`` -> logits [B,T,V]; ``encode`` + ``decode_step`` for search.

    The whole architecture is described by ``model_config`` (a ``ModelConfig`` as a dict),
    so ``get_config`` is small and a saved model rebuilds from it under ``safe_mode``.
    """

    def __init__(
        self, model_config: dict, source_vocab_size: int, target_vocab_size: int, **kwargs
    ):
        super().__init__(**kwargs)
        settings = ModelConfig(**model_config)
        self.model_config = dataclasses.asdict(settings)
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.encoder = Encoder(
            source_vocab_size,
            settings.embedding_dim,
            settings.hidden_size,
            num_layers=settings.encoder_layers,
            cell=settings.cell,
            bidirectional=settings.bidirectional,
            dropout=settings.dropout,
            residual=settings.residual,
            name="encoder",
        )
        self.decoder = Decoder(
            target_vocab_size,
            settings.embedding_dim,
            settings.hidden_size,
            memory_width=self.encoder.output_width,
            num_layers=settings.decoder_layers,
            cell=settings.cell,
            attention=settings.attention,
            luong_score=settings.luong_score,
            input_feeding=settings.input_feeding,
            dropout=settings.dropout,
            residual=settings.residual,
            tie_embeddings=settings.tie_embeddings,
            name="decoder",
        )

    def build(self, input_shape=None):
        """Create every weight eagerly with a tiny forward pass and one decoding step."""
        if self.built:
            return
        source = np.ones((1, 2), dtype="int32")
        self.call((source, source))
        memory, mask, states = self.encode(source)
        self.decode_step(ops.ones((1,), "int32"), states, memory, mask)
        self.built = True

    def call(self, inputs, training=False):
        source, target_in = inputs
        memory, mask, states = self.encode(source, training=training)
        logits, _ = self.decoder(target_in, memory[0], memory[1], mask, states, training=training)
        # A fresh tensor carries no Keras mask: the loss masks PAD targets itself.
        return tf.identity(logits)

    def encode(self, source, training=False):
        """Source ids [B,S] -> (memory tuple, source mask [B,S], initial decoder states)."""
        values, mask, final_states = self.encoder(source, training=training)
        keys = self.decoder.precompute_keys(values)
        states = self.decoder.initial_states(final_states, ops.shape(source)[0])
        return (values, values if keys is None else keys), mask, states

    def decode_step(self, tokens, states, memory, source_mask):
        """Ids [B] -> (logits [B,V] float32, new states, attention weights [B,S])."""
        return self.decoder.step(tokens, states, memory[0], memory[1], source_mask)

    def attention_weights(self, source, target_in):
        """Teacher-forced attention [B,T,S], for inspecting a reference translation."""
        memory, mask, states = self.encode(source)
        _, weights = self.decoder(target_in, memory[0], memory[1], mask, states)
        return weights

    def get_config(self):
        return {
            **super().get_config(),
            "model_config": self.model_config,
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
        }

    def get_build_config(self):
        return {"eager_build": True}

    def build_from_config(self, config):
        self.build()


def build_model(config: ModelConfig, source_vocab_size: int, target_vocab_size: int) -> Seq2Seq:
    model = Seq2Seq(dataclasses.asdict(config), source_vocab_size, target_vocab_size)
    model.build()
    return model


def parameter_counts(model: Seq2Seq) -> dict[str, int]:
    """Trainable parameters per part: where GRU and LSTM differ (3 vs 4 gate blocks)."""
    encoder, decoder = model.encoder, model.decoder

    def count(layers) -> int:
        return int(sum(np.prod(w.shape) for layer in layers if layer for w in layer.weights))

    parts = {
        "source embedding": count([encoder.embedding]),
        "encoder rnn": count(encoder.rnns),
        "bridge": count([decoder.bridge_h, decoder.bridge_c]),
        "target embedding": count([decoder.embedding]),
        "decoder rnn": count(decoder.rnns),
        "attention": count([decoder.attention, decoder.combine]),
        "output projection": count([decoder.projection]),
    }
    parts["total"] = sum(parts.values())
    return parts
