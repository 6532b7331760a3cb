"""Words of the closed vocabulary (`dsl.syntax.vocabulary`) → engine values, for lowering.

The checker has already reported unknown words; lowering still refuses one it cannot map (an `SvmCheckError` at
its location, with what was expected and a "did you mean"), so it never guesses.
"""

from __future__ import annotations

import difflib
import enum
from typing import TypeVar

import attrs

from dsl.engine.vocab import VECTOR_COUNT, ExitCode
from dsl.errors import Diagnostic, Loc, SvmCheckError, make_diagnostic
from dsl.syntax import ast
from dsl.syntax.vocabulary import EXIT_REASONS, VECTORS

_E = TypeVar("_E", bound=enum.Enum)


@attrs.define(eq=False)
class Context:
    """The file being lowered: its text (for the source line of diagnostics) and the problems found so far."""

    file: str
    text: str
    diagnostics: list[Diagnostic] = attrs.Factory(list)
    lines: list[str] = attrs.field(init=False)  # split once: expectations and titles quote their lines

    def __attrs_post_init__(self) -> None:
        self.lines = self.text.splitlines()

    def line(self, number: int) -> str:
        """The text of 1-based line `number` ("" past the end)."""
        return self.lines[number - 1] if 1 <= number <= len(self.lines) else ""

    def error(self, loc: Loc, message: str, *, expected: str | None = None, hint: str | None = None) -> LowerError:
        return LowerError(make_diagnostic(self.text, loc, message, expected=expected, hint=hint))


class LowerError(Exception):
    """One problem, raised out of a scenario's lowering and collected (one diagnostic per scenario)."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def did_you_mean(word: str, choices: list[str]) -> str | None:
    near = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {near[0]}?" if near else None


def member(ctx: Context, name: ast.Name, kind: type[_E], what: str) -> _E:
    """The enum member whose value is the word as written."""
    for candidate in kind:
        if candidate.value == name.text:
            return candidate
    choices = [str(c.value) for c in kind]
    raise ctx.error(
        name.loc, f"unknown {what} {name.text!r}", expected=", ".join(choices), hint=did_you_mean(name.text, choices)
    )


def plain(number: int | None) -> int | None:
    """An AST number (`ast.Number`, which keeps its spelling for the formatter) as the plain int a Program holds:
    nothing of the syntax reaches the engine, and a lowered case stays cheap to keep and to load."""
    return None if number is None else int(number)


def vector(ctx: Context, ref: ast.VectorRef, loc: Loc) -> int:
    """A vector written as a name (`#BP`, `NMI`) or a number (0-255)."""
    if isinstance(ref, int):
        if not 0 <= ref < VECTOR_COUNT:
            raise ctx.error(loc, f"vector {ref:#x} is out of range", expected="a vector from 0x0 to 0xff")
        return int(ref)
    if ref.text in VECTORS:
        return int(VECTORS[ref.text])
    choices = list(VECTORS)
    raise ctx.error(
        ref.loc,
        f"unknown vector {ref.text!r}",
        expected="#BP, #OF, #PF… or a number",
        hint=did_you_mean(ref.text, choices),
    )


def exit_reason(ctx: Context, name: ast.Name) -> ExitCode:
    """An exit reason word (`hlt`, `cpuid`, `npf`…)."""
    found = EXIT_REASONS.get(name.text)
    if found is None:
        choices = list(EXIT_REASONS)
        raise ctx.error(
            name.loc,
            f"unknown exit reason {name.text!r}",
            expected=", ".join(choices),
            hint=did_you_mean(name.text, choices),
        )
    return found


def raise_collected(ctx: Context) -> None:
    """Raise every problem collected for the file at once, or nothing."""
    if ctx.diagnostics:
        raise SvmCheckError(tuple(ctx.diagnostics))
