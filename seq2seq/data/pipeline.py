"""Token ids -> batched ``tf.data`` datasets the encoder-decoder trains on.

Batches are ``((source, target_in), target_out)`` int32, right-padded with PAD=0 (cuDNN
RNN kernels need right padding). Bucketing by length keeps padding, and so wasted compute,
low; everything random is seeded so a run can be repeated exactly. Two sources: id lists
in memory (``make_dataset``) and a prepared folder's shards (``train_batches``,
``split_batches``).

Prepared shards -> ``tf.data``: interleaved reads, shuffle, length buckets, prefetch.

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

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from seq2seq.constants import END, PAD, START, UNK
from seq2seq.data.prepared import PreparedDataError, PreparedFolder

IdLists = Sequence[Sequence[int]]
# Batches are shuffled in a window this big after bucketing (training only).
BATCH_SHUFFLE_BUFFER = 256


def filter_by_length(
    source_ids: IdLists,
    target_ids: IdLists,
    max_source_length: int,
    max_target_length: int,
) -> tuple[list[Sequence[int]], list[Sequence[int]], int]:
    """Keep pairs within the limits and with no empty side; report how many were dropped."""
    if len(source_ids) != len(target_ids):
        raise ValueError(f"{len(source_ids)} sources but {len(target_ids)} targets")
    kept_source, kept_target = [], []
    for s, t in zip(source_ids, target_ids, strict=True):
        if 0 < len(s) <= max_source_length and 0 < len(t) <= max_target_length:
            kept_source.append(s)
            kept_target.append(t)
    return kept_source, kept_target, len(source_ids) - len(kept_source)


def count_target_tokens(target_ids: IdLists) -> int:
    """Tokens the decoder predicts (ids + END): the denominator for tokens/second."""
    return sum(len(t) + 1 for t in target_ids if len(t))


def _flat(rows: IdLists) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ids and row lengths: building ragged tensors from these is fast."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    values = np.fromiter(
        itertools.chain.from_iterable(rows), dtype=np.int32, count=int(lengths.sum())
    )
    return values, lengths


def _ragged_examples(source_ids: IdLists, target_ids: IdLists) -> tf.data.Dataset:
    """One ((source, target_in), target_out) element per pair, unpadded."""
    src_values, src_lengths = _flat(source_ids)
    tgt_values, tgt_lengths = _flat(target_ids)
    starts = np.cumsum(tgt_lengths) - tgt_lengths
    target_in = np.insert(tgt_values, starts, START)
    target_out = np.insert(tgt_values, np.cumsum(tgt_lengths), END)
    ragged = tf.RaggedTensor.from_row_lengths
    source = ragged(src_values, src_lengths)
    t_in = ragged(target_in, tgt_lengths + 1)
    t_out = ragged(target_out, tgt_lengths + 1)
    dataset = tf.data.Dataset.from_tensor_slices(((source, t_in), t_out))
    # Slices of a ragged tensor come out as ragged rank-0 values; make them plain tensors.
    # Cached so later epochs skip the slicing (a few MB for 100k pairs).
    return dataset.map(
        lambda x, y: ((_dense(x[0]), _dense(x[1])), _dense(y)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    ).cache()


def _dense(x):
    return x.to_tensor() if isinstance(x, tf.RaggedTensor) else x


def _length(inputs, target_out):
    return tf.maximum(tf.shape(inputs[0])[0], tf.shape(target_out)[0])


def _prepare(
    source_ids: IdLists,
    target_ids: IdLists,
    max_source_length: int,
    max_target_length: int,
    shuffle: bool,
    seed: int,
    shuffle_buffer: int | None,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    source, target, _ = filter_by_length(
        source_ids, target_ids, max_source_length, max_target_length
    )
    if not source:
        raise ValueError("no sentence pairs left after the length filter")
    dataset = _ragged_examples(source, target)
    if shuffle:
        buffer = min(shuffle_buffer or len(source), len(source))
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if shard is not None:
        # Every worker shuffles with the same seed, then keeps its own share of the examples:
        # the shares are disjoint and together hold every pair.
        count, index = shard
        dataset = dataset.shard(count, index)
    return dataset


def make_dataset(
    source_ids: IdLists,
    target_ids: IdLists,
    *,
    batch_size: int,
    max_source_length: int,
    max_target_length: int,
    bucket_width: int | None,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
    shuffle_buffer: int | None = None,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Length-bucketed batches: similar lengths share a batch, so little padding.

    Pairs outside the limits are dropped (``filter_by_length`` counts them). With
    ``shuffle``, examples are shuffled before bucketing (``shuffle_buffer``, default all)
    and batches after, both seeded, so each epoch differs but runs repeat exactly.
    ``shard=(count, index)`` keeps one worker's share of the examples, taken after the
    example shuffle; tf.data's own auto-sharding is switched off so nothing shards twice.
    ``bucket_width=None`` is the unbucketed baseline: every batch padded to the limits
    (fixed shapes).
    """
    dataset = _prepare(
        source_ids,
        target_ids,
        max_source_length,
        max_target_length,
        shuffle,
        seed,
        shuffle_buffer,
        shard,
    )
    if bucket_width is None:
        limits = ([max_source_length], [max_target_length + 1]), [max_target_length + 1]
        padded = dataset.padded_batch(
            batch_size,
            padded_shapes=limits,
            padding_values=((PAD, PAD), PAD),
            drop_remainder=drop_remainder,
        )
        return padded.prefetch(tf.data.AUTOTUNE)
    return bucket_batches(
        dataset,
        batch_size=batch_size,
        max_source_length=max_source_length,
        max_target_length=max_target_length,
        bucket_width=bucket_width,
        shuffle=shuffle,
        seed=seed,
        drop_remainder=drop_remainder,
    )


def bucket_boundaries(max_source_length: int, max_target_length: int, bucket_width: int):
    """Upper length bounds (exclusive) of the buckets; a pair's length is ``example_length``."""
    longest = max(max_source_length, max_target_length + 1)
    return list(range(bucket_width + 1, longest + 1, bucket_width))


def bucket_batches(
    dataset: tf.data.Dataset,
    *,
    batch_size: int,
    max_source_length: int,
    max_target_length: int,
    bucket_width: int,
    shuffle: bool,
    seed: int,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """``((source, target_in), target_out)`` examples -> padded batches of similar lengths.

    A bucket emits a batch when full and its remainder at the end, so an epoch has
    ``sum(ceil(pairs_in_bucket / batch_size))`` batches whatever the order (``batch_count``).
    """
    boundaries = bucket_boundaries(max_source_length, max_target_length, bucket_width)
    dataset = dataset.bucket_by_sequence_length(
        _length,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=((PAD, PAD), PAD),
        pad_to_bucket_boundary=False,
        drop_remainder=drop_remainder,
    )
    if shuffle:
        dataset = dataset.shuffle(BATCH_SHUFFLE_BUFFER, seed=seed + 1)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def batch_count(length_counts: np.ndarray, batch_size: int, boundaries: Sequence[int]) -> int:
    """Batches ``bucket_batches`` makes of pairs with ``length_counts[n]`` pairs of length n."""
    edges = [0, *boundaries, len(length_counts) + 1]
    total = 0
    for low, high in itertools.pairwise(edges):
        pairs = int(np.sum(length_counts[low:high]))
        total += -(-pairs // batch_size)
    return total


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
