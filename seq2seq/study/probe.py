"""A long-dependency probe: recall a few symbols after a long run of distractors.

Each source starts with ``payload`` symbols and continues with distractor tokens up to a
total length L; the target is the payload (``copy``) or the payload reversed (``reverse``).
The model has a unidirectional encoder and no attention, so the payload reaches the decoder
only through the encoder's final state: it must survive L - payload recurrent steps while
the distractors try to overwrite it. One model per (cell, length) trains for the same number
of steps, which is the classic experiment: success rate against the length of the
dependency (Bengio et al. 1994, Hochreiter and Schmidhuber 1997).

Training goes through the project's own path (``build_trainer``, ``make_dataset``, the
greedy ``Searcher``); only the data are synthetic. Token ids: 0-3 are PAD/UNK/START/END,
then the payload symbols, then the distractors.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from seq2seq.config import load_config
from seq2seq.data.pipeline import make_dataset
from seq2seq.data.tokenizers import END, PAD
from seq2seq.search.searcher import Searcher
from seq2seq.study.gradients import encoder_gradient_curve
from seq2seq.study.settings import FIRST_SYMBOL, ProbeSettings
from seq2seq.training.loop import build_trainer

EVAL_SIZE = 256


def probe_pairs(
    settings: ProbeSettings, length: int, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` sources [count, length] and targets [count, payload]."""
    payload = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + settings.symbols, (count, settings.payload))
    first = FIRST_SYMBOL + settings.symbols
    noise = rng.integers(first, first + settings.distractors, (count, length - settings.payload))
    sources = np.concatenate([payload, noise], axis=1).astype(np.int32)
    targets = payload[:, ::-1] if settings.task == "reverse" else payload
    return sources, np.ascontiguousarray(targets, dtype=np.int32)


def probe_config(settings: ProbeSettings, cell: str, length: int):
    """A small attention-free, unidirectional model; clipping on, no dropout."""
    return load_config(
        overrides=[
            f"model.cell={cell}",
            "model.bidirectional=false",
            "model.attention=none",
            "model.encoder_layers=1",
            "model.decoder_layers=1",
            f"model.embedding_dim={settings.embedding_dim}",
            f"model.hidden_size={settings.hidden_size}",
            "model.dropout=0.0",
            f"train.learning_rate={settings.learning_rate}",
            "train.lr_schedule=constant",
            "train.clipnorm=1.0",
            f"train.batch_size={settings.batch_size}",
            f"train.seed={settings.seed}",
            f"data.max_source_length={length}",
            f"data.max_target_length={settings.payload}",
        ]
    )


def sequence_accuracy(model, sources: np.ndarray, targets: np.ndarray) -> float:
    """Share of greedy outputs equal to the target (cut at the first END)."""
    result = Searcher(model, jit_compile=False).greedy(sources, targets.shape[1] + 1)
    correct = 0
    for ids, target in zip(result.ids[:, 0], targets, strict=True):
        ids = list(ids)
        stop = next((i for i, t in enumerate(ids) if t in (END, PAD)), len(ids))
        correct += ids[:stop] == list(target)
    return correct / len(targets)


def run_probe(
    settings: ProbeSettings, cell: str, length: int, on_step: Callable[[], None] | None = None
) -> dict:
    """Train one model on the probe at one length; its accuracy and gradient curves."""
    config = probe_config(settings, cell, length)
    rng = np.random.default_rng([settings.seed, length])
    sources, targets = probe_pairs(settings, length, settings.steps * settings.batch_size, rng)
    dataset = make_dataset(
        sources.tolist(),
        targets.tolist(),
        batch_size=settings.batch_size,
        max_source_length=length,
        max_target_length=settings.payload,
        bucket_width=length,
        shuffle=True,
        seed=settings.seed,
        drop_remainder=True,
    )
    vocab = settings.vocab_size
    trainer = build_trainer(config, tf.distribute.get_strategy(), "float32", (vocab, vocab))
    probe_sources, probe_targets = probe_pairs(
        settings, length, EVAL_SIZE, np.random.default_rng([settings.seed, length, 1])
    )
    curve_before = encoder_gradient_curve(trainer.model, probe_sources[:64])
    started = time.perf_counter()
    total, tokens, steps = 0.0, 0.0, 0
    for batch in dataset.take(settings.steps):
        loss_sum, batch_tokens, _ = trainer.step(batch)
        steps += 1
        if steps > settings.steps - 50:  # the training loss over the last 50 steps
            total, tokens = total + float(loss_sum), tokens + float(batch_tokens)
        if on_step:
            on_step()
    seconds = time.perf_counter() - started
    return {
        "cell": cell,
        "length": length,
        "steps": steps,
        "train_seconds": seconds,
        "final_train_loss": total / max(tokens, 1.0),
        "accuracy": sequence_accuracy(trainer.model, probe_sources, probe_targets),
        "gradient_flow": {
            "init": curve_before.to_dict(),
            "trained": encoder_gradient_curve(trainer.model, probe_sources[:64]).to_dict(),
        },
    }
