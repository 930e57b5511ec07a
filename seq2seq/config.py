"""Run configuration: YAML file + command-line overrides -> validated dataclasses.

Settings flow one way: a preset or file is read, overrides are applied, the result is
validated once here, and builders downstream only ever read the frozen ``Config``.
Every run folder gets a copy (``config.yaml``) so a run can always be rebuilt.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

CONFIG_VERSION = 1


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


# Allowed values of the enumerated fields, keyed by "section.field".
CHOICES: dict[str, tuple[str, ...]] = {
    "data.tokenizer": ("word", "sentencepiece"),
    "model.cell": ("gru", "lstm", "rnn"),
    "model.attention": ("bahdanau", "luong", "none"),
    "model.luong_score": ("dot", "general"),
    "train.lr_schedule": ("constant", "plateau", "inverse_sqrt"),
    "train.mixed_precision": ("auto", "off", "float16", "bfloat16", "on"),
    "train.strategy": ("auto", "default", "mirrored", "multi_worker"),
    "train.select_best_by": ("bleu", "loss"),
    "decode.method": ("greedy", "beam", "sample"),
}


@dataclass
class DataConfig:
    """Where the sentence pairs come from and how they become token ids."""

    corpus: str = "anki/spa-eng"
    reverse: bool = False
    path: str | None = None
    data_dir: str | None = None
    cache_dir: str | None = None
    tfds_source_key: str | None = None
    tfds_target_key: str | None = None
    context_turns: int = 0
    context_separator: str = "<sep>"
    max_pairs: int | None = None
    dev_fraction: float = 0.05
    test_fraction: float = 0.05
    split_seed: int = 1234
    max_bad_fraction: float = 0.001
    lowercase: bool = False
    tokenizer: str = "sentencepiece"
    source_vocab_size: int = 8000
    target_vocab_size: int = 8000
    min_frequency: int = 1
    max_source_length: int = 40
    max_target_length: int = 40
    bucket_width: int = 4
    # SentencePiece: every digit its own piece (numbers are spelt digit by digit, so any
    # number can be produced), and unseen characters as UTF-8 byte pieces instead of <unk>.
    split_digits: bool = False
    byte_fallback: bool = False
    # One SentencePiece model fitted on both sides, of source_vocab_size pieces (the
    # target_vocab_size is then unused): a name is cut into the same pieces on both sides,
    # so model.copy_attention can copy every piece of it.
    shared_vocab: bool = False
    # A folder written by ``python -m seq2seq.prepare``; None: prepare into a cache folder
    # keyed by the fields above (``seq2seq.data.prepare``), reused by later runs.
    prepared: str | None = None
    # Pairs of the training split the tokenizers are fitted on (a seeded sample; the
    # whole split when it is smaller).
    tokenizer_sample: int = 500_000
    # Training shards: at least this many files (tf.data reads them in parallel and workers
    # take whole files), each about ``shard_megabytes`` at most.
    min_shards: int = 16
    shard_megabytes: int = 64


@dataclass
class ModelConfig:
    """Shape of the encoder-decoder."""

    cell: str = "gru"
    embedding_dim: int = 256
    hidden_size: int = 256
    encoder_layers: int = 1
    decoder_layers: int = 1
    bidirectional: bool = True
    attention: str = "bahdanau"
    luong_score: str = "general"
    input_feeding: bool = False
    dropout: float = 0.2
    residual: bool = False
    tie_embeddings: bool = False
    # Pointer-generator output: copy source pieces (names, numbers) through attention.
    copy_attention: bool = False


@dataclass
class TrainConfig:
    """Optimisation, checkpoints and hardware."""

    batch_size: int = 64
    epochs: int = 10
    learning_rate: float = 0.001
    lr_schedule: str = "plateau"
    warmup_steps: int = 1000
    clipnorm: float = 1.0
    label_smoothing: float = 0.0
    patience: int = 3
    select_best_by: str = "bleu"
    dev_bleu_sentences: int = 500
    steps_per_epoch: int | None = None
    seed: int = 42
    shuffle_buffer: int = 20000
    mixed_precision: str = "auto"
    strategy: str = "auto"
    jit_compile: bool = False
    keep_checkpoints: int = 5
    worker_timeout: int = 120


# MMI's weight per reply token: log-probabilities summed over a reply favour short ones, and
# BLEU's brevity penalty punishes them. Chosen on DailyDialog's dev split (scripts/mmi_sweep.py).
DEFAULT_MMI_GAMMA = 3.0


@dataclass
class DecodeConfig:
    """Search settings, and the one place their defaults are written: the translator, the
    searcher, the CLIs and the app start from these. Flags and app controls become one
    validated ``DecodeConfig`` at the edge (``seq2seq.search.options.resolve_decode``),
    which is then passed down as it is."""

    method: str = "greedy"
    beam_size: int = 5
    n_best: int = 1
    length_penalty: float = 1.0
    max_length: int = 60
    min_length: int = 0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0
    replace_unk: bool = False
    copy_names: bool = False
    seed: int | None = None
    jit_compile: bool = True
    mmi_lambda: float | None = None
    mmi_gamma: float = DEFAULT_MMI_GAMMA
    mmi_candidates: int = 10

    def replace(self, **changes: Any) -> DecodeConfig:
        """A copy with ``changes``: for settings derived from validated ones (a batch's
        seed, MMI's candidate search), not for user input (``resolve_decode`` checks that)."""
        return dataclasses.replace(self, **changes)


@dataclass
class Config:
    """Everything a run needs, in one object saved with the run."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    version: int = CONFIG_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **sections: Any) -> Config:
        return dataclasses.replace(self, **sections)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "decode": DecodeConfig}


def preset_names() -> list[str]:
    folder = resources.files("seq2seq") / "presets"
    names = [p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")]
    return sorted(n for n in names if n != "reference")


def preset_path(name: str) -> Path:
    path = Path(str(resources.files("seq2seq") / "presets" / f"{name}.yaml"))
    if not path.is_file():
        raise ConfigError(
            f"unknown preset {name!r}; available presets: {', '.join(preset_names())}"
        )
    return path


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (damaged file?): {error}") from error
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error
    if content is None:  # an empty (or comments-only) file is a mistake or a damaged copy
        raise ConfigError(
            f"{path}: the file is empty; expected a mapping of sections (data:, model:, "
            "train:, decode:), e.g. `train: {epochs: 5}`"
        )
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return content


def parse_override(text: str) -> tuple[str, Any]:
    """Turn ``section.field=value`` into a key and a YAML-typed value."""
    key, sep, raw = text.partition("=")
    if not sep or "." not in key:
        raise ConfigError(
            f"override {text!r} must look like section.field=value, e.g. train.epochs=5"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def merge(base: dict[str, Any], update: dict[str, Any], origin: str) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in update.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: section {key!r} must be a mapping")
            merged.setdefault(key, {}).update(value)
        elif key in ("name", "version"):
            merged[key] = value
        else:
            allowed = ", ".join([*SECTIONS, "name", "version"])
            raise ConfigError(f"{origin}: unknown top-level key {key!r}; allowed: {allowed}")
    return merged


def load_config(
    preset: str | None = None,
    path: str | Path | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Build a validated Config from a preset, then a file, then ``a.b=c`` overrides."""
    raw: dict[str, Any] = {}
    if preset:
        raw = merge(raw, read_yaml(preset_path(preset)), f"preset {preset}")
        raw.setdefault("name", preset)
    if path:
        raw = merge(raw, read_yaml(path), str(path))
    for text in overrides or []:
        key, value = parse_override(text)
        section, _, name = key.partition(".")
        raw = merge(raw, {section: {name: value}}, f"override {text!r}")
    return from_dict(raw)


def from_dict(raw: dict[str, Any], origin: str = "config") -> Config:
    raw = merge({}, raw, origin)
    version = raw.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise ConfigError(
            f"{origin}: config version {version} is not supported by this seq2seq "
            f"(expects version {CONFIG_VERSION}); retrain or convert the run"
        )
    sections = {
        name: build_section(name, cls, raw.get(name, {}), origin) for name, cls in SECTIONS.items()
    }
    config = Config(name=str(raw.get("name", "run")), version=version, **sections)
    validate(config)
    return config


def build_section(name: str, cls: type, values: dict[str, Any], origin: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(
                f"{origin}: unknown field {name}.{key}; "
                f"fields of {name}: {', '.join(sorted(known))}"
            )
    typed = {
        key: coerce(f"{name}.{key}", hints[key], value, origin) for key, value in values.items()
    }
    return cls(**typed)


def coerce(key: str, hint: Any, value: Any, origin: str) -> Any:
    """Check a value against its annotation; accept ints for floats and null for optionals."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{origin}: {key} must not be empty")
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif base is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    raise ConfigError(f"{origin}: {key} must be {base.__name__}, got {value!r}")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


MAX_SEQUENCE_LENGTH = 1000  # tokens: data.max_*_length and decode.max_length
MAX_BEAM_SIZE = 100  # a beam allocates beam_size x vocabulary scores per input
MAX_SEED = 2**32 - 1  # the training seed seeds NumPy, which takes 32 bits


@dataclass(frozen=True)
class Range:
    """The allowed values of one numeric field (``None``: unbounded on that side)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the low end itself is not allowed
    high_open: bool = False  # the high end itself is not allowed
    optional: bool = False  # null is allowed too (and means what the docs say)

    def __contains__(self, value: float) -> bool:
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        if self.high is not None:
            return value < self.high if self.high_open else value <= self.high
        return not math.isnan(value)

    def __str__(self) -> str:
        def number(value: float) -> str:
            return f"{value:,}" if isinstance(value, int) else f"{value:g}"

        if self.low is not None and self.high is not None and not self.low_open + self.high_open:
            text = f"from {number(self.low)} to {number(self.high)}"
        else:
            parts = []
            if self.low is not None:
                parts.append(f"{'>' if self.low_open else '>='} {number(self.low)}")
            if self.high is not None:
                parts.append(f"{'<' if self.high_open else '<='} {number(self.high)}")
            text = " and ".join(parts)
        return text + (", or null" if self.optional else "")


FRACTION = Range(0, 1, high_open=True)
POSITIVE = Range(1)
NON_NEGATIVE = Range(0)
LENGTH = Range(1, MAX_SEQUENCE_LENGTH)

# The allowed range of every numeric field, keyed by "section.field" (checked on load;
# presets/reference.yaml documents them). Cross-field rules are in ``validate``.
RANGES: dict[str, Range] = {
    "data.context_turns": Range(0, 100),
    "data.max_pairs": Range(10, optional=True),
    "data.dev_fraction": FRACTION,
    "data.test_fraction": FRACTION,
    "data.split_seed": NON_NEGATIVE,
    "data.max_bad_fraction": FRACTION,
    "data.source_vocab_size": Range(8, 1_000_000),
    "data.target_vocab_size": Range(8, 1_000_000),
    "data.min_frequency": POSITIVE,
    "data.max_source_length": LENGTH,
    "data.max_target_length": LENGTH,
    "data.bucket_width": LENGTH,
    "data.tokenizer_sample": Range(100, 1_000_000_000),
    "data.min_shards": Range(1, 100_000),
    "data.shard_megabytes": Range(1, 100_000),
    "model.embedding_dim": Range(1, 65536),
    "model.hidden_size": Range(1, 65536),
    "model.encoder_layers": Range(1, 64),
    "model.decoder_layers": Range(1, 64),
    "model.dropout": FRACTION,
    "train.batch_size": Range(1, 1_000_000),
    "train.epochs": Range(1, 1_000_000),
    "train.learning_rate": Range(0, 10, low_open=True),
    "train.warmup_steps": Range(1, 10_000_000),
    "train.clipnorm": Range(0, 1_000_000),
    "train.label_smoothing": FRACTION,
    "train.patience": Range(1, 1_000_000),
    "train.dev_bleu_sentences": Range(0, 10_000_000),
    "train.steps_per_epoch": Range(1, 10_000_000, optional=True),
    "train.seed": Range(0, MAX_SEED),
    "train.shuffle_buffer": Range(0, 100_000_000),
    "train.keep_checkpoints": Range(0, 1000),
    "train.worker_timeout": Range(10, 86400),
    "decode.beam_size": Range(1, MAX_BEAM_SIZE),
    "decode.n_best": Range(1, MAX_BEAM_SIZE),
    "decode.length_penalty": Range(0, 10),
    "decode.max_length": LENGTH,
    "decode.min_length": Range(0, MAX_SEQUENCE_LENGTH - 1),
    "decode.temperature": Range(0, 100, low_open=True),
    "decode.top_k": Range(0, 1_000_000),
    "decode.top_p": Range(0, 1, low_open=True),
    "decode.no_repeat_ngram_size": Range(0, MAX_SEQUENCE_LENGTH),
    "decode.repetition_penalty": Range(1, 100),
    "decode.seed": Range(0, 2**63 - 1, optional=True),
    "decode.mmi_lambda": Range(0, 100, optional=True),
    "decode.mmi_gamma": Range(-100, 100),
    "decode.mmi_candidates": Range(2, MAX_BEAM_SIZE),
}


def check_ranges(config: Config) -> None:
    """Every numeric field against ``RANGES``; the error names the field and the range."""
    for key, allowed in RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value is None and allowed.optional:
            continue
        require(
            value is not None and value in allowed,
            f"{key} is {value}; allowed: {allowed}",
        )


def validate(config: Config) -> None:
    """Range and cross-field checks; each error names the field and what is allowed."""
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        require(value in allowed, f"{key} is {value!r}; allowed: {', '.join(allowed)}")
    check_ranges(config)
    data, model, train, decode = config.data, config.model, config.train, config.decode
    require(
        data.dev_fraction + data.test_fraction < 0.5,
        "data.dev_fraction + data.test_fraction must leave at least half for training",
    )
    require(
        not (data.reverse and data.context_turns > 0),
        "data.reverse with data.context_turns > 0: a backward (reply -> message) dialogue "
        "model takes no context; set data.context_turns=0",
    )
    for option in ("split_digits", "byte_fallback", "shared_vocab"):
        require(
            not getattr(data, option) or data.tokenizer == "sentencepiece",
            f"data.{option} is a SentencePiece option; data.tokenizer is {data.tokenizer!r}",
        )
    require(
        not data.byte_fallback or min(data.source_vocab_size, data.target_vocab_size) >= 512,
        "data.byte_fallback adds 256 byte pieces: data.source_vocab_size and "
        "data.target_vocab_size must be >= 512",
    )
    require(
        data.corpus != "tsv" or bool(data.path),
        "data.path must name a file when data.corpus is 'tsv'",
    )
    require(
        train.select_best_by != "bleu" or train.dev_bleu_sentences >= 1,
        "train.dev_bleu_sentences must be >= 1 when train.select_best_by is 'bleu'",
    )
    require(decode.n_best <= decode.beam_size, "decode.n_best must not exceed decode.beam_size")
    require(decode.min_length < decode.max_length, "decode.min_length must be < decode.max_length")
    require(
        decode.mmi_lambda is None or decode.method in ("beam", "sample"),
        "decode.mmi_lambda: MMI reranks an n-best list, which greedy search does not give; "
        "use method beam or sample",
    )
    require(
        not decode.copy_names or decode.method == "beam",
        "decode.copy_names puts names and numbers in the output by constrained beam search, "
        "which greedy search and sampling cannot do: use method beam (--beam N), or turn it "
        "off (--no-copy-names)",
    )
    require(
        model.input_feeding is False or model.attention != "none",
        "model.input_feeding needs an attention mechanism (model.attention is 'none')",
    )
    require(
        not model.tie_embeddings or model.embedding_dim == model.hidden_size,
        "model.tie_embeddings needs model.embedding_dim == model.hidden_size",
    )


def config_yaml(config: Config) -> str:
    """The config as the YAML text saved in every run folder."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(config_yaml(config), encoding="utf-8")


def load_run_config(path: str | Path) -> Config:
    return from_dict(read_yaml(path), origin=str(path))
