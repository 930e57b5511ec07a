"""Training: corpus -> tokenizers -> sharded tf.data -> the distributed step -> run folder.

``train(config, output)`` is the library entry point; ``python -m seq2seq.train`` is a thin
command line over it. The same loop runs on one CPU, on several local GPUs and on several
hosts: only the ``tf.distribute`` strategy differs (see ``seq2seq.training.step`` for why this is
not ``model.fit``). Keras callbacks still do the bookkeeping: early stopping, LR plateaus,
TensorBoard, ``TerminateOnNaN``, the progress bar and the run record.

Only the chief (worker 0) writes the run folder; other workers keep their tokenizers in a
temporary folder that is removed at the end. Everything that can fail on bad input (config,
corpus, cluster) is checked before the run folder is created. After each epoch the chief
saves the training state atomically; ``resume=True`` continues from the newest state that
reads back whole. Ctrl-C and SIGTERM end training between two steps, and the chief keeps the
epoch so far, which ``resume=True`` continues at the next batch (``mid_epoch``).
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seq2seq import run_lock
from seq2seq.config import Config, TrainConfig
from seq2seq.data.tokenizers import copy_table, vocabulary_fingerprint
from seq2seq.model import Seq2Seq, build_model
from seq2seq.model.losses import MaskedCrossEntropy
from seq2seq.runs import (
    RunError,
    RunPaths,
    fault_seam,
    read_metrics,
    write_metrics,
)
from seq2seq.training.callbacks import (
    ProgressRecorder,
    ResumableEarlyStopping,
    ResumablePlateau,
    RunRecorder,
)
from seq2seq.training.checkpoints import (
    restore_latest,
    rewrite_missing_epoch_weights,
    save_epoch_weights,
    save_state,
)
from seq2seq.training.cluster import ClusterError, cluster_task, make_strategy
from seq2seq.training.data import (
    PreparedData,
    Schedule,
    dataset_function,
    dev_batches,
    dev_sample,
    epoch_schedule,
    prepare_data,
)
from seq2seq.training.dev_scores import DevScorer
from seq2seq.training.init_from import (
    InitFrom,
    check_init_from,
    initialise_from,
    prepare_kept,
)
from seq2seq.training.interrupts import INTERRUPTS, BetweenSteps
from seq2seq.training.mid_epoch import (
    EpochProgress,
    MidEpoch,
    drop_mid_epoch,
    restore_mid_epoch,
    save_mid_epoch,
)
from seq2seq.training.run_folder import (
    create_run_folder,
    finish_run,
    finished_run,
    lock_existing_folder,
    open_run_config,
    record_start,
)
from seq2seq.training.step import Trainer

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (a worker disagrees, the disk is full, ...)."""


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


# train.mixed_precision -> Keras policy; "on" is the older name of "float16".
PRECISION_POLICIES = {
    "off": "float32",
    "float16": "mixed_float16",
    "on": "mixed_float16",
    "bfloat16": "mixed_bfloat16",
}


