"""The index's policy × scenario matrix, grouped by topic, and the list of divergences from `architectural`."""

from __future__ import annotations

import attrs

from dsl.docs.model import CaseView, FileView, ScenarioView, Site, Status


@attrs.frozen
class MatrixCell:
    """One policy's column in a row: the verdict, whether the guest sees something else than architecturally."""

    policy: str
    status: Status
    diverges: bool
    explanation: str  # the divergence in one line, or the outcome
    href: str  # the case on its scenario page ("" when not applicable)

    @property
    def css(self) -> str:
        classes = [f"status-{self.status.name.lower().replace('_', '-')}"]
        if self.diverges:
            classes.append("diverges")
        return " ".join(classes)


@attrs.frozen
class MatrixRow:
    """A scenario (or one row of an outline) across every policy of the site."""

    label: str
    href: str
    row: int | None
    tags: tuple[str, ...]
    policies: tuple[str, ...]  # the policies it runs under
    cells: tuple[MatrixCell, ...]

    @property
    def diverges(self) -> bool:
        return any(cell.diverges for cell in self.cells)


@attrs.frozen
class TopicGroup:
    """The rows of one topic (folder), and its files that could not run at all."""

    topic: str
    rows: tuple[MatrixRow, ...]
    broken: tuple[FileView, ...]


@attrs.frozen
class Divergence:
    """A case whose guest-visible result differs from `architectural`, explained in one line."""

    title: str
    policy: str
    href: str
    explanation: str
    status: Status


def topic_groups(site: Site) -> tuple[TopicGroup, ...]:
    """Matrix rows by topic, topics sorted, scenarios in file order."""
    groups = []
    for topic in site.topics:
        files = site.files_of(topic)
        rows = tuple(
            _row(site, file, scenario, row) for file in files for scenario in file.scenarios for row in scenario.rows
        )
        groups.append(TopicGroup(topic, rows, tuple(f for f in files if f.error is not None)))
    return tuple(groups)


def divergences(site: Site) -> tuple[Divergence, ...]:
    """Every diverging case, in matrix order."""
    found = []
    for file in site.files:
        for scenario in file.scenarios:
            for case in scenario.cases:
                if case.diverges:
                    title = scenario.title_of(case.row)
                    href = f"{file.page}#{case.anchor}"
                    found.append(Divergence(title, case.policy, href, case.divergence, case.status))
    return tuple(found)


def _row(site: Site, file: FileView, scenario: ScenarioView, row: int | None) -> MatrixRow:
    cells = tuple(_cell(file, scenario.case(policy, row), policy) for policy in site.policies)
    present = tuple(cell.policy for cell in cells if cell.status is not Status.NOT_APPLICABLE)
    return MatrixRow(scenario.title_of(row), f"{file.page}#{scenario.anchor}", row, scenario.tags, present, cells)


def _cell(file: FileView, case: CaseView | None, policy: str) -> MatrixCell:
    if case is None:
        return MatrixCell(policy, Status.NOT_APPLICABLE, False, "does not run under this policy", "")
    if case.diverges:
        explanation = case.divergence or "differs from architectural"
    elif case.status is Status.ERROR:
        explanation = "the case could not run"
    else:
        explanation = f"outcome {case.outcome}" if case.outcome else ""
    return MatrixCell(policy, case.status, bool(case.diverges), explanation, f"{file.page}#{case.anchor}")
