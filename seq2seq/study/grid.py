"""One variant of the grid: trained under the study's budget, then measured.

Training is the project's own step (``build_trainer`` -> ``Trainer.step``, the data of
``dataset_function``); this module only decides when to stop and what to record: the dev
loss curve, every step's gradient norm before clipping, throughput, final dev scores, the
gradient flow through time and gate saturation of the first encoder layer.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from seq2seq.config import Config
from seq2seq.data.shards import read_ids
from seq2seq.model import parameter_counts
from seq2seq.study.gates import cell_type, gate_saturation
from seq2seq.study.gradients import embedded_source, encoder_gradient_curve, first_encoder_layer
from seq2seq.study.settings import Budget
from seq2seq.study.variants import DEFAULT_CLIPNORM, Variant
from seq2seq.training.data import PreparedData, Schedule, dataset_function
from seq2seq.training.loop import build_trainer, make_dev_scorer

# Steps that trace the training function (a second trace relaxes the batch shapes); they
# are left out of tokens/s and do not count against a time budget.
WARMUP_STEPS = 2
GRADIENT_SAMPLE_ROWS = 128


def gradient_sample(prepared: PreparedData, rows: int = GRADIENT_SAMPLE_ROWS) -> np.ndarray:
    """The longest dev sources (padded ids [rows, S]): the longest distances to measure."""
    sources = sorted(read_ids(prepared.folder, "dev")[0], key=len, reverse=True)[:rows]
    batch = np.zeros((len(sources), len(sources[0])), np.int32)
    for row, ids in enumerate(sources):
        batch[row, : len(ids)] = ids
    return batch


def measure_encoder(model, sample: np.ndarray) -> dict:
    """Gradient-through-time curve and (GRU/LSTM) gate saturation of the first layer."""
    layer = first_encoder_layer(model)
    result = {"gradient_flow": encoder_gradient_curve(model, sample).to_dict()}
    if cell_type(layer):
        inputs, mask = embedded_source(model, sample)
        result["gates"] = gate_saturation(layer, inputs, mask)
    return result


def train_variant(
    variant: Variant,
    config: Config,
    prepared: PreparedData,
    budget: Budget,
    sample: np.ndarray,
    on_progress: Callable[[int, float], None] | None = None,
) -> dict:
    """Train ``variant`` (``config`` already applied) and return everything measured."""
    started = time.perf_counter()
    # Dev BLEU at the end whatever the preset selects its best epoch by.
    config = config.replace(train=dataclasses.replace(config.train, select_best_by="bleu"))
    trainer = build_trainer(
        config,
        tf.distribute.get_strategy(),
        "float32",
        (prepared.source_tokenizer.vocab_size, prepared.target_tokenizer.vocab_size),
        prepared.target_counts,
    )
    model = trainer.model
    before = measure_encoder(model, sample)
    scorer = make_dev_scorer(config, prepared, model, trainer.loss)
    curve = [{"step": 0, "seconds": 0.0, "dev_loss": scorer.dev_loss()}]
    batches = iter(
        trainer.distribute(dataset_function(config, prepared, 0, Schedule(None, repeat=True)))
    )
    norms, losses = [], []
    steps, seconds, timed_seconds, timed_tokens = 0, 0.0, 0.0, 0.0
    diverged_at = None
    while not budget.done(steps, timed_seconds):
        batch = next(batches)
        tick = time.perf_counter()
        loss_sum, tokens, norm = trainer.step(batch)
        loss, tokens, norm = float(loss_sum), float(tokens), float(norm)
        elapsed = time.perf_counter() - tick
        steps += 1
        seconds += elapsed
        if steps > WARMUP_STEPS:
            timed_seconds += elapsed
            timed_tokens += tokens
        norms.append(norm)
        losses.append(loss / max(tokens, 1.0))
        if not (math.isfinite(loss) and math.isfinite(norm)):
            diverged_at = steps
            break
        if budget.evaluation_due(len(curve) - 1, steps, timed_seconds):
            curve.append({"step": steps, "seconds": seconds, "dev_loss": scorer.dev_loss()})
        if on_progress:
            on_progress(steps, timed_seconds)
    scores = scorer.scores() if diverged_at is None else {}
    after = measure_encoder(model, sample) if diverged_at is None else {}
    threshold = config.train.clipnorm or DEFAULT_CLIPNORM
    return {
        "name": variant.name,
        "architecture": variant.describe(),
        "clipnorm": config.train.clipnorm,
        "parameters": parameter_counts(model)["total"],
        "steps": steps,
        "train_seconds": seconds,
        "target_tokens_per_second": timed_tokens / timed_seconds if timed_seconds else None,
        "diverged_at_step": diverged_at,
        "dev": {
            "loss": scores.get("val_loss"),
            "perplexity": scores.get("val_perplexity"),
            "bleu": scores.get("dev_bleu"),
            "chrf": scores.get("dev_chrf"),
        },
        "dev_curve": curve,
        "train_loss": losses,
        "gradient_norms": norms,
        "clipping": {
            "threshold": threshold,
            "active": bool(config.train.clipnorm),
            "share_over_threshold": float(np.mean(np.asarray(norms) > threshold)) if norms else 0,
        },
        "gradient_flow": {
            "init": before["gradient_flow"],
            "trained": after.get("gradient_flow"),
        },
        "gates": {"init": before.get("gates"), "trained": after.get("gates")},
        "wall_seconds": time.perf_counter() - started,
    }
