"""Training: corpus -> tokenizers -> tf.data -> ``model.fit`` with callbacks -> run folder.

``train(config, output)`` is the library entry point; ``python -m seq2seq.train`` is a
thin command line over it. A run can be resumed after a crash (``resume=True``): the
config and tokenizers are read back from the folder and Keras's ``BackupAndRestore``
restores the weights, the optimizer state and the epoch counter.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seq2seq.callbacks import DevEvaluation, ResumableEarlyStopping
from seq2seq.config import Config, TrainConfig, load_run_config, save_config
from seq2seq.corpora.loading import Pair, load_splits
from seq2seq.corpora.spec import corpus_languages
from seq2seq.losses import MaskedCrossEntropy
from seq2seq.model import Seq2Seq, build_model
from seq2seq.pipeline import count_target_tokens, filter_by_length, make_dataset
from seq2seq.runs import RunError, RunPaths, read_metrics, write_metrics
from seq2seq.text import END, Tokenizer, fit_tokenizer, load_tokenizer

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    splits: dict[str, list[Pair]]
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    train: tf.data.Dataset
    dev: tf.data.Dataset
    train_target_tokens: int
    dropped: dict[str, int]
    target_counts: np.ndarray  # how often each target id (END included) is predicted


def tokenizers_for(
    config: Config, splits: dict[str, list[Pair]], paths: RunPaths
) -> tuple[Tokenizer, Tokenizer]:
    """Fit on the training split only, or reuse the run's saved tokenizers."""
    if paths.source_vocab.is_dir() and paths.target_vocab.is_dir():
        return load_tokenizer(paths.source_vocab), load_tokenizer(paths.target_vocab)
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
    source.save(paths.source_vocab)
    target.save(paths.target_vocab)
    return source, target


def encode_pairs(
    pairs: list[Pair], source: Tokenizer, target: Tokenizer
) -> tuple[list[list[int]], list[list[int]]]:
    return source.encode_batch([p.source for p in pairs]), target.encode_batch(
        [p.target for p in pairs]
    )


