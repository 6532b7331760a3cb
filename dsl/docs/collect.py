"""Run the scenarios through the runtime and gather what each page shows (`collect(paths) -> Site`).

The verdicts come from `dsl.runtime.session.run_paths`, the same run `svmdsl run` reports, so the pages show the
results of the build that produced them. Titles, descriptions and source citations come from the AST; the set-up
each state table starts from comes from the lowered case the runtime ran.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import PurePosixPath

import attrs

from dsl.docs.model import CaseView, FileView, MismatchView, ScenarioView, Site, SourceBlock, Status
from dsl.docs.stories import Told, tell
from dsl.engine.program import Program
from dsl.errors import SvmError
from dsl.runtime.discover import ScenarioFile, nothing_found, scenario_files
from dsl.runtime.loader import LoadedFile, load
from dsl.runtime.runner import find_case
from dsl.runtime.session import GUEST_VISIBLE, Entry, FileError, policy_order, run_paths
from dsl.runtime.values import show
from dsl.runtime.verdict import Verdict
from dsl.syntax import ast
from dsl.syntax.parse import parse_text

HTML_SUFFIX = ".html"
MARKDOWN_SUFFIX = ".md"

_STATUS_OF: dict[Verdict, Status] = {
    Verdict.HELD: Status.HELD,
    Verdict.FAILED: Status.FAILED,
    Verdict.ERROR: Status.ERROR,
}
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
#: Longest anchor taken from a title (a diagram's file name adds the policy and row).
SLUG_LIMIT = 48


class DocsError(Exception):
    """The paths cannot be documented as asked (they hold no scenario, or two files would share one page)."""


def collect(paths: tuple[str, ...]) -> Site:
    """Run every scenario under `paths` and build the site's content. Raises `PathProblem` for a bad path."""
    files = scenario_files(paths)
    if not files:
        raise DocsError(nothing_found(paths))
    report = run_paths(paths)
    entries: dict[str, list[Entry]] = defaultdict(list)
    for entry in report.entries:
        entries[entry.result.key.file].append(entry)
    errors: dict[str, FileError] = {error.file: error for error in report.file_errors}
    views: list[FileView] = []
    seen: dict[str, str] = {}
    for file in files:
        loaded = load(file.path)
        relative = _relative(file)
        if relative in seen:
            raise DocsError(f"{seen[relative]} and {loaded.display} would both be documented as {relative}")
        seen[relative] = loaded.display
        error = errors.get(loaded.display)
        views.append(_file_view(file, loaded, relative, entries[loaded.display], error))
    views.sort(key=lambda view: (view.topic, view.relative))
    return Site(tuple(views), _policies(views), _tags(views))


def _relative(file: ScenarioFile) -> str:
    """The file's name on the site: below the folder it was found through (its topic folder first)."""
    return file.relative.as_posix()


def _file_view(
    file: ScenarioFile, loaded: LoadedFile, relative: str, entries: list[Entry], error: FileError | None
) -> FileView:
    stem = PurePosixPath(relative).with_suffix("")
    page, markdown = f"{stem}{HTML_SUFFIX}", f"{stem}{MARKDOWN_SUFFIX}"
    if error is not None or loaded.lowered is None:
        message = error.message if error is not None else "the file could not be loaded"
        return FileView(relative, file.topic, page, markdown, None, (), _unplace(message, loaded, relative))
    try:
        svm = parse_text(loaded.text, loaded.display)
    except SvmError as problem:  # the loader parsed it already; kept for safety against a changed file
        return FileView(relative, file.topic, page, markdown, None, (), _unplace(problem.render(), loaded, relative))
    lines = loaded.text.splitlines()
    starts = [*sorted(item.loc.line for item in svm.items), len(lines) + 1]
    anchors: dict[str, int] = {}
    scenarios = []
    for item in svm.scenarios:
        anchor = _unique(_slug(item.title), anchors)
        mine = [e for e in entries if e.result.key.scenario == item.title]
        told = [_told(e, loaded, relative, anchor) for e in mine]
        cases, stories = tell(item.title, relative, told)
        rows = tuple(dict.fromkeys(c.row for c in cases)) or (None,)
        scenarios.append(
            ScenarioView(
                title=item.title,
                anchor=anchor,
                line=item.loc.line,
                tags=item.tags,
                sources=item.sources,
                description=_dedent(item.description or ""),
                source=_block(lines, item.loc.line, starts),
                cases=cases,
                rows=rows,
                stories=stories,
                row_titles=tuple(s.title for s in item.scenarios) if isinstance(item, ast.ScenarioOutline) else (),
            )
        )
    background = next((b for b in svm.backgrounds), None)
    block = _block(lines, background.loc.line, starts) if background is not None else None
    return FileView(relative, file.topic, page, markdown, block, tuple(scenarios))


