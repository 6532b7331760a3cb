"""What running one case produces: a verdict, and for a failure everything needed to understand it.

Plain, picklable values (they cross process boundaries under pytest-xdist and become JSON reports). The engine's
full `Result` rides along for the documentation and the explorer but is left out of equality.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from dsl.engine.result import Result, TraceEntry
from dsl.runtime.values import show


def _strings(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def _optional_strings(items: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if items is None else tuple(items)


def render_trace(trace: tuple[TraceEntry, ...]) -> tuple[str, ...]:
    """One line per trace entry: `actor action: message [rule] (field old → new, …)`."""
    lines = []
    for number, entry in enumerate(trace, start=1):
        changes = ", ".join(f"{c.name} {show(c.old)} → {show(c.new)}" for c in entry.changes)
        rule = f" [{entry.rule}]" if entry.rule else ""
        tail = f" ({changes})" if changes else ""
        lines.append(f"{number:>3}. {entry.actor.value} {entry.action.value}: {entry.message}{rule}{tail}")
    return tuple(lines)


def _mismatches(items: Iterable[Mismatch]) -> tuple[Mismatch, ...]:
    return tuple(items)


class Verdict(enum.Enum):
    """held: every expectation held; failed: at least one did not; error: the case could not be run."""

    HELD = "held"
    FAILED = "failed"
    ERROR = "error"


@attrs.frozen
class CaseKey:
    """Names one case: a scenario of a file under one policy (and one outline row, counted from 1)."""

    file: str
    scenario: str
    policy: str
    row: int | None = None

    @property
    def label(self) -> str:
        """`scenario [policy]` or `scenario [policy, row 2]`: how reports name the case."""
        where = self.policy if self.row is None else f"{self.policy}, row {self.row}"
        return f"{self.scenario} [{where}]"


@attrs.frozen
class Mismatch:
    """One expectation that did not hold, with the `.svm` excerpt (line and caret) it was written at."""

    file: str
    line: int
    column: int
    expectation: str
    expected: str
    actual: str
    excerpt: str

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@attrs.frozen
class CaseResult:
    """The verdict of one case, what was observed, and the trace that led there."""

    key: CaseKey
    line: int
    verdict: Verdict
    tags: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    checks: int = 0
    mismatches: tuple[Mismatch, ...] = attrs.field(default=(), converter=_mismatches)
    error: str | None = None
    outcome: str | None = None
    confirmed: bool | None = None
    #: The trace as lines, when given; None: rendered from `result` when first asked for (held cases never are).
    rendered_trace: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_strings, alias="trace")
    title: str = ""  # an outline row's title with its values substituted ("" when it is the scenario's)
    result: Result | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def display_title(self) -> str:
        return self.title or self.key.scenario

    @property
    def trace(self) -> tuple[str, ...]:
        """One line per engine trace entry (see `render_trace`)."""
        if self.rendered_trace is not None:
            return self.rendered_trace
        return render_trace(self.result.trace) if self.result is not None else ()

    @property
    def held(self) -> bool:
        return self.verdict is Verdict.HELD

    def explain(self) -> str:
        """The failure (or error) as text: what the CLI and both pytest paths print. Empty for a held case."""
        if self.verdict is Verdict.HELD:
            return ""
        label = self.key.label if not self.title else f"{self.title} [{self.key.label.rpartition(' [')[2]}"
        if self.verdict is Verdict.ERROR:
            return f"{self.key.file}:{self.line}: {label}: error\n{self.error or ''}".rstrip() + "\n"
        parts = [f"{self.key.file}:{self.line}: {label}: {len(self.mismatches)} expectation(s) failed"]
        for mismatch in self.mismatches:
            parts.append("")
            parts.append(f"{mismatch.location}: expectation failed: {mismatch.expectation}")
            parts.append(mismatch.excerpt.rstrip("\n"))
            parts.append(f"  expected: {mismatch.expected}")
            parts.append(f"  actual:   {mismatch.actual}")
        if self.outcome is not None:
            parts.append("")
            confirmed = "" if self.confirmed in (True, None) else " (predicted, unconfirmed)"
            parts.append(f"outcome: {self.outcome}{confirmed}")
        if self.trace:
            parts.append("")
            parts.append("trace:")
            parts.extend(f"  {line}" for line in self.trace)
        return "\n".join(parts) + "\n"
