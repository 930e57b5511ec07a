"""Prediction: many id sequences through a search or a teacher-forced pass, and corpus scores.

The one way the toolkit predicts, between ``seq2seq.decoding`` (one padded batch) and
everything above it (``Translator``, the dev-set callback, ``evaluate``, ``bench``):

- ``batches`` sorts inputs by length and pads each batch with PAD: a batch runs until its
  longest output ends, so similar lengths waste fewer steps. Every batch carries its own
  sampling seed derived from the job's (``batch_seed``).
- ``search_batches`` / ``decode_corpus`` run a ``DecodeConfig`` over every batch.
- ``teacher_forced_loss`` scores references with the training pipeline's own framing
  (START + ids -> ids + END) and loss (``MaskedCrossEntropy``), weighting every target
  token equally.
- ``corpus_scores`` is sacrebleu's corpus BLEU and chrF with default settings.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seq2seq.constants import MAX_LOG_PERPLEXITY, PAD

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


def seeded_overrides(overrides: dict[str, Any], number: int) -> dict[str, Any]:
    """Decode ``overrides`` for the ``number``-th part of a job split into several calls."""
    seed = batch_seed(overrides.get("seed"), number)
    return overrides if seed is None else {**overrides, "seed": seed}


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
    searcher: Any, source_ids: IdLists, decode: Any, batch_size: int
) -> Iterator[tuple[Batch, Any]]:
    """``(batch, SearchResult)`` for every batch, searched with ``decode`` (a validated
    ``DecodeConfig``) and the batch's derived seed. Long jobs log their progress."""
    total = -(-len(source_ids) // batch_size)
    started = time.perf_counter()
    for batch in batches(source_ids, batch_size):
        seeded = dataclasses.replace(decode, seed=batch_seed(decode.seed, batch.number))
        yield batch, searcher.search(batch.source, seeded)
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
    from seq2seq.decoding import strip_ids

    outputs = [""] * len(source_ids)
    for batch, found in search_batches(searcher, source_ids, decode, batch_size):
        for row, position in enumerate(batch.positions):
            outputs[position] = detokenize(strip_ids(found.ids[row, 0]))
    return outputs


def perplexity(loss: float) -> float:
    """exp(loss), capped so that an untrained model's loss cannot overflow it."""
    return math.exp(min(loss, MAX_LOG_PERPLEXITY)) if math.isfinite(loss) else float("nan")


def teacher_forced_loss(
    model: Any,
    source_ids: IdLists,
    target_ids: IdLists,
    *,
    max_source_length: int,
    batch_size: int = 64,
    bucket_width: int = 4,
) -> dict[str, Any]:
    """Masked cross-entropy (no label smoothing) of the references, token-weighted.

    Sources are cut to ``max_source_length`` tokens, as when decoding; pairs are never
    dropped for length, only for an empty side (``loss_skipped_pairs``). Batches come
    from the training pipeline (``make_dataset``), so START/END framing and padding are
    exactly those the model was trained with.
    """
    from seq2seq.losses import MaskedCrossEntropy
    from seq2seq.pipeline import filter_by_length, make_dataset

    sources = [list(ids[:max_source_length]) for ids in source_ids]
    longest_target = max((len(ids) for ids in target_ids), default=0)
    kept, _, skipped = filter_by_length(sources, target_ids, max_source_length, longest_target)
    result = {"loss_pairs": len(kept), "loss_skipped_pairs": skipped}
    if not kept:
        return {**result, "loss": float("nan"), "perplexity": float("nan"), "loss_tokens": 0}
    dataset = make_dataset(
        sources,
        target_ids,
        batch_size=batch_size,
        max_source_length=max_source_length,
        max_target_length=longest_target,
        bucket_width=bucket_width,
        shuffle=False,
        seed=0,
    )
    loss_fn = MaskedCrossEntropy()
    total, tokens = 0.0, 0
    for inputs, target_out in dataset:
        count = int(np.count_nonzero(target_out.numpy() != PAD))
        total += float(loss_fn(target_out, model(inputs, training=False))) * count
        tokens += count
    loss = total / tokens
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
