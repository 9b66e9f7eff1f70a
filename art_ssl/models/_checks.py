"""Argument checks shared by the model constructors."""
from __future__ import annotations


def check_positive_int(name: str, value: object) -> None:
    """Raise unless ``value`` is a positive ``int`` (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be a positive int, got {type(value).__name__}.")
    if value <= 0:
        raise ValueError(f"`{name}` must be a positive int, got {value}.")
