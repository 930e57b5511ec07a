"""Training: corpus -> tokenizers -> sharded tf.data -> the distributed step -> run folder.

``train(config, output)`` is the library entry point; ``python -m seq2seq.train`` is a thin
command line over it. The same loop runs on one CPU, on several local GPUs and on several
hosts: only the ``tf.distribute`` strategy differs (see ``seq2seq.trainer`` for why this is
not ``model.fit``). Keras callbacks still do the bookkeeping: early stopping, LR plateaus,
TensorBoard, ``TerminateOnNaN``, the progress bar and the run record.

Only the chief (worker 0) writes the run folder; other workers keep their tokenizers in a
temporary folder that is removed at the end. Everything that can fail on bad input (config,
corpus, cluster) is checked before the run folder is created. After each epoch the chief
saves the training state atomically; ``resume=True`` continues from the newest state that
reads back whole.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seq2seq.callbacks import ResumableEarlyStopping, RunRecorder, write_history
from seq2seq.checkpoints import restore_latest, save_epoch_weights, save_state
from seq2seq.cluster import ClusterError, cluster_task, make_strategy
from seq2seq.config import Config, ConfigError, TrainConfig, load_run_config, save_config
from seq2seq.corpora.loading import Pair, load_splits
from seq2seq.corpora.spec import corpus_languages
from seq2seq.dev_scores import DevScorer
from seq2seq.losses import MaskedCrossEntropy
from seq2seq.model import Seq2Seq, build_model
from seq2seq.pipeline import count_target_tokens, filter_by_length, make_dataset
from seq2seq.runs import (
    RunError,
    RunPaths,
    read_metrics,
    remove_partial_files,
    write_atomically,
    write_metrics,
    write_text_atomically,
)
from seq2seq.text import END, Tokenizer, fit_tokenizer, load_tokenizer
from seq2seq.trainer import Trainer

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (a worker disagrees, the disk is full, ...)."""


@dataclass
class PreparedData:
    splits: dict[str, list[Pair]]
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    train_ids: tuple[list[list[int]], list[list[int]]]
    dev_ids: tuple[list[list[int]], list[list[int]]]
    train_target_tokens: int
    dropped: dict[str, int]
    target_counts: np.ndarray  # how often each target id (END included) is predicted


def fit_tokenizers(config: Config, splits: dict[str, list[Pair]]) -> tuple[Tokenizer, Tokenizer]:
    """Fit on the training split only."""
    data = config.data
    source_language, target_language = corpus_languages(data.corpus, data.reverse)
    symbols = (data.context_separator,) if data.context_turns else ()
    train = splits["train"]
    source = fit_tokenizer(
        data.tokenizer,
        [p.source for p in train],
        data.source_vocab_size,
        min_frequency=data.min_frequency,
        lowercase=data.lowercase,
        user_symbols=symbols,
        language=source_language,
    )
    target = fit_tokenizer(
        data.tokenizer,
        [p.target for p in train],
        data.target_vocab_size,
        min_frequency=data.min_frequency,
        lowercase=data.lowercase,
        language=target_language,
    )
    return source, target


def saved_tokenizers(paths: RunPaths) -> tuple[Tokenizer, Tokenizer] | None:
    if paths.source_vocab.is_dir() and paths.target_vocab.is_dir():
        return load_tokenizer(paths.source_vocab), load_tokenizer(paths.target_vocab)
    return None


def encode_pairs(
    pairs: list[Pair], source: Tokenizer, target: Tokenizer
) -> tuple[list[list[int]], list[list[int]]]:
    return source.encode_batch([p.source for p in pairs]), target.encode_batch(
        [p.target for p in pairs]
    )


def prepare_data(config: Config, saved: RunPaths | None) -> PreparedData:
    """Load the splits and encode them, reusing the tokenizers saved in ``saved`` if any."""
    data = config.data
    splits = load_splits(data)
    if not splits["train"]:
        raise ConfigError(f"corpus {data.corpus!r} gave no training pairs")
    tokenizers = saved_tokenizers(saved) if saved else None
    source_tokenizer, target_tokenizer = tokenizers or fit_tokenizers(config, splits)
    encoded, dropped = {}, {}
    for split in ("train", "dev"):
        source_ids, target_ids = encode_pairs(splits[split], source_tokenizer, target_tokenizer)
        source_ids, target_ids, dropped[split] = filter_by_length(
            source_ids, target_ids, data.max_source_length, data.max_target_length
        )
        encoded[split] = (source_ids, target_ids)
    if not encoded["train"][0]:
        raise ConfigError(
            f"no training pair fits data.max_source_length={data.max_source_length} and "
            f"data.max_target_length={data.max_target_length}"
        )
    train_targets = encoded["train"][1]
    return PreparedData(
        splits,
        source_tokenizer,
        target_tokenizer,
        encoded["train"],
        encoded["dev"],
        count_target_tokens(train_targets),
        dropped,
        target_frequencies(train_targets, target_tokenizer.vocab_size),
    )