def cpu_has_bfloat16() -> bool:
    """Whether this (Linux) CPU has bfloat16 matrix instructions (AVX512_BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            flags = next((line for line in info if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def fastest_mixed_policy() -> str | None:
    """The mixed policy that speeds training up here: float16 on a GPU, bfloat16 on a CPU
    with bfloat16 units, none otherwise (emulated bfloat16 is slower than float32)."""
    if tf.config.list_logical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bfloat16() else None


def configure_precision(setting: str) -> str:
    """Set and return the global Keras policy for ``train.mixed_precision``.

    ``auto`` takes the fastest mixed policy this machine has: float16 on a GPU; bfloat16 on
    a CPU with bfloat16 units (AVX512_BF16, AMX), whose products then run about twice as
    fast (training +22% at the reference size, same dev and test BLEU on the quickstart
    model); float32 elsewhere. Variables and logits stay float32, so saved models load
    and decode in float32.
    """
    if setting == "auto":
        policy = fastest_mixed_policy() or "float32"
    else:
        policy = PRECISION_POLICIES[setting]
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


def run_epoch(
    trainer: Trainer, batches, schedule: Schedule, callbacks, progress: EpochProgress
) -> dict[str, float]:
    """Train the rest of one epoch, from where ``progress`` stands (batch 0, or where a
    mid-epoch state stopped); returns the epoch's mean token loss and the target tokens/s
    of the batches trained now (global batches).

    Ctrl-C and SIGTERM take effect between two steps (``BetweenSteps``), so when they end
    the epoch early ``progress`` counts exactly the batches the weights have seen.
    """
    iterator = iter(batches)
    tokens_now = 0.0
    started = time.perf_counter()
    with BetweenSteps() as interrupts:
        while schedule.steps is None or progress.batches_done < schedule.steps:
            try:
                batch = next(iterator)
            except StopIteration:
                break
            step = progress.batches_done
            callbacks.on_train_batch_begin(step)
            loss_sum, batch_tokens, _ = trainer.step(batch)
            progress.add(float(loss_sum), float(batch_tokens))
            tokens_now += float(batch_tokens)
            callbacks.on_train_batch_end(step, {"loss": progress.loss})
            fault_seam("step")  # the tests' SEQ2SEQ_TERM_AT=step:N
            interrupts.check()
            if trainer.model.stop_training:
                break
    seconds = time.perf_counter() - started
    return {"loss": progress.loss, "target_tokens_per_s": tokens_now / max(seconds, 1e-9)}


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
        callbacks.append(ProgressRecorder(paths))
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
            ResumablePlateau(
                paths,
                replay_epochs=start,
                monitor="val_loss",
                factor=0.5,
                patience=1,
                min_lr=train.learning_rate / 32,
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
    init_from: InitFrom | None = None,
) -> dict:
    """Train a model into ``output`` and return its metrics (also in ``metrics.json``).

    ``resume=True`` continues the run in ``output`` with its saved config (``config`` is then
    ignored; ``epochs`` raises its epoch budget). A finished run is left as it is.
    ``init_from``: a new run starts from another run's weights (``seq2seq.training.init_from``).
    """
    if init_from is not None and resume:
        raise RunError("--init-from starts a new run; --resume continues one: give one of them")
    config, paths = open_run_config(config, output, resume, epochs)
    if init_from is not None:
        check_init_from(init_from, config)  # before any work: a missing or other RUN
    task = cluster_task(config.train.strategy)
    is_chief = task is None or task.is_chief
    try:
        if is_chief:  # one writer per run folder (seq2seq.run_lock)
            lock_existing_folder(paths)
        if resume and finished_run(paths, config):
            log.info("%s is already finished; raise train.epochs to train further", paths.root)
            metrics = read_metrics(paths)
            metrics["already_finished"] = True
            return metrics
        strategy = make_strategy(config.train.strategy, config.train.worker_timeout)
        caller_policy = keras.mixed_precision.global_policy()
        try:
            policy = configure_precision(config.train.mixed_precision)
            return train_with_policy(
                config, paths, strategy, is_chief, policy, resume, verbose, init_from
            )
        finally:  # models the caller builds afterwards are not mixed by this run's setting
            keras.mixed_precision.set_global_policy(caller_policy)
    finally:
        run_lock.release(paths.root)


def train_with_policy(
    config: Config,
    paths: RunPaths,
    strategy: tf.distribute.Strategy,
    is_chief: bool,
    policy: str,
    resume: bool,
    verbose: int | str,
    init_from: InitFrom | None = None,
) -> dict:
    if init_from is None and resume:  # a fine-tuned run: its first epoch may have been lost
        recorded = read_metrics(paths).get("init_from")
        init_from = InitFrom.from_record(recorded) if recorded else None
    if init_from is not None and init_from.vocab == "keep" and not resume:
        prepared = prepare_kept(config, init_from)  # the new corpus with RUN's tokenizers
    else:
        prepared = prepare_data(config, paths if resume else None)
    workdir = paths if is_chief else RunPaths(Path(tempfile.mkdtemp(prefix="seq2seq-worker-")))
    try:
        if is_chief:
            create_run_folder(paths, config, prepared, new=not resume)
        return train_prepared(
            config, paths, workdir, strategy, policy, prepared, resume, verbose, init_from
        )
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
    init_from: InitFrom | None = None,
) -> dict:
    is_chief = workdir == paths
    trainer = build_trainer(
        config,
        strategy,
        policy,
        (prepared.source_tokenizer.vocab_size, prepared.target_tokenizer.vocab_size),
        prepared.target_counts,
        copy_table(prepared.source_tokenizer, prepared.target_tokenizer)
        if config.model.copy_attention
        else None,
    )
    model, optimizer, loss = trainer.model, trainer.optimizer, trainer.loss
    check_same_vocabularies(trainer, prepared)
    restored = restore_latest(paths, model, optimizer) if resume else None
    start = restored.epochs_done if restored else 0
    if is_chief:  # before a mid-epoch state replaces the restored weights
        rewrite_missing_epoch_weights(paths, model, start, config.train.keep_checkpoints)
    mid = restore_mid_epoch(paths, model, optimizer, start, is_chief) if resume else None
    check_same_start(trainer, start, mid.batches_done if mid else 0)
    initialised = None
    if init_from is not None and start == 0 and mid is None:  # else the state has it already
        if resume:
            log.info("no finished epoch to resume: starting from %s's weights again", init_from.run)
        initialised = initialise_from(
            init_from,
            model,
            optimizer,
            prepared.source_tokenizer,
            prepared.target_tokenizer,
        )
    if is_chief:
        record_start(paths, prepared, policy, trainer.num_replicas, start)
        if initialised is not None:
            metrics = read_metrics(paths)
            metrics["init_from"] = initialised
            write_metrics(paths, metrics)
    schedule = epoch_schedule(config, trainer.num_replicas, prepared)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    callbacks = make_callbacks(
        config, paths, start, is_chief, model, int(verbose) if is_chief else 0, schedule.steps
    )
    scorer = make_dev_scorer(config, prepared, model, loss) if is_chief else None
    epoch_run = EpochRun(config, prepared, trainer, schedule, callbacks, scorer)
    callbacks.on_train_begin()
    stopped_early = False
    for epoch in range(start, config.train.epochs):
        progress = mid.progress() if mid and epoch == start else EpochProgress(epoch)
        try:
            epoch_run.train(progress)
            if is_chief:
                save_state(paths, model, optimizer, epoch + 1)
        except INTERRUPTS as stop:  # Ctrl-C or SIGTERM: keep the epoch so far, then end as asked
            if is_chief:
                keep_mid_epoch(paths, model, optimizer, progress, schedule.steps)
            stop.is_chief = is_chief  # only the chief's stop line says what the run keeps
            raise
        if is_chief:
            drop_mid_epoch(paths)
            save_epoch_weights(paths, model, epoch + 1, config.train.keep_checkpoints)
        if model.stop_training:
            stopped_early = epoch + 1 < config.train.epochs
            break
    callbacks.on_train_end()
    return finish_run(paths, model, stopped_early) if is_chief else {}


def check_same_start(trainer: Trainer, epochs_done: int, batches_done: int) -> None:
    """Every worker must start at the same epoch and batch, or they train different data
    in lockstep (and one waits for ever at the epoch's end)."""
    for value in (epochs_done, batches_done):
        if trainer.sum_over_replicas(value) != value * trainer.num_replicas:
            raise TrainingError(
                "the workers restored different epochs; resume needs --output on "
                "a folder every worker can read"
            )


class EpochRun:
    """One epoch from its first batch to its record: train, score on dev, run the epoch-end
    callbacks (the run record, early stopping, LR plateaus)."""

    def __init__(
        self,
        config: Config,
        prepared: PreparedData,
        trainer: Trainer,
        schedule: Schedule,
        callbacks: keras.callbacks.CallbackList,
        scorer: DevScorer | None,
    ):
        self.config = config
        self.prepared = prepared
        self.trainer = trainer
        self.schedule = schedule
        self.callbacks = callbacks
        self.scorer = scorer
        self.score_names = dev_score_names(config)

    def train(self, progress: EpochProgress) -> dict[str, float]:
        """Train ``progress.epoch`` from ``progress.batches_done`` on; returns its logs."""
        epoch, trainer = progress.epoch, self.trainer
        self.callbacks.on_epoch_begin(epoch)
        make = dataset_function(
            self.config, self.prepared, epoch, self.schedule, skip=progress.batches_done
        )
        logs = run_epoch(trainer, trainer.distribute(make), self.schedule, self.callbacks, progress)
        if trainer.model.stop_training and not math.isfinite(logs["loss"]):
            raise TrainingError(f"the training loss became {logs['loss']} in epoch {epoch + 1}")
        scores = self.scorer.scores() if self.scorer else {}
        values = trainer.broadcast_from_chief([scores.get(name, 0.0) for name in self.score_names])
        logs.update(zip(self.score_names, values, strict=True))
        learning_rate = trainer.optimizer.learning_rate
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(learning_rate))
        self.callbacks.on_epoch_end(epoch, logs)
        return logs


