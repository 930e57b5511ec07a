"""Encoder-decoder model: serialisable Keras layers and the ``Seq2Seq`` model."""

from seq2seq.model.attention import BahdanauAttention, LuongAttention
from seq2seq.model.seq2seq import Seq2Seq, build_model, parameter_counts

__all__ = ["BahdanauAttention", "LuongAttention", "Seq2Seq", "build_model", "parameter_counts"]