def target_frequencies(target_ids: list[list[int]], vocab_size: int) -> np.ndarray:
    counts = np.zeros(vocab_size, dtype=np.float64)
    for ids in target_ids:
        np.add.at(counts, ids, 1)
    counts[END] += len(target_ids)
    return counts


def initialise_output_bias(model: Seq2Seq, counts: np.ndarray) -> None:
    """Start the output layer at the unigram distribution (log frequencies).

    Without it the cheapest early gain is to learn the unigram distribution by saturating
    the tanh layers into a constant vector, which kills their gradients: seen on DailyDialog,
    where the decoder then ignored its inputs for good.
    """
    projection = model.decoder.projection
    if projection is None or projection.bias is None:
        return
    probabilities = (counts + 1.0) / (counts.sum() + len(counts))
    projection.bias.assign(np.log(probabilities).astype("float32"))


def configure_precision(setting: str) -> str:
    """Mixed float16 on a GPU (``auto``) or when asked; logits stay float32 either way."""
    use_mixed = setting == "on" or (setting == "auto" and tf.config.list_logical_devices("GPU"))
    policy = "mixed_float16" if use_mixed else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


@keras.saving.register_keras_serializable(package="seq2seq")
class InverseSqrtSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then decay with 1/sqrt(step)."""

    def __init__(self, peak: float, warmup_steps: int):
        self.peak = peak
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32") + 1.0
        warmup = float(self.warmup_steps)
        return self.peak * keras.ops.minimum(step / warmup, keras.ops.sqrt(warmup / step))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}


def make_optimizer(train: TrainConfig, policy: str) -> keras.optimizers.Optimizer:
    """Adam without Keras's own clipping: the trainer clips the all-reduced gradient."""
    rate = train.learning_rate
    if train.lr_schedule == "inverse_sqrt":
        rate = InverseSqrtSchedule(train.learning_rate, train.warmup_steps)
    optimizer = keras.optimizers.Adam(learning_rate=rate)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def dev_sample(config: Config, prepared: PreparedData) -> tuple[list[list[int]], list[str]]:
    """The first ``dev_bleu_sentences`` dev pairs (within length limits), ids and references."""
    pairs = prepared.splits["dev"][: config.train.dev_bleu_sentences]
    source_ids = prepared.source_tokenizer.encode_batch([p.source for p in pairs])
    keep = [i for i, ids in enumerate(source_ids) if 0 < len(ids) <= config.data.max_source_length]
    return [source_ids[i] for i in keep], [pairs[i].target for i in keep]


def vocabulary_fingerprint(*tokenizers: Tokenizer) -> int:
    """A checksum of the vocabularies, small enough to sum exactly over workers."""
    text = "\n".join(t.id_to_piece(i) for t in tokenizers for i in range(t.vocab_size))
    return zlib.crc32(text.encode("utf-8")) % (1 << 30)


# -- the run folder -------------------------------------------------------------------------


def open_run_config(
    config: Config | None, output: str | Path, resume: bool, epochs: int | None = None
) -> tuple[Config, RunPaths]:
    """The config to train with; nothing is written yet (bad input leaves no folder behind).

    A resumed run keeps its saved config; only its epoch budget can be raised (``epochs``).
    """
    paths = RunPaths(Path(output))
    if resume:
        if not paths.config.is_file():
            raise RunError(f"cannot resume: {paths.root} has no config.yaml (nothing to resume)")
        saved = load_run_config(paths.config)
        if epochs is not None:
            saved = saved.replace(train=dataclasses.replace(saved.train, epochs=epochs))
        return saved, paths
    if config is None:
        raise ConfigError("a new run needs a config (a preset, a file or overrides)")
    if paths.config.is_file():
        raise RunError(
            f"{paths.root} already holds a run; pass --resume to continue it, "
            "or choose another --output"
        )
    if paths.root.exists() and not paths.root.is_dir():
        raise RunError(f"--output {paths.root} exists and is not a folder")
    return config, paths


