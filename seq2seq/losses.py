"""Masked cross-entropy with optional label smoothing, over PAD-padded targets."""

from __future__ import annotations

import keras
from keras import ops

from seq2seq.constants import PAD


@keras.saving.register_keras_serializable(package="seq2seq")
class MaskedCrossEntropy(keras.losses.Loss):
    """Mean token cross-entropy that ignores PAD positions.

    Label smoothing spreads ``label_smoothing`` of the target mass uniformly over the
    vocabulary; the loss is averaged over real (non-PAD) tokens only, so long and short
    batches weigh tokens equally.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "masked_cross_entropy", **kwargs):
        super().__init__(name=name, reduction="sum", **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        total, tokens = self.sum_and_count(y_true, y_pred)
        return total / ops.maximum(tokens, 1.0)

    def sum_and_count(self, y_true, y_pred):
        """Summed token loss and the number of real tokens, kept apart so that data-parallel
        training can divide by the token count of the *global* batch."""
        # The fused sparse cross-entropy never materialises log-probabilities [B,T,V];
        # the smoothing term -mean(log p) is rebuilt from it as logsumexp - mean(logits).
        y_true = ops.cast(y_true, "int32")
        logits = ops.cast(y_pred, "float32")
        loss = ops.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
        if self.label_smoothing:
            picked = ops.take_along_axis(logits, ops.expand_dims(y_true, -1), axis=-1)[..., 0]
            uniform = loss + picked - ops.mean(logits, axis=-1)
            loss = (1.0 - self.label_smoothing) * loss + self.label_smoothing * uniform
        mask = ops.cast(ops.not_equal(y_true, PAD), "float32")
        return ops.sum(loss * mask), ops.sum(mask)

    def get_config(self):
        return {"label_smoothing": self.label_smoothing, "name": self.name}