def keep_mid_epoch(
    paths: RunPaths,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    progress: EpochProgress,
    steps: int | None,
) -> MidEpoch | None:
    """On Ctrl-C or SIGTERM (chief only): save the epoch so far for ``--resume``. Nothing
    to save when this process trained no batch of it (the state it started from stands) or
    the loss is no longer finite. A save that fails is logged, not raised: the interrupt
    still ends training with its own line and exit code, from the last good state."""
    if progress.batches_done == progress.started_at or not math.isfinite(progress.loss):
        return None
    try:
        state = save_mid_epoch(paths, model, optimizer, progress, steps)
    except Exception as error:  # a full disk, h5py's own errors
        log.warning("could not keep the epoch so far (%s); the last finished epoch stays", error)
        return None
    log.info("kept %s in %s", state.describe(), state.folder)
    return state


def build_trainer(
    config: Config,
    strategy: tf.distribute.Strategy,
    policy: str,
    vocab_sizes: tuple[int, int],
    target_counts: np.ndarray | None = None,
    copy_ids: np.ndarray | None = None,
) -> Trainer:
    """Model, optimizer and loss created under the strategy, wrapped in the training step.

    Seeding right here makes the initial weights depend on the seed alone, not on what ran
    before (fitting tokenizers draws random numbers; loading saved ones does not).
    """
    keras.utils.set_random_seed(config.train.seed)
    with strategy.scope():
        model = build_model(config.model, *vocab_sizes, copy_table=copy_ids)
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
    dev = dev_batches(config, prepared)
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


__all__ = ["ClusterError", "TrainingError", "train"]
