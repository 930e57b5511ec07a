"""The training step in one process: mixed precision unscales before clipping; epoch lengths."""

from __future__ import annotations

import numpy as np
import pytest

from seq2seq.config import load_config


def tiny_config(**train):
    overrides = [
        "model.embedding_dim=16",
        "model.hidden_size=16",
        "model.dropout=0.0",
        "train.learning_rate=0.01",
        "train.clipnorm=0.05",
    ]
    overrides += [f"train.{key}={value}" for key, value in train.items()]
    return load_config("quickstart", overrides=overrides)


def batch():
    rng = np.random.default_rng(3)
    source = rng.integers(4, 30, size=(8, 7)).astype("int32")
    target = rng.integers(4, 30, size=(8, 6)).astype("int32")
    source[:3, 5:] = 0  # right padding, as the pipeline makes it
    target[:2, 4:] = 0
    target_in = np.concatenate([np.full((8, 1), 2, "int32"), target[:, :-1]], axis=1)
    return (source, target_in), target


def test_mixed_precision_unscales_the_gradient_before_clipping_and_learns():
    import keras
    import tensorflow as tf

    from seq2seq.training import build_trainer

    norms, losses = {}, {}
    for policy in ("float32", "mixed_float16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            trainer = build_trainer(tiny_config(), tf.distribute.get_strategy(), policy, (32, 32))
            steps = [trainer.step(batch()) for _ in range(30)]
        finally:
            keras.mixed_precision.set_global_policy("float32")
        norms[policy] = float(steps[0][2])
        losses[policy] = [float(s) / float(t) for s, t, _ in steps]
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    # The loss scale starts at 32768: an unscaled norm agrees with float32's.
    assert norms["mixed_float16"] == pytest.approx(norms["float32"], rel=0.05)
    assert norms["float32"] > 0.05, "clipping must fire for this test to cover it"
    for policy, values in losses.items():
        assert values[-1] < 0.8 * values[0], policy


def test_epochs_have_the_same_length_on_every_worker():
    from seq2seq.training import epoch_schedule

    assert epoch_schedule(tiny_config(batch_size=10), 1, 1000).steps is None  # an exact pass
    several = epoch_schedule(tiny_config(batch_size=10), 2, 1001)
    assert (several.steps, several.repeat) == (51, True)
    fixed = epoch_schedule(tiny_config(batch_size=10, steps_per_epoch=7), 4, 1001)
    assert (fixed.steps, fixed.repeat) == (7, True)


def test_negative_clipnorm_is_refused_by_the_trainer():
    import tensorflow as tf

    from seq2seq.training import build_trainer

    config = tiny_config()
    trainer = build_trainer(config, tf.distribute.get_strategy(), "float32", (32, 32))
    from seq2seq.trainer import Trainer

    with pytest.raises(ValueError, match="clipnorm is -1"):
        Trainer(trainer.strategy, trainer.model, trainer.optimizer, trainer.loss, clipnorm=-1)
