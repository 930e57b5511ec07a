"""Argument checks shared by the model's layers: a bad value fails at construction with a
message that names the argument and what is allowed, not deep inside Keras."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def check_choice(name: str, value: Any, allowed: Collection[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} is {value!r}; allowed: {', '.join(map(str, allowed))}")


def check_positive(**values: Any) -> None:
    """Every value must be a whole number >= 1."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} is {value!r}; allowed: a whole number >= 1")


def check_rate(name: str, value: Any) -> None:
    """A dropout-style rate: 0 <= value < 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"{name} is {value!r}; allowed: 0 <= {name} < 1")
