"""Tell each distinct engine trace once: cases of a scenario (row) whose runs traced the same steps share one
sequence diagram and one state table ("under kvm-6.0, kvm-6.2, kvm-6.6"), so a page shows where policies differ
instead of repeating identical stories — and the site stays small.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import attrs

from dsl.docs.model import CaseView, Story
from dsl.docs.sequence import build_diagram
from dsl.docs.states import state_rows
from dsl.engine.program import L1Vmrun, Program
from dsl.engine.result import Result, TraceEntry

SVG_SUFFIX = ".svg"


@attrs.frozen
class Told:
    """A case with what its run produced: the engine's result and the program it ran (None when it did not run)."""

    case: CaseView
    result: Result | None
    program: Program | None


def tell(scenario: str, relative: str, told: list[Told]) -> tuple[tuple[CaseView, ...], tuple[Story, ...]]:
    """The cases, each pointing at its story, and the stories in case order (row first, then policy)."""
    groups: dict[tuple[int | None, tuple[TraceEntry, ...]], list[Told]] = {}
    for item in told:
        if item.result is not None and item.program is not None:
            groups.setdefault((item.case.row, item.result.trace), []).append(item)
    stem = PurePosixPath(relative).with_suffix("")
    stories: list[Story] = []
    story_of: dict[str, str] = {}
    for (row, trace), members in groups.items():  # insertion order: the order of each group's first case
        first = members[0]
        assert first.program is not None  # grouped above only with a program
        policies = tuple(member.case.policy for member in members)
        anchor = f"{first.case.anchor}--story"
        title = f"{scenario} under {', '.join(policies)}: sequence of the engine trace"
        stories.append(
            Story(
                anchor=anchor,
                row=row,
                policies=policies,
                case_anchors=tuple(member.case.anchor for member in members),
                outcome=first.case.outcome,
                diagram=build_diagram(trace, nested=_nested(first.program), title=title),
                states=state_rows(first.program.setup, trace),
                svg_file=f"{stem}/{first.case.anchor}{SVG_SUFFIX}",
            )
        )
        story_of.update((member.case.anchor, anchor) for member in members)
    cases = tuple(attrs.evolve(item.case, story=story_of.get(item.case.anchor, "")) for item in told)
    return cases, tuple(stories)


def _nested(program: Program) -> bool:
    """An L1 hypervisor runs the guest: set up as nested, or L1 executes VMRUN in the steps."""
    return program.setup.nesting is not None or any(isinstance(step, L1Vmrun) for step in program.steps)
