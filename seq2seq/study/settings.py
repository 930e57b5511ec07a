"""What a study compares and at which budget; saved as ``study.json`` so a resumed study
keeps comparing like with like."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from seq2seq.config import Config, load_config
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
    """The long-dependency probe (``seq2seq.study.probe``): the same small model for every
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
