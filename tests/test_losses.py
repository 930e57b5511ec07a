"""The masked, label-smoothed token loss against its definition, written out in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from seq2seq.model.losses import MaskedCrossEntropy


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_sum_and_count_follow_the_definition(smoothing):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(3, 5, 11)).astype("float32")
    targets = rng.integers(1, 11, size=(3, 5)).astype("int32")
    targets[0, 3:] = 0  # PAD
    targets[2, :] = 0
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_p, targets[..., None], -1)[..., 0]
    per_token = -(1 - smoothing) * picked - smoothing * log_p.mean(-1)
    real = targets != 0
    total, count = MaskedCrossEntropy(smoothing).sum_and_count(targets, logits)
    assert float(count) == real.sum()
    assert float(total) == pytest.approx(per_token[real].sum(), rel=1e-5)
