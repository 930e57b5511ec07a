"""Encoder-decoder model: serialisable Keras layers and the ``Seq2Seq`` model."""

from seq2seq.model.attention import BahdanauAttention, LuongAttention
from seq2seq.model.decoder import Decoder
from seq2seq.model.encoder import Encoder
from seq2seq.model.seq2seq import (
    CELLS,
    Seq2Seq,
    build_model,
    parameter_counts,
    parameter_counts_per_cell,
)

__all__ = [
    "CELLS",
    "BahdanauAttention",
    "Decoder",
    "Encoder",
    "LuongAttention",
    "Seq2Seq",
    "build_model",
    "parameter_counts",
    "parameter_counts_per_cell",
]
