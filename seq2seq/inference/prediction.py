"""Prediction: many id sequences through a search or a teacher-forced pass, and corpus scores.

The one way the toolkit predicts, between ``seq2seq.search.searcher`` (one padded batch) and
everything above it (``Translator``, the dev-set callback, ``evaluate``, ``bench``):

- ``batches`` sorts inputs by length and pads each batch with PAD: a batch runs until its
  longest output ends, so similar lengths waste fewer steps. Every batch carries its own
  sampling seed derived from the job's (``batch_seed``).
- ``search_batches`` / ``decode_corpus`` run a ``DecodeConfig`` over every batch.
- ``SequenceScorer`` gives log p(target | source) per pair with the training framing
  (START + ids -> ids + END); ``teacher_forced_loss`` is its token-weighted mean (the
  masked cross-entropy without label smoothing) and MMI reranking reuses it.
- ``corpus_scores`` is sacrebleu's corpus BLEU and chrF with default settings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seq2seq.constants import END, MAX_LOG_PERPLEXITY, PAD, START

log = logging.getLogger(__name__)

IdLists = Sequence[Sequence[int]]
LOG_EVERY_BATCHES = 20


def batch_seed(seed: int | None, number: int) -> int | None:
    """The sampling seed of the ``number``-th batch (or chunk) decoded under ``seed``.

    Searches draw their noise from (seed, step, row), so batches sharing one seed would
    give row i of every batch the same noise, and similar inputs the same sample. Each
    batch gets its own seed derived from the job's, which stays reproducible; batch 0
    keeps the job's seed.
    """
    if seed is None or number == 0:
        return seed
    return int(np.random.SeedSequence([seed, number]).generate_state(1, np.uint64)[0] >> 2)


def pad_batch(rows: IdLists) -> np.ndarray:
    """Right-pad id lists with PAD into one int32 ``[len(rows), longest]`` array."""
    batch = np.full((len(rows), max(len(row) for row in rows)), PAD, dtype=np.int32)
    for index, row in enumerate(rows):
        batch[index, : len(row)] = row
    return batch


@dataclass(frozen=True)
class Batch:
    """Rows ``positions`` of the input list, padded into ``source``; the ``number``-th batch."""

    number: int
    positions: np.ndarray
    source: np.ndarray


def batches(source_ids: IdLists, batch_size: int, sort_by_length: bool = True) -> Iterator[Batch]:
    """Padded batches of at most ``batch_size`` inputs, shortest first (stable order)."""
    if batch_size < 1:
        raise ValueError(f"batch_size is {batch_size}; allowed: >= 1")
    lengths = [len(ids) for ids in source_ids]
    order = np.argsort(lengths, kind="stable") if sort_by_length else np.arange(len(lengths))
    for number, start in enumerate(range(0, len(order), batch_size)):
        positions = order[start : start + batch_size]
        yield Batch(number, positions, pad_batch([source_ids[i] for i in positions]))


def search_batches(
    searcher: Any,
    source_ids: IdLists,
    decode: Any,
    batch_size: int,
    constraints: Sequence[Sequence[Sequence[int]]] | None = None,
    glue: np.ndarray | None = None,
) -> Iterator[tuple[Batch, Any]]:
    """``(batch, SearchResult)`` for every batch, searched with ``decode`` (a validated
    ``DecodeConfig``) and the batch's derived seed. Long jobs log their progress.

    ``constraints``: per input, the id lists its output must contain (a glossary's terms;
    beam search only, ``seq2seq.search.constrained``), with ``glue`` the pieces banned
    right after one."""
    total = -(-len(source_ids) // batch_size)
    started = time.perf_counter()
    for batch in batches(source_ids, batch_size):
        seeded = decode.replace(seed=batch_seed(decode.seed, batch.number))
        if constraints is None:
            yield batch, searcher.search(batch.source, seeded)
        else:
            from seq2seq.search.constrained import pack_constraints

            packed = pack_constraints([constraints[i] for i in batch.positions])
            yield batch, searcher.search(batch.source, seeded, packed, glue)
        done = batch.number + 1
        if total > LOG_EVERY_BATCHES and (done % LOG_EVERY_BATCHES == 0 or done == total):
            log.info("decoded %d/%d batches (%.0fs)", done, total, time.perf_counter() - started)


def decode_corpus(
    searcher: Any,
    source_ids: IdLists,
    decode: Any,
    detokenize: Callable[[list[int]], str],
    batch_size: int = 64,
) -> list[str]:
    """The best hypothesis of every input as text, in input order."""
    from seq2seq.search.loops import strip_ids

    outputs = [""] * len(source_ids)
    for batch, found in search_batches(searcher, source_ids, decode, batch_size):
        for row, position in enumerate(batch.positions):
            outputs[position] = detokenize(strip_ids(found.ids[row, 0]))
    return outputs


def perplexity(loss: float) -> float:
    """exp(loss), capped so that an untrained model's loss cannot overflow it."""
    return math.exp(min(loss, MAX_LOG_PERPLEXITY)) if math.isfinite(loss) else float("nan")


