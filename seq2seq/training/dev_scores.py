"""The dev-set scores of an epoch: teacher-forced loss and perplexity, greedy BLEU and chrF.

Only the chief computes them (every worker holds the same weights); the training loop then
hands the numbers to every worker so that early stopping and LR schedules decide alike.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from seq2seq.config import DecodeConfig
from seq2seq.inference.prediction import corpus_scores, decode_corpus, perplexity
from seq2seq.model.losses import MaskedCrossEntropy
from seq2seq.search.searcher import Searcher


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
        scores = {"val_loss": loss, "val_perplexity": perplexity(loss)}
        if self.source_ids:
            if self.searcher is None:
                self.searcher = Searcher(self.model, jit_compile=self.jit_compile)
            greedy = DecodeConfig(method="greedy", max_length=self.max_length)
            hypotheses = decode_corpus(
                self.searcher, self.source_ids, greedy, self.detokenize, batch_size=128
            )
            bleu_chrf = corpus_scores(hypotheses, self.references)
            scores["dev_bleu"], scores["dev_chrf"] = bleu_chrf["bleu"], bleu_chrf["chrf"]
        return scores
