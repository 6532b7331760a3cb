"""The checker's reporting: diagnostics that show the source line, names checked against a vocabulary (with a
"did you mean"), numbers checked against the width of their field.

Every check module reports through a `Reporter`; `dsl.compiler.check` makes one per file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dsl.errors import Diagnostic, Loc, Severity, make_diagnostic
from dsl.syntax import ast, vocabulary

VECTOR_BITS = 8


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """'did you mean X?' for the nearest candidate (case-insensitive), or None."""
    found = vocabulary.nearest(word, candidates)
    return f"did you mean {found}?" if found else None


#: Longer lists are cut in "expected" lines (a "did you mean" names the likely one anyway).
MAX_LISTED = 12


def _one_of(options: Sequence[str], what: str) -> str:
    if len(options) > MAX_LISTED:  # a long list would bury the hint; the reference lists them all
        return f"a known {what} (see docs/language.md)"
    return "one of " + ", ".join(options)


class Reporter:
    """Collects the diagnostics of one file; `texts` maps each file name (the file and its includes) to its text."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts
        self.diagnostics: list[Diagnostic] = []

    def error(self, loc: Loc, message: str, expected: str | None = None, hint: str | None = None) -> None:
        text = self.texts.get(loc.file)
        self.diagnostics.append(make_diagnostic(text, loc, message, expected=expected, hint=hint))

    def warn(self, loc: Loc, message: str, hint: str | None = None) -> None:
        text = self.texts.get(loc.file)
        self.diagnostics.append(make_diagnostic(text, loc, message, hint=hint, severity=Severity.WARNING))

    def name(self, name: ast.Name, what: str, options: Sequence[str]) -> bool:
        """Report `name` unless it is one of `options`; True when it is known."""
        if name.text in options:
            return True
        self.error(name.loc, f"unknown {what} '{name.text}'", _one_of(options, what), did_you_mean(name.text, options))
        return False

    def value(self, loc: Loc, value: int, what: str, bits: int) -> None:
        limit = (1 << bits) - 1
        if 0 <= value <= limit:
            return
        if bits < VECTOR_BITS:  # small fields (cpl, dpl, gif) read better in decimal
            self.error(loc, f"{what} {value} is out of range", f"a value from 0 to {limit}")
        else:
            self.error(loc, f"{what} {value:#x} is out of range", f"a value from 0 to {limit:#x} ({bits} bits)")