class SequenceScorer:
    """Teacher-forced log-probabilities of whole targets, one number per pair.

    ``log p(target | source)`` is the sum over the target's tokens and END of the model's
    log-probability of each token given the source and the tokens before it: the training
    framing (START + ids -> ids + END), no label smoothing, not length-normalised. The
    one scoring path of the toolkit: ``teacher_forced_loss`` (evaluation perplexity) and
    mutual-information reranking (``seq2seq.inference.mmi``) both use it. Holds one compiled pass
    per model, so repeated small calls (a chat reply's candidates) do not retrace.
    """

    def __init__(self, model: Any):
        import tensorflow as tf

        self.model = model

        def summed(source, target_in, target_out):
            logits = tf.cast(model((source, target_in), training=False), tf.float32)
            picked = tf.gather(tf.nn.log_softmax(logits, axis=-1), target_out, batch_dims=2)
            mask = tf.cast(tf.not_equal(target_out, PAD), tf.float32)
            return tf.reduce_sum(picked * mask, axis=-1)

        self._summed = tf.function(summed, reduce_retracing=True)

    def log_probs(
        self,
        source_ids: IdLists,
        target_ids: IdLists,
        *,
        max_source_length: int,
        batch_size: int = 64,
    ) -> np.ndarray:
        """float64 ``[N]``: log p(target_i | source_i), in input order.

        Sources are cut to ``max_source_length`` tokens (as when decoding) and must not be
        empty; an empty target scores log p(END | source).
        """
        if len(source_ids) != len(target_ids):
            raise ValueError(f"{len(source_ids)} sources but {len(target_ids)} targets")
        sources = [list(ids[:max_source_length]) for ids in source_ids]
        if any(not ids for ids in sources):
            raise ValueError("an empty source cannot be scored")
        scores = np.zeros(len(sources), np.float64)
        for batch in batches(sources, batch_size):
            targets = [list(target_ids[i]) for i in batch.positions]
            target_in = pad_batch([[START, *ids] for ids in targets])
            target_out = pad_batch([[*ids, END] for ids in targets])
            scores[batch.positions] = self._summed(batch.source, target_in, target_out).numpy()
        return scores


def teacher_forced_loss(
    model: Any,
    source_ids: IdLists,
    target_ids: IdLists,
    *,
    max_source_length: int,
    batch_size: int = 64,
    scorer: SequenceScorer | None = None,
) -> dict[str, Any]:
    """Masked cross-entropy (no label smoothing) of the references, token-weighted:
    minus the summed ``SequenceScorer`` log-probabilities over the number of target
    tokens (END included).

    Sources are cut to ``max_source_length`` tokens, as when decoding; pairs are never
    dropped for length, only for an empty side (``loss_skipped_pairs``).
    """
    kept = [
        (source, target)
        for source, target in zip(source_ids, target_ids, strict=True)
        if len(source) and len(target)
    ]
    result = {"loss_pairs": len(kept), "loss_skipped_pairs": len(source_ids) - len(kept)}
    if not kept:
        return {**result, "loss": float("nan"), "perplexity": float("nan"), "loss_tokens": 0}
    scorer = scorer or SequenceScorer(model)
    sources, targets = [s for s, _ in kept], [t for _, t in kept]
    log_probs = scorer.log_probs(
        sources, targets, max_source_length=max_source_length, batch_size=batch_size
    )
    tokens = sum(len(target) + 1 for target in targets)
    loss = float(-log_probs.sum() / tokens)
    return {**result, "loss": loss, "perplexity": perplexity(loss), "loss_tokens": tokens}


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """sacrebleu corpus BLEU and chrF (default settings: cased, 13a) with signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    result: dict[str, Any] = {}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        score = metric.corpus_score(list(hypotheses), [list(references)])
        signature = str(metric.get_signature())
        result[name] = score.score
        result[f"{name}_signature"] = signature
        result[f"{name}_text"] = score.format(signature=signature)
    return result
