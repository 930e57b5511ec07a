"""Batches: layout, padding, START/END placement, length filter, bucketing, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from seq2seq.constants import END, PAD, START
from seq2seq.data.pipeline import (
    count_target_tokens,
    filter_by_length,
    make_dataset,
)

MAX_LEN = 20
BUCKET = 4


def random_pairs(n: int, seed: int = 0) -> tuple[list[list[int]], list[list[int]]]:
    """Pairs with correlated lengths (like translations), ids >= 4 so PAD never occurs."""
    rng = np.random.default_rng(seed)
    sources, targets = [], []
    for _ in range(n):
        length = int(rng.integers(1, MAX_LEN + 1))
        other = int(np.clip(length + rng.integers(-2, 3), 1, MAX_LEN))
        sources.append(rng.integers(4, 50, length).tolist())
        targets.append(rng.integers(4, 50, other).tolist())
    return sources, targets


@pytest.fixture(scope="module")
def pairs():
    return random_pairs(2000)


def build(pairs, **overrides):
    options = dict(
        batch_size=32,
        max_source_length=MAX_LEN,
        max_target_length=MAX_LEN,
        bucket_width=BUCKET,
        shuffle=True,
        seed=7,
    )
    options.update(overrides)
    return make_dataset(*pairs, **options)


def as_numpy(dataset) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [(s.numpy(), ti.numpy(), to.numpy()) for (s, ti), to in dataset]


def lengths(batch: np.ndarray) -> np.ndarray:
    return (batch != PAD).sum(axis=1)


def padding_fraction(batches) -> float:
    cells = sum(s.size + to.size for s, _, to in batches)
    pads = sum((s == PAD).sum() + (to == PAD).sum() for s, _, to in batches)
    return pads / cells


def test_filter_by_length_counts_long_and_empty_pairs():
    sources = [[5], [5] * 3, [], [5, 6], [5] * 4]
    targets = [[6], [6], [6], [], [6] * 5]
    kept_s, kept_t, dropped = filter_by_length(sources, targets, 3, 4)
    assert kept_s == [[5], [5] * 3]
    assert kept_t == [[6], [6]]
    assert dropped == 3


def test_count_target_tokens_includes_end():
    assert count_target_tokens([[4, 5], [6], []]) == 5


def test_batch_layout_and_special_tokens(pairs):
    batches = as_numpy(build(pairs))
    assert sum(len(s) for s, _, _ in batches) == len(pairs[0])
    for source, target_in, target_out in batches:
        assert source.dtype == target_in.dtype == target_out.dtype == np.int32
        assert target_in.shape == target_out.shape
        assert source.shape[0] == target_in.shape[0] <= 32
        assert (target_in[:, 0] == START).all()
        n = lengths(target_out)
        rows = np.arange(len(n))
        assert (target_out[rows, n - 1] == END).all()
        assert (target_in[rows, n - 1] != PAD).all()
        assert (
            target_in[:, 1:] == np.where(target_out[:, :-1] == END, PAD, target_out[:, :-1])
        ).all()
        assert source.shape[1] <= MAX_LEN and target_out.shape[1] <= MAX_LEN + 1


def test_rows_are_right_padded_and_never_empty(pairs):
    for batch in as_numpy(build(pairs)):
        for array in batch:
            n = lengths(array)
            assert (n >= 1).all()
            positions = np.arange(array.shape[1])
            assert ((positions < n[:, None]) == (array != PAD)).all()


def test_examples_match_the_input_pairs():
    sources, targets = random_pairs(300, seed=3)
    found = set()
    for s, _, to in as_numpy(build((sources, targets), shuffle=False)):
        for row_s, row_t in zip(s, to, strict=True):
            found.add((tuple(row_s[row_s != PAD]), tuple(row_t[row_t != PAD])))
    assert found == {(tuple(s), (*t, END)) for s, t in zip(sources, targets, strict=True)}


def test_long_pairs_are_dropped(pairs):
    batches = as_numpy(build(pairs, max_source_length=8, max_target_length=6))
    within = sum(0 < len(s) <= 8 and 0 < len(t) <= 6 for s, t in zip(*pairs, strict=True))
    assert 0 < within < len(pairs[0])
    assert sum(len(s) for s, _, _ in batches) == within
    assert max(s.shape[1] for s, _, _ in batches) <= 8
    assert max(to.shape[1] for _, _, to in batches) <= 7


def test_bucketing_groups_similar_lengths(pairs):
    bucketed = as_numpy(build(pairs))
    for source, _, target_out in bucketed:
        longest = np.maximum(lengths(source), lengths(target_out))
        assert longest.max() - longest.min() < BUCKET
    plain = as_numpy(
        make_dataset(
            *pairs,
            batch_size=32,
            max_source_length=MAX_LEN,
            max_target_length=MAX_LEN,
            bucket_width=None,
            shuffle=True,
            seed=7,
        )
    )
    assert padding_fraction(bucketed) < 0.5 * padding_fraction(plain)


def test_unbucketed_batches_have_fixed_shapes(pairs):
    dataset = make_dataset(
        *pairs,
        batch_size=64,
        max_source_length=MAX_LEN,
        max_target_length=MAX_LEN,
        bucket_width=None,
        drop_remainder=True,
    )
    for source, target_in, target_out in as_numpy(dataset):
        assert source.shape == (64, MAX_LEN)
        assert target_in.shape == target_out.shape == (64, MAX_LEN + 1)
        assert (target_in[:, 0] == START).all()


def test_same_seed_same_batches_and_epochs_differ(pairs):
    first, second = build(pairs, seed=3), build(pairs, seed=3)
    epoch_a = as_numpy(first)
    for x, y in zip(epoch_a, as_numpy(second), strict=True):
        for a, b in zip(x, y, strict=True):
            np.testing.assert_array_equal(a, b)
    epoch_b = as_numpy(first)
    assert any(
        a[0].shape != b[0].shape or (a[0] != b[0]).any()
        for a, b in zip(epoch_a, epoch_b, strict=False)
    )
    other = as_numpy(build(pairs, seed=4))
    assert any(
        a[0].shape != b[0].shape or (a[0] != b[0]).any()
        for a, b in zip(epoch_a, other, strict=False)
    )


def test_unshuffled_dataset_is_repeatable(pairs):
    a = as_numpy(build(pairs, shuffle=False))
    b = as_numpy(build(pairs, shuffle=False))
    assert all((x[0] == y[0]).all() for x, y in zip(a, b, strict=True))


def test_drop_remainder_gives_full_batches(pairs):
    for source, _, _ in as_numpy(build(pairs, drop_remainder=True)):
        assert len(source) == 32


def test_nothing_left_is_an_error():
    with pytest.raises(ValueError, match="no sentence pairs"):
        make_dataset(
            [[4] * 50],
            [[5]],
            batch_size=2,
            max_source_length=10,
            max_target_length=10,
            bucket_width=2,
            shuffle=False,
            seed=0,
        )