def finished_run(paths: RunPaths, config: Config) -> bool:
    """A finished run whose epoch budget was not raised has nothing left to do."""
    metrics = read_metrics(paths)
    done = len(metrics.get("epochs", []))
    return bool(metrics.get("finished")) and (
        done >= config.train.epochs or metrics.get("stopped_early", False)
    )


def create_run_folder(paths: RunPaths, config: Config, prepared: PreparedData) -> None:
    """Chief only: FORMAT, config.yaml and the tokenizers, each written atomically."""
    try:
        paths.create()
        if not paths.config.is_file():
            write_text_atomically(paths.config, config_text(config))
        for tokenizer, folder in (
            (prepared.source_tokenizer, paths.source_vocab),
            (prepared.target_tokenizer, paths.target_vocab),
        ):
            if not folder.is_dir():
                save_tokenizer_atomically(tokenizer, folder)
    except OSError as error:
        raise RunError(f"cannot write the run folder {paths.root}: {error.strerror}") from None


def config_text(config: Config) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        save_config(config, path)
        return path.read_text(encoding="utf-8")


def save_tokenizer_atomically(tokenizer: Tokenizer, folder: Path) -> None:
    partial = folder.with_name(f".partial-{folder.name}")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer.save(partial)
    partial.rename(folder)


# -- the loop -------------------------------------------------------------------------------


@dataclass
class Schedule:
    """How many steps an epoch has, and whether the data stream repeats."""

    steps: int | None  # None: one exact pass over the (single) data shard
    repeat: bool


def epoch_schedule(config: Config, replicas: int, train_pairs: int) -> Schedule:
    """Every worker must run the same number of steps, or a peer waits for ever in an
    all-reduce: with several replicas an epoch is ``ceil(pairs / (replicas x batch))`` steps
    over an endless stream (length buckets leave each shard a different number of batches)."""
    if config.train.steps_per_epoch:
        return Schedule(config.train.steps_per_epoch, True)
    if replicas == 1:
        return Schedule(None, False)
    return Schedule(math.ceil(train_pairs / (replicas * config.train.batch_size)), True)


def dataset_function(config: Config, prepared: PreparedData, epoch: int, repeat: bool):
    """Each input pipeline's share of the epoch's data, shuffled with a per-epoch seed (so a
    resumed epoch sees the same order as an uninterrupted one)."""
    data, train = config.data, config.train

    def make(context: tf.distribute.InputContext) -> tf.data.Dataset:
        dataset = make_dataset(
            *prepared.train_ids,
            batch_size=train.batch_size,
            max_source_length=data.max_source_length,
            max_target_length=data.max_target_length,
            bucket_width=data.bucket_width,
            shuffle=True,
            seed=train.seed + epoch,
            shuffle_buffer=train.shuffle_buffer,
            shard=(context.num_input_pipelines, context.input_pipeline_id),
        )
        return dataset.repeat() if repeat else dataset

    return make


def run_epoch(trainer: Trainer, batches, schedule: Schedule, callbacks) -> dict[str, float]:
    """Train one epoch; returns its mean token loss and target tokens/s (global batches)."""
    iterator = iter(batches)
    total, tokens, step = 0.0, 0.0, 0
    started = time.perf_counter()
    while schedule.steps is None or step < schedule.steps:
        try:
            batch = next(iterator)
        except StopIteration:
            break
        callbacks.on_train_batch_begin(step)
        loss_sum, batch_tokens, _ = trainer.step(batch)
        total += float(loss_sum)
        tokens += float(batch_tokens)
        callbacks.on_train_batch_end(step, {"loss": total / max(tokens, 1.0)})
        step += 1
        if trainer.model.stop_training:
            break
    seconds = time.perf_counter() - started
    return {"loss": total / max(tokens, 1.0), "target_tokens_per_s": tokens / max(seconds, 1e-9)}