def prepare_data(config: Config, paths: RunPaths) -> PreparedData:
    data, train = config.data, config.train
    splits = load_splits(data)
    if not splits["train"]:
        raise ValueError(f"corpus {data.corpus!r} gave no training pairs")
    source_tokenizer, target_tokenizer = tokenizers_for(config, splits, paths)
    datasets, dropped, tokens = {}, {}, 0
    for split in ("train", "dev"):
        source_ids, target_ids = encode_pairs(splits[split], source_tokenizer, target_tokenizer)
        source_ids, target_ids, dropped[split] = filter_by_length(
            source_ids, target_ids, data.max_source_length, data.max_target_length
        )
        if split == "train":
            tokens = count_target_tokens(target_ids)
            counts = target_frequencies(target_ids, target_tokenizer.vocab_size)
        datasets[split] = make_dataset(
            source_ids,
            target_ids,
            batch_size=train.batch_size,
            max_source_length=data.max_source_length,
            max_target_length=data.max_target_length,
            bucket_width=data.bucket_width,
            shuffle=split == "train",
            seed=train.seed,
        )
    return PreparedData(
        splits,
        source_tokenizer,
        target_tokenizer,
        datasets["train"],
        datasets["dev"],
        tokens,
        dropped,
        counts,
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


def choose_strategy(name: str) -> tf.distribute.Strategy:
    """``auto``: all local GPUs with MirroredStrategy when there are several."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


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


def make_optimizer(train: TrainConfig) -> keras.optimizers.Optimizer:
    rate = train.learning_rate
    if train.lr_schedule == "inverse_sqrt":
        rate = InverseSqrtSchedule(train.learning_rate, train.warmup_steps)
    return keras.optimizers.Adam(learning_rate=rate, clipnorm=train.clipnorm or None)


def dev_sample(config: Config, prepared: PreparedData) -> tuple[list[list[int]], list[str]]:
    """The first ``dev_bleu_sentences`` dev pairs (within length limits), ids and references."""
    pairs = prepared.splits["dev"][: config.train.dev_bleu_sentences]
    source_ids = prepared.source_tokenizer.encode_batch([p.source for p in pairs])
    keep = [i for i, ids in enumerate(source_ids) if 0 < len(ids) <= config.data.max_source_length]
    return [source_ids[i] for i in keep], [pairs[i].target for i in keep]


def make_callbacks(config: Config, paths: RunPaths, prepared: PreparedData) -> list:
    train = config.train
    dev_ids, references = dev_sample(config, prepared)
    monitor, mode = ("dev_bleu", "max") if train.select_best_by == "bleu" else ("val_loss", "min")
    callbacks = [
        keras.callbacks.BackupAndRestore(str(paths.backup)),
        DevEvaluation(
            paths,
            dev_ids if train.select_best_by == "bleu" else [],
            references,
            prepared.target_tokenizer.decode,
            select_best_by=train.select_best_by,
            max_length=config.decode.max_length,
            jit_compile=config.decode.jit_compile,
        ),
        keras.callbacks.TerminateOnNaN(),
        ResumableEarlyStopping(paths, monitor=monitor, mode=mode, patience=train.patience),
        keras.callbacks.CSVLogger(str(paths.history), append=True),
        keras.callbacks.TensorBoard(str(paths.logs), write_graph=False, profile_batch=0),
    ]
    if train.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=1, min_lr=train.learning_rate / 32
            )
        )
    return callbacks


def start_run(config: Config, output: str | Path, resume: bool) -> tuple[Config, RunPaths]:
    """Create the run folder, or reopen it (and its saved config) when resuming."""
    paths = RunPaths(Path(output))
    if resume:
        if not paths.config.is_file():
            raise RunError(f"cannot resume: {paths.root} has no config.yaml (nothing to resume)")
        return load_run_config(paths.config), paths.create()
    if paths.config.is_file():
        raise RunError(
            f"{paths.root} already holds a run; pass --resume to continue it, "
            "or choose another --output"
        )
    paths.create()
    save_config(config, paths.config)
    return config, paths


def compile_model(model: Seq2Seq, train: TrainConfig) -> None:
    model.compile(
        optimizer=make_optimizer(train),
        loss=MaskedCrossEntropy(train.label_smoothing),
        jit_compile=train.jit_compile,
    )


def train(
    config: Config, output: str | Path, resume: bool = False, verbose: int | str = "auto"
) -> dict:
    """Train a model into ``output`` and return its metrics (also in ``metrics.json``)."""
    config, paths = start_run(config, output, resume)
    keras.utils.set_random_seed(config.train.seed)
    policy = configure_precision(config.train.mixed_precision)
    strategy = choose_strategy(config.train.strategy)
    prepared = prepare_data(config, paths)
    log.info(
        "training on %d pairs (%d target tokens)",
        len(prepared.splits["train"]),
        prepared.train_target_tokens,
    )
    with strategy.scope():
        model = build_model(
            config.model,
            prepared.source_tokenizer.vocab_size,
            prepared.target_tokenizer.vocab_size,
        )
        initialise_output_bias(model, prepared.target_counts)
        compile_model(model, config.train)
    metrics = read_metrics(paths)
    metrics.update(
        {
            "pairs": {split: len(pairs) for split, pairs in prepared.splits.items()},
            "dropped_by_length": prepared.dropped,
            "train_target_tokens": prepared.train_target_tokens,
            "source_vocab_size": prepared.source_tokenizer.vocab_size,
            "target_vocab_size": prepared.target_tokenizer.vocab_size,
            "precision": policy,
            "replicas": strategy.num_replicas_in_sync,
        }
    )
    write_metrics(paths, metrics)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    # With a fixed number of steps an "epoch" is not a pass over the data: loop it.
    train_data = prepared.train.repeat() if config.train.steps_per_epoch else prepared.train
    model.fit(
        train_data,
        validation_data=prepared.dev,
        epochs=config.train.epochs,
        steps_per_epoch=config.train.steps_per_epoch,
        callbacks=make_callbacks(config, paths, prepared),
        shuffle=False,  # the dataset shuffles itself, with the run's seed
        verbose=verbose,
    )
    model.save(paths.last_model)
    metrics = read_metrics(paths)
    if not paths.best_model.is_file():
        model.save(paths.best_model)
    metrics["finished"] = True
    metrics["perplexity"] = math.exp(min(metrics.get("best", {}).get("val_loss", 50.0), 50.0))
    write_metrics(paths, metrics)
    return metrics
