"""The training step in one process: mixed precision unscales before clipping; epoch lengths."""

from __future__ import annotations

from pathlib import Path

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


def machine_policy() -> str:
    """What ``auto`` must pick on this machine, read independently of the code under test:
    float16 with a GPU, bfloat16 on a CPU whose flags list bfloat16 units, else float32."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return "float32"
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return "mixed_bfloat16" if {"avx512_bf16", "amx_bf16"} & flags else "float32"


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

    from seq2seq.training.loop import build_trainer

    norms, losses, optimizers = {}, {}, {}
    for policy in ("float32", "mixed_float16", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            trainer = build_trainer(tiny_config(), tf.distribute.get_strategy(), policy, (32, 32))
            steps = [trainer.step(batch()) for _ in range(30)]
        finally:
            keras.mixed_precision.set_global_policy("float32")
        norms[policy] = float(steps[0][2])
        losses[policy] = [float(s) / float(t) for s, t, _ in steps]
        optimizers[policy] = trainer.optimizer
        assert trainer.model.decoder.rnns[0].compute_dtype == policy.removeprefix("mixed_")
    assert isinstance(optimizers["mixed_float16"], keras.optimizers.LossScaleOptimizer)
    # bfloat16 has float32's range: no loss scaling.
    assert not isinstance(optimizers["mixed_bfloat16"], keras.optimizers.LossScaleOptimizer)
    # The loss scale starts at 32768: an unscaled norm agrees with float32's.
    assert norms["mixed_float16"] == pytest.approx(norms["float32"], rel=0.05)
    assert norms["mixed_bfloat16"] == pytest.approx(norms["float32"], rel=0.05)
    assert norms["float32"] > 0.05, "clipping must fire for this test to cover it"
    for policy, values in losses.items():
        assert values[-1] < 0.8 * values[0], policy


@pytest.mark.parametrize(
    ("setting", "policy"),
    [
        ("off", "float32"),
        ("float16", "mixed_float16"),
        ("on", "mixed_float16"),
        ("bfloat16", "mixed_bfloat16"),
        ("auto", "float32"),
    ],
)
def test_precision_settings_name_their_keras_policy(setting, policy):
    import keras

    from seq2seq.training.loop import configure_precision

    if setting == "auto":  # float16 on a GPU, bfloat16 on this project's CPUs, else float32
        policy = machine_policy()
    try:
        assert configure_precision(setting) == policy
        assert keras.mixed_precision.global_policy().name == policy
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    ("gpu", "bfloat16_units", "policy"),
    [
        (True, True, "mixed_float16"),
        (True, False, "mixed_float16"),
        (False, True, "mixed_bfloat16"),
        (False, False, "float32"),
    ],
)
def test_auto_picks_float16_on_a_gpu_bfloat16_with_bfloat16_units_else_float32(
    monkeypatch, gpu, bfloat16_units, policy
):
    import keras
    import tensorflow as tf

    from seq2seq.training import loop

    devices = ["/device:GPU:0"] if gpu else []
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: devices)
    monkeypatch.setattr(loop, "cpu_has_bfloat16", lambda: bfloat16_units)
    try:
        assert loop.configure_precision("auto") == policy
        assert keras.mixed_precision.global_policy().name == policy
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_an_unknown_precision_is_refused_with_the_choices():
    from seq2seq.config import ConfigError

    with pytest.raises(ConfigError, match="bfloat16"):
        tiny_config(mixed_precision="int8")


def test_negative_clipnorm_is_refused_by_the_trainer():
    import tensorflow as tf

    from seq2seq.training.loop import build_trainer

    config = tiny_config()
    trainer = build_trainer(config, tf.distribute.get_strategy(), "float32", (32, 32))
    from seq2seq.training.step import Trainer

    with pytest.raises(ValueError, match="clipnorm is -1"):
        Trainer(trainer.strategy, trainer.model, trainer.optimizer, trainer.loss, clipnorm=-1)


def test_bench_times_training_in_float32_and_in_the_fastest_mixed_policy(tmp_path):
    """Structure only (``python -m seq2seq.bench`` measures the speed): the bucketed, padded
    and, where this machine has one, mixed-precision lines, each naming its policy."""
    from conftest import SAMPLE_RUN

    from seq2seq.bench import bench_training, report
    from seq2seq.data.prepare import prepare
    from seq2seq.data.tokenizers import load_tokenizer
    from seq2seq.training.data import PreparedData

    config = load_config("quickstart", overrides=[*SAMPLE_RUN, "train.batch_size=8"])
    folder = prepare(config.data, tmp_path / "prepared", show_progress=False).folder
    tokenizers = load_tokenizer(folder.source_vocab), load_tokenizer(folder.target_vocab)
    training, model = bench_training(config, PreparedData(folder, *tokenizers), 3, warmup=1)
    assert training["bucketed"]["policy"] == training["padded"]["policy"] == "float32"
    mixed = machine_policy() if machine_policy() != "float32" else None
    if mixed:
        assert training["bucketed_mixed"]["policy"] == mixed
    else:
        assert "bucketed_mixed" not in training
    assert model.decoder.rnns[0].compute_dtype == "float32"  # decoding is timed in float32
    text = report(
        {
            "parts": [
                {
                    "config": "tiny",
                    "prepare_seconds": 0.0,
                    "train_pairs": 38,
                    "training": training,
                    "model_load_seconds": 0.0,
                }
            ],
            "peak_memory_mb": 1.0,
        }
    )
    assert text.count(" target tok/s") == (3 if mixed else 2)
    assert text.count("(the default here)") == 1
    assert training["default_policy"] == (mixed or "float32")


def test_training_in_process_leaves_the_callers_policy_as_it_was(tmp_path):
    """``auto`` trains in the fastest mixed policy here; the models a caller builds after
    ``train`` returns are float32 again (a leaked bfloat16 policy changed later results)."""
    import json

    import keras
    from conftest import SAMPLE_RUN

    from seq2seq.training.loop import train

    overrides = [o for o in SAMPLE_RUN if "mixed_precision" not in o]
    config = load_config("quickstart", overrides=[*overrides, "train.epochs=1"])
    assert config.train.mixed_precision == "auto"
    train(config, tmp_path / "run", verbose=0)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["precision"] == machine_policy()
    assert keras.mixed_precision.global_policy().name == "float32"
