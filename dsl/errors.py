"""One error root for every phase, source locations, and the `file:line:col: error: …` renderer.

Errors are attrs classes holding plain data (no Lark objects, no open files), so they pickle and cross
process boundaries under pytest-xdist. Each error carries one or more `Diagnostic`s; a diagnostic keeps a copy
of its source line, so rendering needs no file access.
"""

from __future__ import annotations

import enum
import re

import attrs

#: How a location with no file is shown (text given to `parse_text` without a name).
NO_FILE = "<string>"

#: A token-ish run under the caret: the caret is widened to cover it (`#PF`, `kvm-6.0`, `0x1000`).
_WORD_AT_CARET = re.compile(r"<[\w\-]+>|[#@\w.\-]+|\"[^\"\n]*\"?|\S")


@attrs.frozen
class Loc:
    """A place in a `.svm` file: 1-based line and column, as editors and compilers print them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Severity(enum.Enum):
    """How bad a diagnostic is. Only errors make parsing or checking fail."""

    ERROR = "error"
    WARNING = "warning"


@attrs.frozen
class Diagnostic:
    """One message about one place.

    `expected` says, in words, what would have been valid there; `hint` adds a suggestion ("did you mean #PF?");
    `source_line` is the text of the line at `loc` (without its newline), kept for rendering.
    """

    loc: Loc
    message: str
    expected: str | None = None
    hint: str | None = None
    severity: Severity = Severity.ERROR
    source_line: str | None = None

    def render(self) -> str:
        """`file:line:col: error: message`, the source line, a caret under the spot, then expected/hint lines."""
        lines = [f"{self.loc}: {self.severity.value}: {self.message}"]
        if self.source_line is not None:
            gutter = f"{self.loc.line:>5} | "
            lines.append(gutter + self.source_line)
            lines.append(" " * (len(gutter) - 2) + "| " + _caret(self.source_line, self.loc.column))
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


def _caret(source_line: str, column: int) -> str:
    """`^~~~` under the token that starts at `column` (tabs kept so the caret lines up)."""
    start = max(column - 1, 0)
    padding = "".join("\t" if ch == "\t" else " " for ch in source_line[:start])
    match = _WORD_AT_CARET.match(source_line, start) if start < len(source_line) else None
    width = len(match.group(0)) if match else 1
    return padding + "^" + "~" * (width - 1)


def line_of(text: str, line: int) -> str | None:
    """The text of 1-based `line` in `text`, without its line ending; None past the end."""
    lines = text.splitlines()
    if 1 <= line <= len(lines):
        return lines[line - 1]
    return None


def make_diagnostic(
    text: str | None,
    loc: Loc,
    message: str,
    *,
    expected: str | None = None,
    hint: str | None = None,
    severity: Severity = Severity.ERROR,
) -> Diagnostic:
    """A diagnostic whose source line is taken from `text` (the file's contents), when known."""
    source_line = line_of(text, loc.line) if text is not None else None
    return Diagnostic(loc, message, expected, hint, severity, source_line)


@attrs.define(auto_exc=True)
class SvmError(Exception):
    """The root of every error svm-dsl raises for bad input; carries all the diagnostics found, in file order."""

    diagnostics: tuple[Diagnostic, ...]

    @property
    def loc(self) -> Loc:
        """Where the first problem is."""
        return self.diagnostics[0].loc

    def render(self) -> str:
        """Every diagnostic rendered, separated by a blank line, with a count at the end when there are several."""
        body = "\n\n".join(d.render() for d in self.diagnostics)
        errors = sum(1 for d in self.diagnostics if d.severity is Severity.ERROR)
        if errors > 1:
            body += f"\n\n{errors} errors"
        return body

    def __str__(self) -> str:
        return self.render()

    @classmethod
    def single(
        cls,
        text: str | None,
        loc: Loc,
        message: str,
        *,
        expected: str | None = None,
        hint: str | None = None,
    ) -> SvmError:
        """An error with one diagnostic (the common case)."""
        return cls((make_diagnostic(text, loc, message, expected=expected, hint=hint),))


class SvmSyntaxError(SvmError):
    """The text is not a well-formed `.svm` file (grammar, tokens, includes, outline tables)."""


class SvmIncludeError(SvmSyntaxError):
    """An `include` names a file that is missing, unreadable, or already being included (a cycle)."""


class SvmCheckError(SvmError):
    """The file parses but says something impossible or unknown (checker: names, ranges, contradictions)."""


def sort_diagnostics(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic]) -> tuple[Diagnostic, ...]:
    """File order (file, line, column), duplicates removed; a stable order keeps snapshot tests honest."""
    unique = dict.fromkeys(diagnostics)
    return tuple(sorted(unique, key=lambda d: (d.loc.file, d.loc.line, d.loc.column, d.message)))
