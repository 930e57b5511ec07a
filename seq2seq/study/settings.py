"""What a study compares and at which budget; saved as ``study.json`` so a resumed study
keeps comparing like with like.

Study variants: a name says the whole architecture, e.g. ``lstm-bi-2layer-residual``.

Grammar: ``CELL-DIRECTION[-OPTION...]`` with CELL ``rnn|gru|lstm``, DIRECTION ``uni|bi``
(the encoder) and options ``Nlayer`` (N stacked encoder layers, N >= 2), ``residual``
(needs 2+ layers), ``noclip`` (gradient clipping off) and ``noattn`` or ``luong`` (instead
of additive attention). Everything else comes from the preset, so each variant differs from
its neighbours in the grid by exactly what its name says.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from seq2seq.config import Config, ConfigError, load_config
from seq2seq.runs import write_text_atomically

STUDY_FILE = "study.json"
STUDY_FORMAT = 1
# Applied before the user's overrides: float32 everywhere (the measurements compare cells,
# not precisions) and an uncompiled greedy search (each variant is a new model, and XLA
# would compile every one of them for a few hundred dev sentences).
STUDY_DEFAULTS = ("train.mixed_precision='off'", "decode.jit_compile=false")
MAX_EVALS = 1000


class StudyError(ValueError):
    """A study cannot run as asked (bad budget, an output holding another study, ...)."""


# Probe token ids: PAD, UNK, START, END, then the payload symbols, then the distractors.
FIRST_SYMBOL = 4
PROBE_TASKS = ("copy", "reverse")
MAX_PROBE_LENGTH = 1000


class ProbeError(StudyError):
    """Probe settings that cannot work (names the setting)."""


@dataclass(frozen=True)
class ProbeSettings:
    """The long-dependency probe (``seq2seq.study.run``): the same small model for every
    cell, trained for ``steps`` at each length."""

    task: str = "copy"
    lengths: tuple[int, ...] = (10, 20, 40, 80)
    steps: int = 600
    payload: int = 3
    symbols: int = 8
    distractors: int = 8
    batch_size: int = 64
    embedding_dim: int = 32
    hidden_size: int = 64
    learning_rate: float = 0.003
    seed: int = 42

    def check(self) -> None:
        if self.task not in PROBE_TASKS:
            raise ProbeError(f"probe task {self.task!r}; allowed: {', '.join(PROBE_TASKS)}")
        if not self.lengths:
            raise ProbeError("the probe needs at least one length")
        for length in self.lengths:
            if not self.payload < length <= MAX_PROBE_LENGTH:
                raise ProbeError(
                    f"probe length {length}; allowed: {self.payload + 1}..{MAX_PROBE_LENGTH} "
                    f"(longer than the {self.payload}-symbol payload)"
                )
        if self.steps < 1:
            raise ProbeError(f"probe steps {self.steps}; allowed: >= 1 (0 skips the probe)")

    @property
    def vocab_size(self) -> int:
        return FIRST_SYMBOL + self.symbols + self.distractors

    def to_dict(self) -> dict:
        return {**asdict(self), "lengths": list(self.lengths)}


@dataclass(frozen=True)
class Budget:
    """Every variant gets the same number of steps, or the same minutes of training.

    Time budgets start after the first ``WARMUP_STEPS`` steps (tracing), so that a model
    that takes longer to trace does not lose training time for it.
    """

    steps: int | None = None
    minutes: float | None = None
    evals: int = 10

    def check(self) -> None:
        if (self.steps is None) == (self.minutes is None):
            raise StudyError("give exactly one budget: --steps N or --budget-minutes M")
        if not 1 <= self.evals <= MAX_EVALS:
            raise StudyError(f"--evals is {self.evals}; allowed: 1..{MAX_EVALS}")
        if self.steps is not None and self.steps < self.evals:
            raise StudyError(
                f"--steps {self.steps} is too small: each of the {self.evals} dev evaluations "
                f"needs at least one step (use --steps >= {self.evals} or fewer --evals)"
            )
        if self.minutes is not None and not (0 < self.minutes < math.inf):
            raise StudyError(f"--budget-minutes is {self.minutes}; allowed: a number > 0")

    @property
    def seconds(self) -> float | None:
        return None if self.minutes is None else self.minutes * 60.0

    def describe(self) -> str:
        if self.steps is not None:
            return f"{self.steps} training steps per variant"
        return f"{self.minutes:g} minutes of training per variant"

    def done(self, steps: int, timed_seconds: float) -> bool:
        if self.steps is not None:
            return steps >= self.steps
        return timed_seconds >= self.seconds

    def evaluation_due(self, done_evals: int, steps: int, timed_seconds: float) -> bool:
        """Dev evaluation ``done_evals + 1`` of ``evals`` is due (evenly spread)."""
        if done_evals >= self.evals:
            return False
        share = (done_evals + 1) / self.evals
        if self.steps is not None:
            return steps >= round(share * self.steps)
        return timed_seconds >= share * self.seconds


@dataclass(frozen=True)
class StudySettings:
    preset: str | None
    config_file: str | None
    overrides: tuple[str, ...]
    variants: tuple[str, ...]
    budget: Budget
    probe: ProbeSettings | None  # None: no probe
    target_loss: float | None = None  # report only: None picks the median final dev loss
    format: int = STUDY_FORMAT

    def config(self) -> Config:
        return load_config(self.preset, self.config_file, [*STUDY_DEFAULTS, *self.overrides])

    def to_dict(self) -> dict:
        data = asdict(self)
        data["overrides"] = list(self.overrides)
        data["variants"] = list(self.variants)
        data["probe"] = self.probe.to_dict() if self.probe else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> StudySettings:
        probe = data.get("probe")
        return cls(
            preset=data.get("preset"),
            config_file=data.get("config_file"),
            overrides=tuple(data.get("overrides", ())),
            variants=tuple(data.get("variants", ())),
            budget=Budget(**data["budget"]),
            probe=ProbeSettings(**{**probe, "lengths": tuple(probe["lengths"])}) if probe else None,
            target_loss=data.get("target_loss"),
            format=data.get("format", STUDY_FORMAT),
        )

    def differences(self, saved: StudySettings) -> list[str]:
        """Settings that would make this run incomparable with ``saved`` (variants and the
        probe may be added; the data, model size and budget must stay)."""
        names = []
        for key in ("preset", "config_file", "overrides", "budget", "format"):
            if getattr(self, key) != getattr(saved, key):
                names.append(key)
        if self.probe and saved.probe and self.probe != saved.probe:
            names.append("probe")
        return names


def save_settings(folder: Path, settings: StudySettings) -> None:
    text = json.dumps(settings.to_dict(), indent=2, ensure_ascii=False) + "\n"
    write_text_atomically(folder / STUDY_FILE, text)


def load_settings(folder: Path) -> StudySettings:
    path = folder / STUDY_FILE
    try:
        return StudySettings.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise StudyError(f"{folder} holds no study ({STUDY_FILE} is missing)") from None
    except (ValueError, KeyError, TypeError) as error:
        raise StudyError(f"{path} is not a readable study file: {error}") from None


CELLS = ("rnn", "gru", "lstm")
DIRECTIONS = {"uni": False, "bi": True}
DEFAULT_CLIPNORM = 1.0

DEFAULT_GRID = (
    "rnn-uni",
    "rnn-bi",
    "gru-uni",
    "gru-bi",
    "lstm-uni",
    "lstm-bi",
    "gru-bi-2layer",
    "gru-bi-2layer-residual",
    "rnn-bi-noclip",
    "gru-bi-noclip",
    "gru-bi-noattn",
)

GRAMMAR = (
    "CELL-DIRECTION[-OPTION...]: CELL rnn|gru|lstm, DIRECTION uni|bi, options Nlayer (N >= 2), "
    "residual (needs 2+ layers), noclip, noattn or luong; e.g. lstm-bi-2layer-residual"
)


class VariantError(ValueError):
    """A variant name that does not follow the grammar."""


@dataclass(frozen=True)
class Variant:
    name: str
    cell: str
    bidirectional: bool
    layers: int = 1
    residual: bool = False
    clip: bool = True
    attention: str = "bahdanau"

    def describe(self) -> dict:
        return {
            "cell": self.cell,
            "encoder": "bidirectional" if self.bidirectional else "unidirectional",
            "layers": self.layers,
            "residual": self.residual,
            "clipping": self.clip,
            "attention": self.attention,
        }

    def apply(self, config: Config) -> Config:
        """The preset's config with this variant's architecture and clipping."""
        model = dataclasses.replace(
            config.model,
            cell=self.cell,
            bidirectional=self.bidirectional,
            encoder_layers=self.layers,
            residual=self.residual,
            attention=self.attention,
            input_feeding=config.model.input_feeding and self.attention != "none",
        )
        clipnorm = (config.train.clipnorm or DEFAULT_CLIPNORM) if self.clip else 0.0
        train = dataclasses.replace(config.train, clipnorm=clipnorm)
        return config.replace(name=f"{config.name}-{self.name}", model=model, train=train)


def parse_variant(name: str) -> Variant:
    """``lstm-bi-2layer-residual`` -> Variant; a bad name raises VariantError with the grammar."""
    parts = name.strip().lower().split("-")

    def fail(why: str) -> VariantError:
        return VariantError(f"bad variant name {name!r}: {why}. Names are {GRAMMAR}")

    if len(parts) < 2 or parts[0] not in CELLS:
        raise fail(f"it must start with a cell ({', '.join(CELLS)})")
    if parts[1] not in DIRECTIONS:
        raise fail("the second part must be the encoder direction (uni or bi)")
    settings: dict = {}
    for option in parts[2:]:
        layers = re.fullmatch(r"(\d+)layers?", option)
        key = "layers" if layers else option
        if key in settings or (key in ("noattn", "luong") and {"noattn", "luong"} & set(settings)):
            raise fail(f"{option!r} conflicts with an earlier option")
        if layers:
            count = int(layers.group(1))
            if count < 2:
                raise fail("a layer count must be 2 or more (1 layer is the default)")
            settings["layers"] = count
        elif option in ("residual", "noclip", "noattn", "luong"):
            settings[option] = True
        else:
            raise fail(f"unknown option {option!r}")
    layers = settings.get("layers", 1)
    if settings.get("residual") and layers < 2:
        raise fail("residual connections join stacked layers: add e.g. -2layer")
    attention = "none" if settings.get("noattn") else "luong" if settings.get("luong") else None
    return Variant(
        name=canonical_name(parts[0], parts[1], layers, settings),
        cell=parts[0],
        bidirectional=DIRECTIONS[parts[1]],
        layers=layers,
        residual=bool(settings.get("residual")),
        clip=not settings.get("noclip"),
        attention=attention or "bahdanau",
    )


def canonical_name(cell: str, direction: str, layers: int, options: dict) -> str:
    """Options in one fixed order, so two spellings of a variant are one variant."""
    parts = [cell, direction] + ([f"{layers}layer"] if layers > 1 else [])
    parts += [o for o in ("residual", "noclip", "noattn", "luong") if options.get(o)]
    return "-".join(parts)


def parse_variants(names: list[str]) -> list[Variant]:
    """Parsed and de-duplicated (by canonical name), in the order given."""
    variants: dict[str, Variant] = {}
    for name in names:
        if name.strip():
            variant = parse_variant(name)
            variants.setdefault(variant.name, variant)
    if not variants:
        raise VariantError(f"no variant named; names are {GRAMMAR}")
    return list(variants.values())


def check_config(variant: Variant, config: Config) -> None:
    """The variant applied to the preset must be a valid config (e.g. tied embeddings)."""
    from seq2seq.config import validate

    try:
        validate(variant.apply(config))
    except ConfigError as error:
        raise VariantError(f"variant {variant.name!r} does not fit the preset: {error}") from None
