"""Attention over encoder outputs: additive (Bahdanau) and multiplicative (Luong).

Both layers share one calling convention so the decoder does not care which it has:
``keys = precompute(memory)`` once per source batch, then ``call(query, memory, keys,
mask)`` for a whole target sequence (training) or one step (decoding, T=1). Scores and
softmax run in float32 so mixed precision cannot overflow them.
"""

from __future__ import annotations

import keras
from keras import ops

from seq2seq.constants import NEG_INF
from seq2seq.model.arguments import check_choice, check_positive

KINDS = ("bahdanau", "luong", "none")
LUONG_SCORES = ("dot", "general")


def masked_softmax(scores, mask):
    """Softmax over source positions, ignoring padding; scores [B,T,S], mask [B,S]."""
    scores = ops.cast(scores, "float32")
    if mask is not None:
        scores = ops.where(ops.expand_dims(mask, 1), scores, NEG_INF)
    return ops.softmax(scores, axis=-1)


class Attention(keras.layers.Layer):
    """Base class: weights from ``score``, context = weights @ memory.

    Args:
        units: width of the query (the decoder's hidden size) and of the keys.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        query: ``[batch, target_length, units]`` decoder outputs (length 1 when stepping).
        memory: ``[batch, source_length, memory_width]`` encoder outputs.
        keys: ``precompute(memory)``, computed once per source batch.
        mask: ``[batch, source_length]`` bool, True at real source tokens (optional).

    Returns:
        ``(context, weights)``: context ``[batch, target_length, memory_width]`` and
        float32 weights ``[batch, target_length, source_length]`` that sum to 1 over
        unmasked positions.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        check_positive(units=units)
        self.units = units
        self.supports_masking = True  # the source mask is an explicit argument

    def compute_mask(self, *args, **kwargs):
        return None

    def precompute(self, memory):
        return memory

    def score(self, query, keys):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "units": self.units}

    def call(self, query, memory, keys, mask=None):
        weights = masked_softmax(self.score(query, keys), mask)
        context = ops.matmul(ops.cast(weights, memory.dtype), memory)
        return context, weights


@keras.saving.register_keras_serializable(package="seq2seq")
class BahdanauAttention(Attention):
    """Additive attention (Bahdanau et al., 2015): v . tanh(W_q q + W_k k).

    Args:
        units: width of the query and of the additive projection.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(units, **kwargs)
        self.query_layer = keras.layers.Dense(units, use_bias=False, name="query")
        self.key_layer = keras.layers.Dense(units, use_bias=False, name="key")
        self.energy_layer = keras.layers.Dense(1, use_bias=False, name="energy")

    def precompute(self, memory):
        return self.key_layer(memory)

    def score(self, query, keys):
        query = ops.expand_dims(self.query_layer(query), 2)  # [B,T,1,U]
        keys = ops.expand_dims(keys, 1)  # [B,1,S,U]
        # v . tanh(...) as one contraction with the energy layer's [U, 1] kernel: calling
        # the Dense layer reshapes [B,T,S,U] to a matrix, multiplies by a column and
        # squeezes, which costs more on a CPU. The layer keeps its weight (saved files).
        if not self.energy_layer.built:
            self.energy_layer.build(query.shape)
        energy = ops.cast(self.energy_layer.kernel[:, 0], query.dtype)
        return ops.einsum("btsu,u->bts", ops.tanh(query + keys), energy)


@keras.saving.register_keras_serializable(package="seq2seq")
class LuongAttention(Attention):
    """Multiplicative attention: q . k (``dot``) or q . W k (``general``).

    ``dot`` needs query and memory of the same width; when a bidirectional encoder makes
    the memory wider, the memory is projected, which makes ``dot`` behave as ``general``.

    Args:
        units: width of the query.
        memory_width: width of the encoder outputs.
        score_mode: ``"dot"`` or ``"general"``.
    """

    def __init__(self, units: int, memory_width: int, score_mode: str = "general", **kwargs):
        super().__init__(units, **kwargs)
        check_positive(memory_width=memory_width)
        check_choice("score_mode", score_mode, LUONG_SCORES)
        self.memory_width = memory_width
        self.score_mode = score_mode
        self.key_layer = None
        if score_mode == "general" or memory_width != units:
            self.key_layer = keras.layers.Dense(units, use_bias=False, name="key")

    def precompute(self, memory):
        return memory if self.key_layer is None else self.key_layer(memory)

    def score(self, query, keys):
        return ops.matmul(query, ops.transpose(keys, (0, 2, 1)))

    def get_config(self):
        return {
            **super().get_config(),
            "memory_width": self.memory_width,
            "score_mode": self.score_mode,
        }


def make_attention(
    kind: str, units: int, memory_width: int, luong_score: str = "general"
) -> Attention | None:
    """The attention layer the config names, or None for ``attention: none``."""
    check_choice("attention", kind, KINDS)
    if kind == "bahdanau":
        return BahdanauAttention(units, name="attention")
    if kind == "luong":
        return LuongAttention(units, memory_width, luong_score, name="attention")
    return None