def make_callbacks(
    config: Config,
    paths: RunPaths,
    start: int,
    is_chief: bool,
    model: keras.Model,
    verbose: int,
    steps: int | None,
) -> keras.callbacks.CallbackList:
    """The same deciding callbacks on every worker; only the chief records and logs.

    Early stopping replays the ``start`` epochs recorded before a resume on every worker, so
    all of them stop at the same epoch.
    """
    train = config.train
    monitor, mode = ("dev_bleu", "max") if train.select_best_by == "bleu" else ("val_loss", "min")
    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.TerminateOnNaN()]
    if is_chief:
        callbacks.append(RunRecorder(paths, select_best_by=train.select_best_by))
        callbacks.append(
            keras.callbacks.TensorBoard(str(paths.logs), write_graph=False, profile_batch=0)
        )
    callbacks.append(
        ResumableEarlyStopping(
            paths, monitor=monitor, mode=mode, patience=train.patience, replay_epochs=start
        )
    )
    if train.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=1, min_lr=train.learning_rate / 32
            )
        )
    return keras.callbacks.CallbackList(
        callbacks,
        add_progbar=verbose > 0,
        model=model,
        verbose=verbose,
        epochs=train.epochs,
        steps=steps,
    )


def train(
    config: Config | None,
    output: str | Path,
    resume: bool = False,
    verbose: int | str = "auto",
    epochs: int | None = None,
) -> dict:
    """Train a model into ``output`` and return its metrics (also in ``metrics.json``).

    ``resume=True`` continues the run in ``output`` with its saved config (``config`` is then
    ignored; ``epochs`` raises its epoch budget). A finished run is left as it is.
    """
    config, paths = open_run_config(config, output, resume, epochs)
    if resume and finished_run(paths, config):
        log.info("%s is already finished; raise train.epochs to train further", paths.root)
        metrics = read_metrics(paths)
        metrics["already_finished"] = True
        return metrics
    task = cluster_task(config.train.strategy)
    strategy = make_strategy(config.train.strategy, config.train.worker_timeout)
    is_chief = task is None or task.is_chief
    policy = configure_precision(config.train.mixed_precision)
    prepared = prepare_data(config, paths if resume else None)
    workdir = paths if is_chief else RunPaths(Path(tempfile.mkdtemp(prefix="seq2seq-worker-")))
    try:
        if is_chief:
            create_run_folder(paths, config, prepared)
        return train_prepared(config, paths, workdir, strategy, policy, prepared, resume, verbose)
    except OSError as error:
        raise TrainingError(f"cannot write to {paths.root}: {error}") from None
    finally:
        if not is_chief:
            shutil.rmtree(workdir.root, ignore_errors=True)


def train_prepared(
    config: Config,
    paths: RunPaths,
    workdir: RunPaths,
    strategy: tf.distribute.Strategy,
    policy: str,
    prepared: PreparedData,
    resume: bool,
    verbose: int | str,
) -> dict:
    is_chief = workdir == paths
    trainer = build_trainer(
        config,
        strategy,
        policy,
        (prepared.source_tokenizer.vocab_size, prepared.target_tokenizer.vocab_size),
        prepared.target_counts,
    )
    model, optimizer, loss = trainer.model, trainer.optimizer, trainer.loss
    check_same_vocabularies(trainer, prepared)
    restored = restore_latest(paths, model, optimizer) if resume else None
    start = restored.epochs_done if restored else 0
    if trainer.sum_over_replicas(start) != start * trainer.num_replicas:
        raise TrainingError(
            "the workers restored different epochs; resume needs --output on "
            "a folder every worker can read"
        )
    if is_chief:
        record_start(paths, prepared, policy, trainer.num_replicas, start)
    schedule = epoch_schedule(config, trainer.num_replicas, len(prepared.train_ids[0]))
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    callbacks = make_callbacks(
        config, paths, start, is_chief, model, int(verbose) if is_chief else 0, schedule.steps
    )
    scorer = make_dev_scorer(config, prepared, model, loss) if is_chief else None
    score_names = dev_score_names(config)
    callbacks.on_train_begin()
    stopped_early = False
    for epoch in range(start, config.train.epochs):
        callbacks.on_epoch_begin(epoch)
        batches = trainer.distribute(dataset_function(config, prepared, epoch, schedule.repeat))
        logs = run_epoch(trainer, batches, schedule, callbacks)
        if model.stop_training and not math.isfinite(logs["loss"]):
            raise TrainingError(f"the training loss became {logs['loss']} in epoch {epoch + 1}")
        scores = scorer.scores() if scorer else {}
        values = trainer.broadcast_from_chief([scores.get(name, 0.0) for name in score_names])
        logs.update(zip(score_names, values, strict=True))
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        callbacks.on_epoch_end(epoch, logs)
        if is_chief:
            save_state(paths, model, optimizer, epoch + 1)
            save_epoch_weights(paths, model, epoch + 1, config.train.keep_checkpoints)
        if model.stop_training:
            stopped_early = epoch + 1 < config.train.epochs
            break
    callbacks.on_train_end()
    return finish_run(paths, model, stopped_early) if is_chief else {}


