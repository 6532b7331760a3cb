"""Scenario outlines: substitute each examples row into the template text and parse it as a scenario.

Substitution is textual (as in Gherkin), so a placeholder may stand for any part of a sentence: a number,
a policy, a whole instruction; the title, citations and description are substituted too. Each substituted line
keeps its line number and indentation, and columns after a substitution are mapped back, so a problem in one row
is reported at the template line that caused it, with the row named in a hint.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import attrs

from dsl.errors import Diagnostic, Loc, make_diagnostic
from dsl.syntax import ast
from dsl.syntax.source import BlockError, parse_source

PLACEHOLDER = re.compile(r"<([A-Za-z_][A-Za-z0-9_\-]*)>")


@attrs.frozen
class _Substitution:
    """One placeholder replaced in one line: where it was, how long it was, how long its value is."""

    column: int  # 0-based, in the template line
    width: int
    value_width: int


def placeholders(text: str) -> tuple[tuple[str, int], ...]:
    """The placeholder names in `text` with their 0-based columns."""
    return tuple((m.group(1), m.start()) for m in PLACEHOLDER.finditer(text))


def substitute(text: str, values: dict[str, str]) -> tuple[str, tuple[_Substitution, ...]]:
    """`text` with every known `<name>` replaced by its value; unknown placeholders are left as they are."""
    pieces: list[str] = []
    substitutions: list[_Substitution] = []
    last = 0
    for match in PLACEHOLDER.finditer(text):
        if match.group(1) not in values:
            continue
        value = values[match.group(1)]
        pieces.append(text[last : match.start()])
        pieces.append(value)
        substitutions.append(_Substitution(match.start(), match.end() - match.start(), len(value)))
        last = match.end()
    pieces.append(text[last:])
    return "".join(pieces), tuple(substitutions)


def _map_column(column: int, substitutions: tuple[_Substitution, ...]) -> int:
    """A 1-based column in a substituted line → the column in the template line."""
    position = column - 1
    shift = 0
    for sub in substitutions:
        start = sub.column + shift
        if position < start:
            break
        if position < start + sub.value_width:
            return sub.column + 1  # inside a substituted value: point at its placeholder
        shift += sub.value_width - sub.width
    return position - shift + 1


def expand_outline(
    outline: ast.ScenarioOutline, text: str, filename: str
) -> tuple[tuple[ast.Scenario, ...], list[Diagnostic]]:
    """One scenario per examples row, and the problems found (placeholders without a column, bad rows)."""
    diagnostics: list[Diagnostic] = []
    columns = outline.examples.columns
    for line in outline.template:
        for name, column in placeholders(line.text):
            if name not in columns:
                loc = Loc(filename, line.loc.line, line.loc.column + column)
                diagnostics.append(
                    make_diagnostic(
                        text,
                        loc,
                        f"placeholder <{name}> has no column in the examples table",
                        expected="one of the columns: " + ", ".join(columns) if columns else "a column for it",
                    )
                )
    if diagnostics:
        return (), diagnostics
    scenarios: list[ast.Scenario] = []
    seen: set[tuple[Loc, str]] = set()
    cache: _LineCache = {}
    for row in outline.examples.rows:
        if len(row.cells) != len(columns):
            diagnostics.append(
                make_diagnostic(
                    text,
                    row.loc,
                    f"this examples row has {len(row.cells)} cells, the header has {len(columns)}",
                    expected=f"one cell per column: {', '.join(columns)}",
                )
            )
            continue
        values = dict(zip(columns, row.cells, strict=True))
        try:
            scenarios.append(_expand_row(outline, row, values, filename, cache))
        except _RowError as problem:
            key = (problem.loc, problem.diagnostic.message)
            if key not in seen:
                seen.add(key)
                diagnostics.append(
                    make_diagnostic(
                        text,
                        problem.loc,
                        problem.diagnostic.message,
                        expected=problem.diagnostic.expected,
                        hint=f"with the examples row at line {row.loc.line}: "
                        + ", ".join(f"<{k}> = {v}" for k, v in values.items()),
                    )
                )
    return tuple(scenarios), diagnostics


class _RowError(Exception):
    def __init__(self, loc: Loc, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.loc = loc
        self.diagnostic = diagnostic


#: Parsed template lines, by (line number, substituted text): a line without placeholders is parsed once per
#: outline, not once per row.
_LineCache = dict[tuple[int, str], tuple[ast.Statement, ...]]


@attrs.frozen
class _RowLine:
    """One template line with a row's values substituted, indented as in the template."""

    number: int
    text: str
    substitutions: tuple[_Substitution, ...]


