"""Training data: the prepared folder a run trains on, and each worker's batches of an epoch.

``prepare_data`` finds or makes the prepared folder (``seq2seq.data.prepare``): token-id
shards, tokenizers fitted on a sample of the training split (or a resumed run's own), the
dev/test text. Batches stream from the shards (``seq2seq.data.pipeline``): each input
pipeline (one per worker) reads its own files, shuffled with the epoch's seed, so a resumed
epoch sees the same order as an uninterrupted one, and every pair is seen once per epoch.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from seq2seq.config import Config
from seq2seq.data.corpora.spec import CorpusError
from seq2seq.data.corpus_rows import corpus_name
from seq2seq.data.pipeline import epoch_steps, split_batches, train_batches
from seq2seq.data.prepare import ensure_prepared
from seq2seq.data.prepared import PreparedFolder
from seq2seq.data.tokenizers import Tokenizer, load_tokenizer
from seq2seq.runs import RunPaths

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """A checked prepared folder and its tokenizers (a resumed run's, which it was made with)."""

    folder: PreparedFolder
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer

    @property
    def pairs(self) -> dict[str, int]:
        return {split: self.folder.pairs(split) for split in ("train", "dev", "test")}

    @property
    def dropped(self) -> dict[str, int]:
        """Pairs left out while preparing, by split and reason."""
        return dict(self.folder.manifest["dropped"])

    @property
    def train_target_tokens(self) -> int:
        return self.folder.target_tokens

    @property
    def target_counts(self) -> np.ndarray:
        """How often each target id (END included) is predicted in training."""
        return self.folder.target_counts()


def saved_tokenizers(paths: RunPaths) -> tuple[Tokenizer, Tokenizer] | None:
    if paths.source_vocab.is_dir() and paths.target_vocab.is_dir():
        return load_tokenizer(paths.source_vocab), load_tokenizer(paths.target_vocab)
    return None


def prepare_data(
    config: Config, saved: RunPaths | None, show_progress: bool = True
) -> PreparedData:
    """The run's prepared folder: ``data.prepared``, else the cache for its data config
    (prepared now on first use). ``saved``: a run whose tokenizers must be kept."""
    tokenizers = saved_tokenizers(saved) if saved else None
    folder = ensure_prepared(config.data, tokenizers, show_progress)
    if not folder.pairs("dev"):
        raise CorpusError(
            f"{corpus_name(config.data)} leaves the dev split empty ({folder.pairs('train'):,} "
            "training pairs, none for dev within the length limits): the dev loss and BLEU "
            "choose the best epoch and stop training, so raise data.dev_fraction or give "
            "more pairs"
        )
    if tokenizers is None:
        tokenizers = load_tokenizer(folder.source_vocab), load_tokenizer(folder.target_vocab)
    counts = ", ".join(f"{split} {folder.pairs(split):,}" for split in ("train", "dev", "test"))
    log.info("%s: %s pairs (%s)", corpus_name(config.data), counts, folder.root)
    return PreparedData(folder, *tokenizers)


def evenly_spaced(items: list, count: int) -> list:
    """``count`` items taken at even steps from first to last, in order (all when fewer)."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def dev_sample(config: Config, prepared: PreparedData) -> tuple[list[list[int]], list[str]]:
    """``dev_bleu_sentences`` dev pairs spread evenly over the dev split, ids and references.
    Evenly spread, not the first ones: corpora such as Anki's are sorted by length, and their
    first pairs are the shortest sentences, whose BLEU says little about the rest (on spa-eng
    the first 300 average 3 words against 6.4 for the split)."""
    pairs = evenly_spaced(prepared.folder.text_pairs("dev"), config.train.dev_bleu_sentences)
    source_ids = prepared.source_tokenizer.encode_batch([source for source, _ in pairs])
    keep = [i for i, ids in enumerate(source_ids) if 0 < len(ids) <= config.data.max_source_length]
    return [source_ids[i] for i in keep], [pairs[i][1] for i in keep]


def dev_batches(config: Config, prepared: PreparedData) -> tf.data.Dataset:
    data = config.data
    return split_batches(
        prepared.folder,
        "dev",
        batch_size=config.train.batch_size,
        max_source_length=data.max_source_length,
        max_target_length=data.max_target_length,
        bucket_width=data.bucket_width,
    )


@dataclass
class Schedule:
    """How many steps an epoch has, and whether the data stream repeats."""

    steps: int | None  # None: until the data ends
    repeat: bool


def input_pipelines() -> int:
    """Workers reading the data: one per task in ``TF_CONFIG``, else one."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return 1
    cluster = json.loads(text).get("cluster", {})
    return max(1, sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")))


def epoch_schedule(
    config: Config, replicas: int, prepared: PreparedData, pipelines: int | None = None
) -> Schedule:
    """``train.steps_per_epoch`` steps over an endless stream, else one exact pass, whose
    length is known before it starts (from the manifest's length histograms), so progress
    bars know it too. Every worker must run the same number of steps, or a peer waits for
    ever in an all-reduce: with several replicas an epoch is the busiest pipeline's batch
    count (``epoch_steps``), and the others pad theirs with batches that train nothing."""
    if config.train.steps_per_epoch:
        return Schedule(config.train.steps_per_epoch, True)
    data = config.data
    steps = epoch_steps(
        prepared.folder,
        pipelines or input_pipelines(),
        replicas,
        config.train.batch_size,
        data.max_source_length,
        data.max_target_length,
        data.bucket_width,
    )
    return Schedule(steps, False)


def dataset_function(
    config: Config, prepared: PreparedData, epoch: int, schedule: Schedule, skip: int = 0
):
    """Each input pipeline's share of the epoch's data: its own shard files, shuffled with a
    per-epoch seed (so a resumed epoch sees the same order as an uninterrupted one).
    ``skip``: global steps already trained (a mid-epoch resume): their batches are read and
    dropped, so the epoch goes on with the batch it stopped at."""
    data, train = config.data, config.train

    def make(context: tf.distribute.InputContext) -> tf.data.Dataset:
        exact = schedule.steps is not None and not schedule.repeat
        replicas_here = max(1, context.num_replicas_in_sync // context.num_input_pipelines)
        dataset = train_batches(
            prepared.folder,
            batch_size=train.batch_size,
            max_source_length=data.max_source_length,
            max_target_length=data.max_target_length,
            bucket_width=data.bucket_width,
            seed=train.seed + epoch,
            shuffle_buffer=train.shuffle_buffer,
            pipelines=context.num_input_pipelines,
            index=context.input_pipeline_id,
            batches=schedule.steps * replicas_here if exact else None,
        )
        dataset = dataset.repeat() if schedule.repeat else dataset
        return dataset.skip(skip * replicas_here) if skip else dataset

    return make
