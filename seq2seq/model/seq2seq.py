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
    "copy_attention",
)
"""The architecture fields ``Seq2Seq`` saves in a ``.keras`` file: the ``ModelConfig``
fields ``build_model`` passes on, under the same names."""


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
        input_feeding, dropout, residual, tie_embeddings, copy_attention: see ``Decoder``.
            With ``copy_attention`` the model holds ``copy_table``, the target id of each
            source id (-1: none), a non-trainable weight saved with the others; set it
            with ``set_copy_table`` (``seq2seq.data.tokenizers.copy_table``).
        **kwargs: ``keras.Model`` arguments.

    Every default is ``ModelConfig``'s.

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
        cell: str = ModelConfig.cell,
        embedding_dim: int = ModelConfig.embedding_dim,
        hidden_size: int = ModelConfig.hidden_size,
        encoder_layers: int = ModelConfig.encoder_layers,
        decoder_layers: int = ModelConfig.decoder_layers,
        bidirectional: bool = ModelConfig.bidirectional,
        attention: str = ModelConfig.attention,
        luong_score: str = ModelConfig.luong_score,
        input_feeding: bool = ModelConfig.input_feeding,
        dropout: float = ModelConfig.dropout,
        residual: bool = ModelConfig.residual,
        tie_embeddings: bool = ModelConfig.tie_embeddings,
        copy_attention: bool = ModelConfig.copy_attention,
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
            "copy_attention": copy_attention,
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
            copy_attention=copy_attention,
            name="decoder",
        )
        self.copy_table = (
            self.add_weight(
                shape=(source_vocab_size,),
                initializer=keras.initializers.Constant(-1),
                dtype="int32",
                trainable=False,
                name="copy_table",
            )
            if copy_attention
            else None
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
        logits, _ = self.teacher_forced(source, target_in, training=training)
        # A fresh tensor carries no Keras mask: the loss masks PAD targets itself.
        return tf.identity(logits)

    def encode(self, source, training=False):
        """Source ids [B,S] -> (memory tuple, source mask [B,S], initial decoder states).

        The memory tuple is (values, attention keys) and, with copy attention, the target
        id of every source token: search loops pass it back to ``decode_step`` as it is.
        """
        values, mask, final_states = self.encoder(source, training=training)
        keys = self.decoder.precompute_keys(values)
        states = self.decoder.initial_states(final_states, ops.shape(source)[0])
        memory = (values, values if keys is None else keys)
        if self.copy_table is not None:
            memory += (ops.take(self.copy_table, ops.cast(source, "int32"), axis=0),)
        return memory, mask, states

    def decode_step(self, tokens, states, memory, source_mask):
        """Ids [B] -> (logits [B,V] float32, new states, attention weights [B,S])."""
        return self.decoder.step(
            tokens, states, memory[0], memory[1], source_mask, copy_ids=copy_ids_of(memory)
        )

    def teacher_forced(self, source, target_in, training=False):
        """Logits [B,T,V] and attention [B,T,S] for a given target prefix."""
        memory, mask, states = self.encode(source, training=training)
        return self.decoder(
            target_in,
            memory[0],
            memory[1],
            mask,
            states,
            training=training,
            copy_ids=copy_ids_of(memory),
        )

    def attention_weights(self, source, target_in):
        """Teacher-forced attention [B,T,S], for inspecting a reference translation."""
        return self.teacher_forced(source, target_in)[1]

    def set_copy_table(self, table) -> None:
        """Target id of each source id (-1: the target vocabulary has no such piece)."""
        if self.copy_table is None:
            raise ValueError("set_copy_table: this model has no copy_attention")
        table = np.asarray(table, dtype="int32")
        if table.shape != tuple(self.copy_table.shape):
            raise ValueError(
                f"set_copy_table: {table.shape[0]} entries for a source vocabulary of "
                f"{self.copy_table.shape[0]}"
            )
        self.copy_table.assign(table)

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


def copy_ids_of(memory: tuple):
    """The source's target ids in an ``encode`` memory tuple (None without copy attention)."""
    return memory[2] if len(memory) > 2 else None


def build_model(
    config: ModelConfig,
    source_vocab_size: int,
    target_vocab_size: int,
    copy_table=None,
) -> Seq2Seq:
    """A built ``Seq2Seq`` with the architecture a ``ModelConfig`` describes.

    ``copy_table`` (``seq2seq.data.tokenizers.copy_table``) is needed for a new copy model;
    one whose weights will be loaded gets its table from them.
    """
    model = Seq2Seq(
        source_vocab_size,
        target_vocab_size,
        **{name: getattr(config, name) for name in ARCHITECTURE},
    )
    model.build()
    if copy_table is not None and model.copy_table is not None:
        model.set_copy_table(copy_table)
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
        "output projection": count([decoder.projection, decoder.copy_switch]),
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
