"""Ids and values every layer of the toolkit agrees on, in one place.

The special ids are the same for both tokenizers (the word tokenizer's Keras vocabulary and
SentencePiece are both told to use them), so the pipeline, the loss, the model's masks and
the searches can rely on them without asking a tokenizer. This module imports nothing.
"""

from __future__ import annotations

PAD, UNK, START, END = 0, 1, 2, 3
"""Padding, unknown token, start of a target (decoder input only) and end of a target."""

PAD_PIECE, UNK_PIECE, START_PIECE, END_PIECE = "<pad>", "<unk>", "<s>", "</s>"
SPECIAL_PIECES = (PAD_PIECE, UNK_PIECE, START_PIECE, END_PIECE)

NEG_INF = -1e9
"""A "minus infinity" for logits and attention scores that stays finite through sums."""

MAX_LOG_PERPLEXITY = 50.0
"""Perplexity is reported as exp(min(loss, this)): an untrained model cannot overflow it."""
