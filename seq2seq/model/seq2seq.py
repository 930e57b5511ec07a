"""The encoder-decoder ``keras.Model``: teacher-forced training plus a step API for search."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from seq2seq.config import ModelConfig
from seq2seq.model.decoder import Decoder
from seq2seq.model.encoder import Encoder

ARCHITECTURE = (
    "cell",
    "embedding_dim",
    "hidden_size",
    "encoder_layers",
    "decoder_layers",
    "bidirectional",
    "attention",
    "luong_score",
    "input_feeding",
    "dropout",
    "residual",
    "tie_embeddings",
)
"""The architecture fields ``Seq2Seq`` saves in a ``.keras`` file (its own names, which
need not follow ``ModelConfig``'s: renaming a config field leaves saved models loadable)."""


@keras.saving.register_keras_serializable(package="seq2seq")
class Seq2Seq(keras.Model):
    """``call((source, target_in))`` -> logits [B,T,V]; ``encode`` + ``decode_step`` for search.

    Args:
        source_vocab_size, target_vocab_size: vocabulary sizes of the two tokenizers.
        cell: ``"gru"``, ``"lstm"`` or ``"rnn"``, for encoder and decoder.
        embedding_dim: width of both embeddings.
        hidden_size: hidden size of every recurrent layer (per direction).
        encoder_layers, decoder_layers: stacked recurrent layers on each side.
        bidirectional: bidirectional encoder layers.
        attention: ``"bahdanau"``, ``"luong"`` or ``"none"``; ``luong_score``: ``"dot"``
            or ``"general"``.
        input_feeding, dropout, residual, tie_embeddings: see ``Decoder``.
        **kwargs: ``keras.Model`` arguments.

    Call arguments:
        inputs: ``(source, target_in)`` int ids ``[B,S]`` and ``[B,T]``, PAD-padded.
        training: whether dropout is active.

    ``get_config`` holds exactly these arguments, so a saved model rebuilds from its own
    file under ``safe_mode``; files saved before (with a ``model_config`` dict) still load.
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        cell: str = "gru",
        embedding_dim: int = 256,
        hidden_size: int = 256,
        encoder_layers: int = 1,
        decoder_layers: int = 1,
        bidirectional: bool = True,
        attention: str = "bahdanau",
        luong_score: str = "general",
        input_feeding: bool = False,
        dropout: float = 0.2,
        residual: bool = False,
        tie_embeddings: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.architecture = {
            "cell": cell,
            "embedding_dim": embedding_dim,
            "hidden_size": hidden_size,
            "encoder_layers": encoder_layers,
            "decoder_layers": decoder_layers,
            "bidirectional": bidirectional,
            "attention": attention,
            "luong_score": luong_score,
            "input_feeding": input_feeding,
            "dropout": dropout,
            "residual": residual,
            "tie_embeddings": tie_embeddings,
        }
        self.encoder = Encoder(
            source_vocab_size,
            embedding_dim,
            hidden_size,
            num_layers=encoder_layers,
            cell=cell,
            bidirectional=bidirectional,
            dropout=dropout,
            residual=residual,
            name="encoder",
        )
        self.decoder = Decoder(
            target_vocab_size,
            embedding_dim,
            hidden_size,
            memory_width=self.encoder.output_width,
            num_layers=decoder_layers,
            cell=cell,
            attention=attention,
            luong_score=luong_score,
            input_feeding=input_feeding,
            dropout=dropout,
            residual=residual,
            tie_embeddings=tie_embeddings,
            name="decoder",
        )

    @classmethod
    def from_config(cls, config):
        """Also reads files saved before the architecture had its own fields, when it
        was a ``ModelConfig`` dict under ``model_config`` (same names as today)."""
        config = dict(config)
        legacy = config.pop("model_config", None) or {}
        return cls(**{key: legacy[key] for key in ARCHITECTURE if key in legacy}, **config)

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
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
            **self.architecture,
        }

    def get_build_config(self):
        return {"eager_build": True}

    def build_from_config(self, config):
        self.build()


def build_model(config: ModelConfig, source_vocab_size: int, target_vocab_size: int) -> Seq2Seq:
    """A built ``Seq2Seq`` with the architecture a ``ModelConfig`` describes."""
    model = Seq2Seq(
        source_vocab_size,
        target_vocab_size,
        cell=config.cell,
        embedding_dim=config.embedding_dim,
        hidden_size=config.hidden_size,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        bidirectional=config.bidirectional,
        attention=config.attention,
        luong_score=config.luong_score,
        input_feeding=config.input_feeding,
        dropout=config.dropout,
        residual=config.residual,
        tie_embeddings=config.tie_embeddings,
    )
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


CELLS = ("gru", "lstm", "rnn")


def parameter_counts_per_cell(model: Seq2Seq) -> dict[str, dict[str, int]]:
    """``parameter_counts`` of ``model`` and of the same shape with each other cell.

    The other models are built (weights created, never trained) only to be counted:
    where GRU, LSTM and a plain RNN differ is the recurrent layers' gate blocks.
    """
    counts = {model.architecture["cell"]: parameter_counts(model)}
    for cell in CELLS:
        if cell not in counts:
            other = Seq2Seq(
                model.source_vocab_size,
                model.target_vocab_size,
                **{**model.architecture, "cell": cell},
            )
            other.build()
            counts[cell] = parameter_counts(other)
    return counts
