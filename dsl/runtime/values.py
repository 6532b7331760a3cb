"""Comparing and showing observed values: the same words and number formats as the scenarios use."""

from __future__ import annotations

import enum

from dsl.engine.result import Observed
from dsl.engine.vocab import Observable, Vector

#: Observables that count things: shown in decimal; every other integer is an address or an encoding (hex).
COUNT_OBSERVABLES: tuple[Observable, ...] = (
    Observable.DELIVERY_COUNT,
    Observable.DEBUG_EXITS,
    Observable.EMULATION_FAILURES,
)


def show(value: object, observable: Observable | None = None) -> str:
    """A value as a scenario would write it: `0x1001`, `#BP`, `reinject`, `true`, `none`."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Vector):
        return value.mnemonic
    if isinstance(value, enum.Enum):
        return str(value.value) if not isinstance(value.value, int) else value.name.lower()
    if isinstance(value, int):
        if observable in COUNT_OBSERVABLES or value < 0:
            return str(value)
        return hex(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(show(item) for item in value) + "]"
    return str(value)


def same(expected: object, actual: Observed) -> bool:
    """Equality without Python's `True == 1`: a boolean only equals a boolean."""
    if isinstance(expected, bool) != isinstance(actual, bool):
        return False
    if isinstance(expected, enum.Enum) and isinstance(actual, enum.Enum) and not isinstance(expected, int):
        return expected is actual
    return expected == actual


def contains(expected: object, actual: Observed) -> bool:
    """For sequence observables (tracepoints): some item equals, or contains as text, the expected value."""
    if not isinstance(actual, tuple):
        return False
    text = show(expected) if not isinstance(expected, str) else expected
    return any(item == text or text in item for item in actual)
