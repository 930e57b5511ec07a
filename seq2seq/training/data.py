"""Training data: corpus -> tokenizers -> ids, and each worker's batches of an epoch.

Tokenizers are fitted on the training split only (or read back from a run folder). The
batches of an epoch come from ``dataset_function``: every input pipeline (one per worker)
shuffles with the epoch's seed and keeps its own share, so the shares are disjoint and a
resumed epoch sees the same order as an uninterrupted one.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from seq2seq.config import Config, ConfigError
from seq2seq.data.corpora.loading import Pair, load_splits
from seq2seq.data.corpora.spec import corpus_languages
from seq2seq.data.pipeline import count_target_tokens, filter_by_length, make_dataset
from seq2seq.data.tokenizers import END, Tokenizer, fit_tokenizer, load_tokenizer
from seq2seq.runs import RunPaths


@dataclass
class PreparedData:
    splits: dict[str, list[Pair]]
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    train_ids: tuple[list[list[int]], list[list[int]]]
    dev_ids: tuple[list[list[int]], list[list[int]]]
    train_target_tokens: int
    dropped: dict[str, int]
    target_counts: np.ndarray  # how often each target id (END included) is predicted


def fit_tokenizers(config: Config, splits: dict[str, list[Pair]]) -> tuple[Tokenizer, Tokenizer]:
    """Fit on the training split only."""
    data = config.data
    source_language, target_language = corpus_languages(data.corpus, data.reverse)
    symbols = (data.context_separator,) if data.context_turns else ()
    train = splits["train"]
    source = fit_tokenizer(
        data.tokenizer,
        [p.source for p in train],
        data.source_vocab_size,
        min_frequency=data.min_frequency,
        lowercase=data.lowercase,
        user_symbols=symbols,
        language=source_language,
    )
    target = fit_tokenizer(
        data.tokenizer,
        [p.target for p in train],
        data.target_vocab_size,
        min_frequency=data.min_frequency,
        lowercase=data.lowercase,
        language=target_language,
    )
    return source, target


def saved_tokenizers(paths: RunPaths) -> tuple[Tokenizer, Tokenizer] | None:
    if paths.source_vocab.is_dir() and paths.target_vocab.is_dir():
        return load_tokenizer(paths.source_vocab), load_tokenizer(paths.target_vocab)
    return None


def encode_pairs(
    pairs: list[Pair], source: Tokenizer, target: Tokenizer
) -> tuple[list[list[int]], list[list[int]]]:
    return source.encode_batch([p.source for p in pairs]), target.encode_batch(
        [p.target for p in pairs]
    )


def prepare_data(config: Config, saved: RunPaths | None) -> PreparedData:
    """Load the splits and encode them, reusing the tokenizers saved in ``saved`` if any."""
    data = config.data
    splits = load_splits(data)
    if not splits["train"]:
        raise ConfigError(f"corpus {data.corpus!r} gave no training pairs")
    tokenizers = saved_tokenizers(saved) if saved else None
    source_tokenizer, target_tokenizer = tokenizers or fit_tokenizers(config, splits)
    encoded, dropped = {}, {}
    for split in ("train", "dev"):
        source_ids, target_ids = encode_pairs(splits[split], source_tokenizer, target_tokenizer)
        source_ids, target_ids, dropped[split] = filter_by_length(
            source_ids, target_ids, data.max_source_length, data.max_target_length
        )
        encoded[split] = (source_ids, target_ids)
    if not encoded["train"][0]:
        raise ConfigError(
            f"no training pair fits data.max_source_length={data.max_source_length} and "
            f"data.max_target_length={data.max_target_length}"
        )
    train_targets = encoded["train"][1]
    return PreparedData(
        splits,
        source_tokenizer,
        target_tokenizer,
        encoded["train"],
        encoded["dev"],
        count_target_tokens(train_targets),
        dropped,
        target_frequencies(train_targets, target_tokenizer.vocab_size),
    )


def target_frequencies(target_ids: list[list[int]], vocab_size: int) -> np.ndarray:
    counts = np.zeros(vocab_size, dtype=np.float64)
    for ids in target_ids:
        np.add.at(counts, ids, 1)
    counts[END] += len(target_ids)
    return counts


def evenly_spaced(items: list, count: int) -> list:
    """``count`` items taken at even steps from first to last, in order (all when fewer)."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def dev_sample(config: Config, prepared: PreparedData) -> tuple[list[list[int]], list[str]]:
    """``dev_bleu_sentences`` dev pairs spread evenly over the dev split (within length
    limits), ids and references. Evenly spread, not the first ones: corpora such as Anki's are
    sorted by length, and their first pairs are the shortest sentences, whose BLEU says little
    about the rest (on spa-eng the first 300 average 3 words against 6.4 for the split)."""
    pairs = evenly_spaced(prepared.splits["dev"], config.train.dev_bleu_sentences)
    source_ids = prepared.source_tokenizer.encode_batch([p.source for p in pairs])
    keep = [i for i, ids in enumerate(source_ids) if 0 < len(ids) <= config.data.max_source_length]
    return [source_ids[i] for i in keep], [pairs[i].target for i in keep]


def vocabulary_fingerprint(*tokenizers: Tokenizer) -> int:
    """A checksum of the vocabularies, small enough to sum exactly over workers."""
    text = "\n".join(t.id_to_piece(i) for t in tokenizers for i in range(t.vocab_size))
    return zlib.crc32(text.encode("utf-8")) % (1 << 30)


@dataclass
class Schedule:
    """How many steps an epoch has, and whether the data stream repeats."""

    steps: int | None  # None: one exact pass over the (single) data shard
    repeat: bool


def epoch_schedule(config: Config, replicas: int, train_pairs: int) -> Schedule:
    """Every worker must run the same number of steps, or a peer waits for ever in an
    all-reduce: with several replicas an epoch is ``ceil(pairs / (replicas x batch))`` steps
    over an endless stream (length buckets leave each shard a different number of batches)."""
    if config.train.steps_per_epoch:
        return Schedule(config.train.steps_per_epoch, True)
    if replicas == 1:
        return Schedule(None, False)
    return Schedule(math.ceil(train_pairs / (replicas * config.train.batch_size)), True)


def dataset_function(config: Config, prepared: PreparedData, epoch: int, repeat: bool):
    """Each input pipeline's share of the epoch's data, shuffled with a per-epoch seed (so a
    resumed epoch sees the same order as an uninterrupted one)."""
    data, train = config.data, config.train

    def make(context: tf.distribute.InputContext) -> tf.data.Dataset:
        dataset = make_dataset(
            *prepared.train_ids,
            batch_size=train.batch_size,
            max_source_length=data.max_source_length,
            max_target_length=data.max_target_length,
            bucket_width=data.bucket_width,
            shuffle=True,
            seed=train.seed + epoch,
            shuffle_buffer=train.shuffle_buffer,
            shard=(context.num_input_pipelines, context.input_pipeline_id),
        )
        return dataset.repeat() if repeat else dataset

    return make
