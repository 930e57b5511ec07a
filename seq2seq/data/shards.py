"""Prepared shards -> ``tf.data``: interleaved reads, shuffle, length buckets, prefetch.

A shard is a TFRecord file; each record is one pair as little-endian int32s
``[source_length, *source_ids, *target_ids]`` (``prepared.RECORD``), decoded in the graph with
``tf.io.decode_raw``: no protobuf parsing, no Python per example.

Workers take whole files (file-level sharding, as tf.data's guide advises): with N input
pipelines, pipeline i reads shards i, i+N, ... and nothing else. Every pipeline must run
the same number of steps (a peer would otherwise wait for ever in an all-reduce), so each
one's epoch is padded to the longest one's with batches that carry no target tokens
(``filler_batches``): every training pair is seen exactly once per epoch, and the padding
adds nothing to the loss or the gradients. Step counts come from the length histograms in
the manifest (``epoch_steps``), so no pipeline has to read its data to count batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from seq2seq.constants import END, PAD, START, UNK
from seq2seq.data.pipeline import batch_count, bucket_batches, bucket_boundaries
from seq2seq.data.prepared import PreparedDataError, PreparedFolder

READ_PARALLEL_FILES = 8


def decode_record(record: tf.Tensor):
    """One record (``prepared.encode_record``) -> ``((source, target_in), target_out)``, as
    ``pipeline`` batches them."""
    ids = tf.io.decode_raw(record, tf.int32, little_endian=True)
    length = ids[0]
    source = ids[1 : 1 + length]
    target = ids[1 + length :]
    target_in = tf.concat([[START], target], axis=0)
    target_out = tf.concat([target, [END]], axis=0)
    return (source, target_in), target_out


def read_records(files: Sequence[Path | str], interleave: bool) -> tf.data.Dataset:
    names = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    if not interleave:
        return names.flat_map(tf.data.TFRecordDataset).map(
            decode_record, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    records = names.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), READ_PARALLEL_FILES) or 1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return records.map(decode_record, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def pipeline_files(folder: PreparedFolder, pipelines: int, index: int) -> list[int]:
    """The train shard indices input pipeline ``index`` of ``pipelines`` reads."""
    count = len(folder.shards("train"))
    if count < pipelines:
        raise PreparedDataError(
            f"{folder.root} has {count} training shards but {pipelines} workers read it; "
            f"each worker needs at least one: prepare it again with data.min_shards={pipelines} "
            "or more"
        )
    return list(range(index, count, pipelines))


def pipeline_batches(
    folder: PreparedFolder, shard_indices: Sequence[int], batch_size: int, boundaries
) -> int:
    shards = folder.shards("train")
    width = max((len(shards[i].lengths) for i in shard_indices), default=0)
    counts = np.zeros(width, dtype=np.int64)
    for i in shard_indices:
        lengths = np.asarray(shards[i].lengths, dtype=np.int64)
        counts[: len(lengths)] += lengths
    return batch_count(counts, batch_size, boundaries)


def epoch_steps(
    folder: PreparedFolder,
    pipelines: int,
    replicas: int,
    batch_size: int,
    max_source_length: int,
    max_target_length: int,
    bucket_width: int,
) -> int:
    """Global steps of one exact epoch: the busiest pipeline's batches over its replicas."""
    boundaries = bucket_boundaries(max_source_length, max_target_length, bucket_width)
    per_pipeline = max(1, replicas // pipelines)
    return max(
        -(
            -pipeline_batches(folder, pipeline_files(folder, pipelines, i), batch_size, boundaries)
            // per_pipeline
        )
        for i in range(pipelines)
    )


def filler_batches() -> tf.data.Dataset:
    """Endless batches with no target token: they add nothing to the loss or gradients."""
    source = tf.constant([[UNK]], tf.int32)
    target_in = tf.constant([[START]], tf.int32)
    target_out = tf.constant([[PAD]], tf.int32)
    return tf.data.Dataset.from_tensors(((source, target_in), target_out)).repeat()


def train_batches(
    folder: PreparedFolder,
    *,
    batch_size: int,
    max_source_length: int,
    max_target_length: int,
    bucket_width: int,
    seed: int,
    shuffle_buffer: int,
    pipelines: int = 1,
    index: int = 0,
    batches: int | None = None,
) -> tf.data.Dataset:
    """One input pipeline's batches of an epoch (``seed`` changes per epoch).

    The pipeline's files are shuffled, read interleaved, and their examples shuffled in a
    ``shuffle_buffer`` window, then bucketed by length. With ``batches`` (several
    pipelines or replicas: the epoch's steps times this pipeline's replicas), the epoch is
    padded with ``filler_batches`` to exactly that many batches.
    """
    files = folder.files("train")
    chosen = [files[i] for i in pipeline_files(folder, pipelines, index)]
    order = np.random.default_rng(seed).permutation(len(chosen))
    examples = read_records([chosen[i] for i in order], interleave=True)
    if shuffle_buffer:
        examples = examples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    batched = bucket_batches(
        examples,
        batch_size=batch_size,
        max_source_length=max_source_length,
        max_target_length=max_target_length,
        bucket_width=bucket_width,
        shuffle=True,
        seed=seed,
    )
    if batches is not None:
        batched = batched.concatenate(filler_batches()).take(batches)
    return batched


def split_batches(
    folder: PreparedFolder,
    split: str,
    *,
    batch_size: int,
    max_source_length: int,
    max_target_length: int,
    bucket_width: int,
) -> tf.data.Dataset:
    """The dev or test split's batches, in a fixed order (for dev loss and scoring)."""
    return bucket_batches(
        read_records(folder.files(split), interleave=False),
        batch_size=batch_size,
        max_source_length=max_source_length,
        max_target_length=max_target_length,
        bucket_width=bucket_width,
        shuffle=False,
        seed=0,
    )


def read_ids(folder: PreparedFolder, split: str) -> tuple[list[list[int]], list[list[int]]]:
    """A split's (source ids, target ids) in shard order, as lists (small splits only)."""
    sources, targets = [], []
    for (source, _), target_out in read_records(folder.files(split), interleave=False):
        sources.append(source.numpy().tolist())
        targets.append(target_out.numpy().tolist()[:-1])
    return sources, targets
