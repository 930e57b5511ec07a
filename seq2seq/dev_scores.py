"""The dev-set scores of an epoch: teacher-forced loss and perplexity, greedy BLEU and chrF.

Only the chief computes them (every worker holds the same weights); the training loop then
hands the numbers to every worker so that early stopping and LR schedules decide alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import sacrebleu
import tensorflow as tf

from seq2seq.callbacks import decode_corpus
from seq2seq.decoding import Searcher
from seq2seq.losses import MaskedCrossEntropy


class DevScorer:
    """Scores a model on the dev set.

    Args:
        model: the model being trained.
        dev: batches ``((source, target_in), target_out)`` for the teacher-forced loss.
        loss: the training loss (its token sum and count give the dev loss).
        source_ids, references: dev sentences for BLEU/chrF; empty skips BLEU.
        detokenize: target ids -> text.
        max_length: longest greedy output.
        jit_compile: XLA-compile the greedy search.
    """

    def __init__(
        self,
        model: keras.Model,
        dev: tf.data.Dataset,
        loss: MaskedCrossEntropy,
        source_ids: list[list[int]],
        references: list[str],
        detokenize: Callable[[list[int]], str],
        max_length: int,
        jit_compile: bool = True,
    ):
        self.model = model
        self.dev = dev
        self.loss = loss
        self.source_ids = source_ids
        self.references = references
        self.detokenize = detokenize
        self.max_length = max_length
        self.jit_compile = jit_compile
        self.searcher: Searcher | None = None
        self._loss_step = tf.function(self._batch_loss, reduce_retracing=True)

    @property
    def names(self) -> list[str]:
        """The keys ``scores`` returns, known before scoring (every worker needs them)."""
        bleu = ["dev_bleu", "dev_chrf"] if self.source_ids else []
        return ["val_loss", "val_perplexity", *bleu]

    def _batch_loss(self, inputs, target_out):
        logits = self.model(inputs, training=False)
        return self.loss.sum_and_count(target_out, logits)

    def dev_loss(self) -> float:
        total, tokens = 0.0, 0.0
        for inputs, target_out in self.dev:
            batch_sum, batch_tokens = self._loss_step(inputs, target_out)
            total += float(batch_sum)
            tokens += float(batch_tokens)
        return total / max(tokens, 1.0)

    def scores(self) -> dict[str, float]:
        loss = self.dev_loss()
        scores = {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0))}
        if self.source_ids:
            if self.searcher is None:
                self.searcher = Searcher(self.model, jit_compile=self.jit_compile)
            hypotheses = decode_corpus(
                self.searcher, self.source_ids, self.detokenize, self.max_length
            )
            scores["dev_bleu"] = sacrebleu.corpus_bleu(hypotheses, [self.references]).score
            scores["dev_chrf"] = sacrebleu.corpus_chrf(hypotheses, [self.references]).score
        return scores