def _expand_row(
    outline: ast.ScenarioOutline, row: ast.ExampleRow, values: dict[str, str], filename: str, cache: _LineCache
) -> ast.Scenario:
    lines: list[_RowLine] = []
    for template in outline.template:
        substituted, subs = substitute(template.text, values)
        indent = template.loc.column - 1
        shifted = tuple(attrs.evolve(sub, column=sub.column + indent) for sub in subs)
        lines.append(_RowLine(template.loc.line, " " * indent + substituted, shifted))
    missing = [line for line in lines if (line.number, line.text) not in cache]
    if missing:
        cache.update(_parse_lines(missing, filename))
    statements = [statement for line in lines for statement in cache[(line.number, line.text)]]
    title, _ = substitute(outline.title, values)
    sources = tuple(substitute(source, values)[0] for source in outline.sources)
    description = substitute(outline.description, values)[0] if outline.description is not None else None
    return ast.Scenario(title, outline.tags, sources, description, tuple(statements), row, loc=outline.loc)


def _parse_lines(lines: list[_RowLine], filename: str) -> _LineCache:
    """Substituted template lines, parsed together in place (one parser call per row, not per line): a bare
    scenario header above the first keeps every line at its number and indentation, so only the columns after
    a substitution need mapping back to the template."""
    pieces = ["\n" * (lines[0].number - 2), 'scenario "":\n']
    at = lines[0].number
    for line in lines:
        pieces.append("\n" * (line.number - at))
        pieces.append(line.text + "\n")
        at = line.number + 1
    by_number = {line.number: line for line in lines}
    try:
        parsed = parse_source("".join(pieces), filename)
    except BlockError as error:
        loc = error.diagnostic.loc
        failing = by_number.get(loc.line)
        column = _map_column(loc.column, failing.substitutions) if failing is not None else loc.column
        raise _RowError(Loc(filename, loc.line, column), error.diagnostic) from None
    scenario = parsed.items[0]
    assert isinstance(scenario, ast.Scenario)
    found: dict[int, list[ast.Statement]] = {line.number: [] for line in lines}
    for statement in scenario.statements:
        found[statement.loc.line].append(statement)
    return {(n, by_number[n].text): _relocated(tuple(st), by_number[n].substitutions) for n, st in found.items()}


def _relocated(
    statements: tuple[ast.Statement, ...], substitutions: tuple[_Substitution, ...]
) -> tuple[ast.Statement, ...]:
    """`statements` of one line with their columns moved back to the template's."""
    if all(sub.width == sub.value_width for sub in substitutions):
        return statements  # no column moved

    def template_loc(loc: Loc) -> Loc:
        return attrs.evolve(loc, column=_map_column(loc.column, substitutions))

    return tuple(_relocate(statement, template_loc) for statement in statements)


_T = TypeVar("_T")


def _relocate(node: _T, move: Callable[[Loc], Loc]) -> _T:
    """`node` with every location moved by `move` (columns of a substituted line → template columns)."""
    if isinstance(node, tuple):
        return tuple(_relocate(item, move) for item in node)  # type: ignore[return-value]
    if not attrs.has(type(node)) or isinstance(node, Loc):
        return node
    fields = attrs.fields(type(node))  # type: ignore[arg-type]
    changes = {f.name: _relocate(getattr(node, f.name), move) for f in fields if f.name != "loc"}
    return attrs.evolve(node, loc=move(node.loc), **changes)  # type: ignore[misc, attr-defined]
