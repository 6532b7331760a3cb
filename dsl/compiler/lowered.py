"""What lowering produces: one `Case` per scenario × policy (× outline row), as plain, picklable data.

A case holds the `Program` the engine runs (nothing about the syntax reaches the engine) and the `Check`s to
evaluate on its `Result`, each with the `Loc` of the expectation it came from so that a failure points at the
`.svm` line.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from dsl.engine.program import Program
from dsl.engine.result import Observed
from dsl.engine.vocab import EventType, Observable, Pick, PolicyName
from dsl.errors import Diagnostic, Loc


def _strings(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def _checks(items: Iterable[Check]) -> tuple[Check, ...]:
    return tuple(items)


def _cases(items: Iterable[Case]) -> tuple[Case, ...]:
    return tuple(items)


def _scenarios(items: Iterable[LoweredScenario]) -> tuple[LoweredScenario, ...]:
    return tuple(items)


class Comparison(enum.Enum):
    """How an observed value is compared with the expected one."""

    EQ = "=="
    NE = "!="
    CONTAINS = "contains"  # sequence observables (tracepoints)


class Probe(enum.Enum):
    """Checks over every delivery (an engine observable reads only the first one)."""

    DELIVERED = "delivered"  # bool: some event with `Check.vector` was delivered to the guest
    RETURN_RIP = "return rip"  # int | None: the return address of the first delivery of `Check.vector`
    ERROR_CODE = "error code"  # int | None: the error code pushed with the first delivery of `Check.vector`


@attrs.frozen
class Check:
    """One comparison on the engine's result. `text` is the expectation as written, for reports."""

    loc: Loc
    text: str
    target: Observable | Probe
    comparison: Comparison
    expected: Observed
    pick: Pick | int = Pick.FOCUS
    policies: tuple[PolicyName, ...] = ()  # the `under …` policies it was written for; () = every policy
    vector: int | None = None  # the event a Probe is about
    event_type: EventType | None = None  # ... and how it must have been delivered


@attrs.frozen
class Case:
    """A scenario under one policy (and one outline row, counted from 1): what to run and what to check."""

    scenario: str
    loc: Loc
    policy: PolicyName
    row: int | None
    program: Program
    checks: tuple[Check, ...] = attrs.field(converter=_checks)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    title: str = ""  # for an outline row, the title with the row's values substituted; else the scenario's

    @property
    def display_title(self) -> str:
        return self.title or self.scenario


@attrs.frozen
class LoweredScenario:
    """A scenario with its cases, in policy order (then row order)."""

    name: str
    loc: Loc
    tags: tuple[str, ...] = attrs.field(converter=_strings)
    cases: tuple[Case, ...] = attrs.field(converter=_cases)


@attrs.frozen
class LoweredFile:
    """Every scenario of one file, in file order."""

    file: str
    scenarios: tuple[LoweredScenario, ...] = attrs.field(converter=_scenarios)
    warnings: tuple[Diagnostic, ...] = ()  # the checker's warnings (errors stop lowering)
    includes: tuple[str, ...] = attrs.field(default=(), converter=_strings)  # included files, transitively

    @property
    def cases(self) -> tuple[Case, ...]:
        return tuple(case for scenario in self.scenarios for case in scenario.cases)
