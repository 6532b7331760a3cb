"""What the site shows, as plain frozen values: files, their scenarios, each case's verdict, trace and states.

Built by `dsl.docs.collect` from one run of the runtime; rendered by `dsl.docs.render`. Paths here are relative
to the documented folder (posix), never absolute, so the output does not depend on where it was built.
"""

from __future__ import annotations

import enum

import attrs

from dsl.docs.sequence import Diagram
from dsl.docs.states import StateRow


class Status(enum.Enum):
    """A matrix cell: the verdict of the case, or that the scenario does not run under the policy."""

    HELD = "held"
    FAILED = "failed"
    ERROR = "error"
    NOT_APPLICABLE = "n/a"


@attrs.frozen
class MismatchView:
    """An expectation that did not hold in this run."""

    line: int
    expectation: str
    expected: str
    actual: str


@attrs.frozen
class CaseView:
    """A scenario under one policy (and outline row): the verdict of this run and what the engine did."""

    policy: str
    row: int | None
    status: Status
    anchor: str
    outcome: str | None = None
    evidence: str | None = None
    confirmed: bool | None = None
    checks: int = 0
    mismatches: tuple[MismatchView, ...] = ()
    error: str | None = None
    diverges: bool | None = None  # None: no architectural run to compare with (or this is it)
    divergence: str = ""  # one line: what the guest sees differently from architectural
    story: str = ""  # the anchor of the story (diagram and states) this case's trace is told in; "" when none

    @property
    def label(self) -> str:
        return self.policy if self.row is None else f"{self.policy}, row {self.row}"


@attrs.frozen
class Story:
    """One engine trace, told once for every case of a scenario (row) whose run traced exactly the same steps."""

    anchor: str
    row: int | None
    policies: tuple[str, ...]
    case_anchors: tuple[str, ...]  # the anchors of the cases it tells (links from the matrix land here)
    outcome: str | None
    diagram: Diagram
    states: tuple[StateRow, ...]
    svg_file: str  # the diagram as a file, for the Markdown page (relative to the site root)

    @property
    def label(self) -> str:
        policies = ", ".join(self.policies)
        return policies if self.row is None else f"{policies} (row {self.row})"


@attrs.frozen
class SourceBlock:
    """A slice of the `.svm` file: its first line number and text."""

    first_line: int
    text: str


@attrs.frozen
class ScenarioView:
    """One scenario (or outline) of a file with its cases in policy order, then row order."""

    title: str
    anchor: str
    line: int
    tags: tuple[str, ...]
    sources: tuple[str, ...]
    description: str
    source: SourceBlock
    cases: tuple[CaseView, ...]
    rows: tuple[int | None, ...]  # (None,) for a plain scenario
    stories: tuple[Story, ...] = ()
    row_titles: tuple[str, ...] = ()  # an outline's title with each row's values substituted, in row order

    def title_of(self, row: int | None) -> str:
        """The title a row reads as: `INT3 cut short under nrips=0 (row 2)`; the title itself for a scenario."""
        if row is None:
            return self.title
        substituted = self.row_titles[row - 1] if 0 < row <= len(self.row_titles) else self.title
        return f"{substituted} (row {row})"

    def case(self, policy: str, row: int | None) -> CaseView | None:
        """The case under `policy` (and `row`), if the scenario runs there."""
        return next((c for c in self.cases if c.policy == policy and c.row == row), None)

    @property
    def policies(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for case in self.cases:
            seen.setdefault(case.policy)
        return tuple(seen)


@attrs.frozen
class FileView:
    """One `.svm` file: one page of the site."""

    relative: str  # e.g. `seed/int3.svm`
    topic: str
    page: str  # the HTML page, e.g. `seed/int3.html`
    markdown: str  # the Markdown page, e.g. `seed/int3.md`
    background: SourceBlock | None
    scenarios: tuple[ScenarioView, ...]
    error: str | None = None  # the file could not be parsed, checked or lowered: no case ran

    @property
    def root(self) -> str:
        """The relative link from this page back to the site root (`../` per folder level)."""
        return "../" * self.page.count("/")


@attrs.frozen
class Site:
    """Everything one documentation build shows."""

    files: tuple[FileView, ...]
    policies: tuple[str, ...]  # every policy some case ran under, vocabulary order
    tags: tuple[str, ...]  # every tag, sorted

    @property
    def topics(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for file in self.files:
            seen.setdefault(file.topic)
        return tuple(sorted(seen))

    def files_of(self, topic: str) -> tuple[FileView, ...]:
        return tuple(f for f in self.files if f.topic == topic)

    def count(self, status: Status) -> int:
        return sum(1 for f in self.files for s in f.scenarios for c in s.cases if c.status is status)

    @property
    def divergences(self) -> int:
        return sum(1 for f in self.files for s in f.scenarios for c in s.cases if c.diverges)