def build_trainer(
    config: Config,
    strategy: tf.distribute.Strategy,
    policy: str,
    vocab_sizes: tuple[int, int],
    target_counts: np.ndarray | None = None,
) -> Trainer:
    """Model, optimizer and loss created under the strategy, wrapped in the training step.

    Seeding right here makes the initial weights depend on the seed alone, not on what ran
    before (fitting tokenizers draws random numbers; loading saved ones does not).
    """
    keras.utils.set_random_seed(config.train.seed)
    with strategy.scope():
        model = build_model(config.model, *vocab_sizes)
        if target_counts is not None:
            initialise_output_bias(model, target_counts)
        optimizer = make_optimizer(config.train, policy)
        loss = MaskedCrossEntropy(config.train.label_smoothing)
        model.compile(optimizer=optimizer, loss=loss)  # for callbacks and saved files; no fit
        return Trainer(
            strategy, model, optimizer, loss, config.train.clipnorm, config.train.jit_compile
        )


def check_same_vocabularies(trainer: Trainer, prepared: PreparedData) -> None:
    """Workers fit their own tokenizers; they must agree id for id, or training is garbage."""
    fingerprint = vocabulary_fingerprint(prepared.source_tokenizer, prepared.target_tokenizer)
    if trainer.sum_over_replicas(fingerprint) != fingerprint * trainer.num_replicas:
        raise TrainingError(
            "the workers built different vocabularies; give every worker the same corpus "
            "files and config"
        )


def dev_score_names(config: Config) -> list[str]:
    bleu = ["dev_bleu", "dev_chrf"] if config.train.select_best_by == "bleu" else []
    return ["val_loss", "val_perplexity", *bleu]


def make_dev_scorer(
    config: Config, prepared: PreparedData, model: keras.Model, loss: MaskedCrossEntropy
) -> DevScorer:
    data = config.data
    dev = make_dataset(
        *prepared.dev_ids,
        batch_size=config.train.batch_size,
        max_source_length=data.max_source_length,
        max_target_length=data.max_target_length,
        bucket_width=data.bucket_width,
        shuffle=False,
        seed=config.train.seed,
    )
    dev_ids, references = dev_sample(config, prepared)
    use_bleu = config.train.select_best_by == "bleu"
    return DevScorer(
        model,
        dev,
        loss,
        dev_ids if use_bleu else [],
        references if use_bleu else [],
        prepared.target_tokenizer.decode,
        max_length=config.decode.max_length,
        jit_compile=config.decode.jit_compile,
    )


def record_start(
    paths: RunPaths, prepared: PreparedData, policy: str, replicas: int, start: int
) -> None:
    """Facts about the data and hardware; epochs after the restored state are forgotten."""
    remove_partial_files(paths.root)
    metrics = read_metrics(paths)
    metrics["epochs"] = [e for e in metrics.get("epochs", []) if e["epoch"] <= start]
    best = metrics.get("best")
    if best and best["epoch"] > start:  # its model.keras came from an epoch being redone
        metrics.pop("best", None)
        metrics.pop("best_score", None)
    metrics.pop("finished", None)
    metrics.update(
        {
            "pairs": {split: len(pairs) for split, pairs in prepared.splits.items()},
            "dropped_by_length": prepared.dropped,
            "train_target_tokens": prepared.train_target_tokens,
            "source_vocab_size": prepared.source_tokenizer.vocab_size,
            "target_vocab_size": prepared.target_tokenizer.vocab_size,
            "precision": policy,
            "replicas": replicas,
        }
    )
    write_metrics(paths, metrics)
    write_history(paths, metrics["epochs"])


def finish_run(paths: RunPaths, model: keras.Model, stopped_early: bool) -> dict:
    write_atomically(paths.last_model, model.save)
    if not paths.best_model.is_file():
        write_atomically(paths.best_model, model.save)
    metrics = read_metrics(paths)
    metrics["finished"] = True
    metrics["stopped_early"] = stopped_early
    metrics["perplexity"] = math.exp(min(metrics.get("best", {}).get("val_loss", 50.0), 50.0))
    write_metrics(paths, metrics)
    return metrics


__all__ = ["ClusterError", "TrainingError", "train"]
