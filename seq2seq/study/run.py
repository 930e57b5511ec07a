"""Run a study into a folder: the grid, then the probe, then the report.

Folder layout::

    study.json            the settings (checked again on --resume)
    source_vocab/ target_vocab/   the tokenizers every variant shares
    variants/NAME.json    one finished variant each (written atomically when it ends)
    probe/CELL-LENGTH.json
    report.md, *.png, *.csv, results.json   (``seq2seq.study.report``)

A resumed study skips every variant and probe run whose file exists, so an interrupted
study loses at most the variant it was training.

The grid: each variant trained under the study's budget, then measured.

Training is the project's own step (``build_trainer`` -> ``Trainer.step``, the data of
``dataset_function``); this module only decides when to stop and what to record: the dev
loss curve, every step's gradient norm before clipping, throughput, final dev scores, the
gradient flow through time and gate saturation of the first encoder layer.

The probe, a long-dependency test: recall a few symbols after a long run of distractors.

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

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from seq2seq.config import Config, load_config
from seq2seq.data.pipeline import make_dataset, read_ids
from seq2seq.data.tokenizers import END, PAD
from seq2seq.model import parameter_counts
from seq2seq.runs import RunPaths, remove_partial_files, write_text_atomically
from seq2seq.search.searcher import Searcher
from seq2seq.study.gates import cell_type, gate_saturation
from seq2seq.study.gradients import embedded_source, encoder_gradient_curve, first_encoder_layer
from seq2seq.study.report import write_report
from seq2seq.study.settings import (
    CELLS,
    DEFAULT_CLIPNORM,
    FIRST_SYMBOL,
    STUDY_FILE,
    Budget,
    ProbeSettings,
    StudyError,
    StudySettings,
    Variant,
    check_config,
    load_settings,
    parse_variants,
    save_settings,
)
from seq2seq.training.data import PreparedData, Schedule, dataset_function, prepare_data
from seq2seq.training.loop import build_trainer, make_dev_scorer
from seq2seq.training.run_folder import save_tokenizer_atomically

log = logging.getLogger(__name__)

VARIANTS_DIR = "variants"
PROBE_DIR = "probe"


def open_study(settings: StudySettings, output: Path, resume: bool) -> StudySettings:
    """The settings to run with: new, or the saved ones plus any variants added now."""
    if not resume:
        if (output / STUDY_FILE).is_file():
            raise StudyError(
                f"{output} already holds a study; pass --resume to finish or extend it, "
                "or choose another --output"
            )
        if output.exists() and not output.is_dir():
            raise StudyError(f"--output {output} exists and is not a folder")
        return settings
    saved = load_settings(output)
    differences = settings.differences(saved)
    if differences:
        raise StudyError(
            f"{output} holds a study with other {', '.join(differences)}; a resumed study "
            "must keep them (its numbers would not be comparable): change them back, or "
            "choose another --output"
        )
    variants = list(dict.fromkeys([*saved.variants, *settings.variants]))
    return StudySettings(
        saved.preset,
        saved.config_file,
        saved.overrides,
        tuple(variants),
        saved.budget,
        settings.probe or saved.probe,  # a study's probe, once set, stays part of it
        settings.target_loss if settings.target_loss is not None else saved.target_loss,
    )


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:  # cannot happen with atomic writes, unless edited by hand
        log.warning("%s is unreadable; redoing it", path)
        return None


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(data, indent=1, allow_nan=True) + "\n")


def prepare_shared_data(settings: StudySettings, output: Path) -> PreparedData:
    """Data and tokenizers once for all variants; the tokenizers are kept for resuming."""
    config = settings.config()
    paths = RunPaths(output)
    prepared = prepare_data(config, paths)
    for tokenizer, folder in (
        (prepared.source_tokenizer, paths.source_vocab),
        (prepared.target_tokenizer, paths.target_vocab),
    ):
        if not folder.is_dir():
            save_tokenizer_atomically(tokenizer, folder)
    if not prepared.pairs["dev"]:
        raise StudyError("the dev split is empty after the length filter: nothing to compare on")
    return prepared


def run_study(
    settings: StudySettings, output: str | Path, resume: bool = False, progress: bool = True
) -> dict:
    """Train and measure every variant and probe run not done yet; write the report."""
    output = Path(output)
    settings.budget.check()
    if settings.probe:
        settings.probe.check()
    settings = open_study(settings, output, resume)
    config = settings.config()
    variants = parse_variants(list(settings.variants))
    for variant in variants:
        check_config(variant, config)
    output.mkdir(parents=True, exist_ok=True)
    remove_partial_files(output)
    save_settings(output, settings)
    keras.mixed_precision.set_global_policy("float32")
    probe_runs = (
        [(cell, length) for cell in CELLS for length in settings.probe.lengths]
        if settings.probe
        else []
    )
    todo = [v for v in variants if read_json(variant_path(output, v.name)) is None]
    probe_todo = [r for r in probe_runs if read_json(probe_path(output, *r)) is None]
    overall = tqdm(
        total=len(variants) + len(probe_runs),
        initial=len(variants) - len(todo) + len(probe_runs) - len(probe_todo),
        desc="study",
        unit="run",
        disable=not progress,
        position=0,
    )
    if todo:
        prepared = prepare_shared_data(settings, output)
        sample = gradient_sample(prepared)
        for variant in todo:
            overall.set_postfix_str(variant.name)
            result = train_one(variant, variant.apply(config), prepared, settings, sample, progress)
            check_enough_steps(settings, result)
            write_json(variant_path(output, variant.name), result)
            overall.update()
    for cell, length in probe_todo:
        overall.set_postfix_str(f"probe {cell} L={length}")
        bar = tqdm(
            total=settings.probe.steps,
            desc=f"probe {cell} L={length}",
            unit="step",
            leave=False,
            disable=not progress,
            position=1,
        )
        started = time.perf_counter()
        result = run_probe(settings.probe, cell, length, on_step=bar.update)
        result["wall_seconds"] = time.perf_counter() - started
        bar.close()
        write_json(probe_path(output, cell, length), result)
        keras.backend.clear_session()
        overall.update()
    overall.close()
    return write_report(output)


def train_one(variant, config, prepared, settings: StudySettings, sample, progress: bool) -> dict:
    budget = settings.budget
    total = budget.steps if budget.steps is not None else round(budget.seconds)
    bar = tqdm(
        total=total,
        desc=variant.name,
        unit="step" if budget.steps is not None else "s",
        leave=False,
        disable=not progress,
        position=1,
    )

    def on_progress(steps: int, timed_seconds: float) -> None:
        done = steps if budget.steps is not None else min(round(timed_seconds), total)
        bar.update(done - bar.n)

    try:
        return train_variant(variant, config, prepared, budget, sample, on_progress)
    finally:
        bar.close()
        keras.backend.clear_session()


def check_enough_steps(settings: StudySettings, result: dict) -> None:
    """A time budget too short for one dev evaluation per ``evals`` step is impossible."""
    budget = settings.budget
    timed_steps = result["steps"] - WARMUP_STEPS
    if budget.minutes is not None and result["diverged_at_step"] is None:
        if timed_steps < budget.evals:
            raise StudyError(
                f"--budget-minutes {budget.minutes:g} gave {result['name']} only {timed_steps} "
                f"timed steps, fewer than its {budget.evals} dev evaluations: raise the budget "
                "(or lower --evals)"
            )


def variant_path(output: Path, name: str) -> Path:
    return output / VARIANTS_DIR / f"{name}.json"


def probe_path(output: Path, cell: str, length: int) -> Path:
    return output / PROBE_DIR / f"{cell}-{length}.json"


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