def _told(entry: Entry, loaded: LoadedFile, relative: str, anchor: str) -> Told:
    """A case's view, with the engine's result and the program it ran (for its story)."""
    result = entry.result
    key = result.key
    view = CaseView(
        policy=key.policy,
        row=key.row,
        status=_STATUS_OF[result.verdict],
        anchor=f"{anchor}--{_slug(key.policy)}" + (f"--row-{key.row}" if key.row is not None else ""),
        outcome=result.outcome,
        confirmed=result.confirmed,
        checks=result.checks,
        mismatches=tuple(MismatchView(m.line, m.expectation, m.expected, m.actual) for m in result.mismatches),
        error=_unplace(result.error, loaded, relative) if result.error is not None else None,
        diverges=entry.diverges,
    )
    engine = result.result
    if engine is None:
        return Told(view, None, None)
    view = attrs.evolve(
        view, evidence=engine.evidence.value, divergence=explain_divergence(entry) if entry.diverges else ""
    )
    return Told(view, engine, _program(loaded, key.scenario, key.policy, key.row))


def explain_divergence(entry: Entry) -> str:
    """One line: each guest-visible observable of `entry` that differs from the architectural run's, with the
    architectural value ("" when there is nothing to compare with)."""
    if entry.visible is None or entry.architectural is None:
        return ""
    parts = []
    for observable, mine, ideal in zip(GUEST_VISIBLE, entry.visible, entry.architectural, strict=True):
        if mine != ideal or type(mine) is not type(ideal):
            parts.append(f"{observable.value} {show(mine, observable)} (architectural: {show(ideal, observable)})")
    return "; ".join(parts)


def _program(loaded: LoadedFile, scenario: str, policy: str, row: int | None) -> Program | None:
    found = find_case(loaded, scenario, policy, row)
    return None if isinstance(found, str) else found.program


def _block(lines: list[str], first: int, starts: list[int]) -> SourceBlock:
    """The lines of the item starting at `first`, up to the next item, without trailing blank lines."""
    end = next(start for start in starts if start > first) - 1
    chunk = lines[first - 1 : end]
    while chunk and not chunk[-1].strip():
        chunk.pop()
    return SourceBlock(first, "\n".join(chunk) + "\n")


def _dedent(text: str) -> str:
    """A docstring's paragraphs without the scenario's indentation."""
    lines = [line.strip() for line in text.strip("\n").splitlines()]
    return "\n".join(lines).strip()


def _slug(text: str) -> str:
    """Lower-case words joined by `-`, cut at a word boundary: anchors and diagram file names stay short."""
    slug = _NOT_SLUG.sub("-", text.lower()).strip("-") or "scenario"
    if len(slug) > SLUG_LIMIT:
        slug = slug[:SLUG_LIMIT].rsplit("-", 1)[0]
    return slug


def _unique(slug: str, taken: dict[str, int]) -> str:
    count = taken.get(slug, 0) + 1
    taken[slug] = count
    return slug if count == 1 else f"{slug}-{count}"


def _unplace(message: str, loaded: LoadedFile, relative: str) -> str:
    """A diagnostic naming the file as the site does (the runtime names it from the working directory)."""
    return message.replace(loaded.display, relative)


def _policies(views: list[FileView]) -> tuple[str, ...]:
    found = {case.policy for view in views for scenario in view.scenarios for case in scenario.cases}
    return tuple(sorted(found, key=policy_order))


def _tags(views: list[FileView]) -> tuple[str, ...]:
    return tuple(sorted({tag for view in views for scenario in view.scenarios for tag in scenario.tags}))


__all__ = ["DocsError", "collect", "explain_divergence"]
