"""Lark's parse errors → a `Diagnostic` that says, in words, what was expected.

Two sources of wording: a table of labelled broken snippets (`dsl.grammar.error_examples`), matched against the
failing parser state with `UnexpectedInput.match_examples`, gives the message; the set of terminals the parser
would have accepted, translated into words (never token names), gives the "expected" line.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterable

from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dsl.errors import Diagnostic, Loc, line_of, make_diagnostic
from dsl.syntax.embedded import parse_snippet, reference_parser

#: Regular-expression terminals in words.
TERMINAL_WORDS: dict[str, str] = {
    "NAME": "a name",
    "VECTOR": "a vector such as #PF",
    "NUMBER": "a number such as 0x1000",
    "HEXBYTE": "a byte in hex such as cd",
    "STRING": 'a "quoted string"',
    "DOCSTRING": 'a """description"""',
    "TAG": "a tag such as @seed",
    "TEMPLATE_LINE": "a template line",
    "ROW": "a table row | … |",
    "COMPARISON": "== or !=",
    "NRIPS_VALUE": "0 or 1",
    "VMCB": "vmcb, vmcb12 or vmcb02",
    "MEMORY_SIGN": "+ or -",
    "_NL": "the end of the line",
    "$END": "the end of the file",
}

#: The "expected" line when every sentence, or every set-up sentence, would do (categories rather than every keyword).
SENTENCE_SUMMARY = (
    "a sentence: set-up (profile, policies, mode, rip, code at …), a step (guest executes, inject, vectoring hits, "
    "exit for, host re-enters, run …) or an expectation (expect …, under <policies>: expect …)"
)
SETTING_SUMMARY = "a set-up sentence (profile, policies, nrips, paging, mode, rip, rflags, code at …)"
#: Beyond this many alternatives, the "expected" line names categories instead of listing everything.
MAX_LISTED = 8


def _terminal_word(name: str, lark: Lark) -> str:
    if name in TERMINAL_WORDS:
        return TERMINAL_WORDS[name]
    try:
        pattern = lark.get_terminal(name).pattern
    except KeyError:
        return name.lower()
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return name.lower()


def describe_expected(names: Iterable[str], lark: Lark | None = None) -> str:
    """The accepted terminals as words: `'scenario', a tag such as @seed or the end of the file`."""
    lark = lark or reference_parser()
    words = {name: _terminal_word(name, lark) for name in names}
    keywords = {w.strip("'") for w in words.values() if w.startswith("'")}
    if {"profile", "guest", "expect"} <= keywords:
        return SENTENCE_SUMMARY
    if {"profile", "mode", "rip"} <= keywords and "guest" not in keywords:
        return SETTING_SUMMARY
    unique = sorted(set(words.values()), key=lambda w: (w.startswith("the end"), not w.startswith("'"), w))
    if len(unique) > MAX_LISTED:
        unique = [*unique[: MAX_LISTED - 1], "…"]
    if len(unique) == 1:
        return unique[0]
    return ", ".join(unique[:-1]) + " or " + unique[-1]


_WORD_CHAR = re.compile(r"[\w.\-#]")
_WORD = re.compile(r"[\w.\-#]+|\S")


def _word_at(source: str, line: int, column: int) -> tuple[int, str] | None:
    """The whole word at (line, column), widened backwards when a keyword matched only its start (`return_rip`
    lexes as `return` + `_rip`): its 1-based column and text. None past the end of the line."""
    text = line_of(source, line)
    if text is None or not 0 <= column - 1 < len(text):
        return None
    start = column - 1
    while start > 0 and _WORD_CHAR.match(text[start - 1]) and _WORD_CHAR.match(text[start]):
        start -= 1
    match = _WORD.match(text, start)
    return (start + 1, match.group(0)) if match else None


def _found(error: UnexpectedInput, source: str) -> tuple[str, int | None]:
    """What the parser found, in words, and the column to point at when it is not the error's own."""
    if isinstance(error, UnexpectedToken) and error.token.type == "$END":
        return "the end of the file", None
    if isinstance(error, UnexpectedToken) and error.token.type == "_NL":
        return "the end of the line", None
    if isinstance(error, UnexpectedToken | UnexpectedCharacters):
        word = _word_at(source, error.line, error.column)
        if word is not None and (isinstance(error, UnexpectedCharacters) or _WORD_CHAR.match(str(error.token)[:1])):
            return f"'{word[1]}'", word[0]
        if isinstance(error, UnexpectedToken):
            return f"'{error.token}'", None
    return "the end of the file", None


def diagnose_parse_error(error: UnexpectedInput, source: str, filename: str) -> Diagnostic:
    """The diagnostic for one Lark error: location, message (from the examples table when it matches), expected."""
    lark = reference_parser()
    expected: set[str]
    if isinstance(error, UnexpectedToken):
        expected = set(error.accepts or error.expected)
    elif isinstance(error, UnexpectedCharacters):
        expected = set(error.allowed or ())
    elif isinstance(error, UnexpectedEOF):
        expected = set(error.expected)
    else:
        expected = set()
    line, column = _position(error, source)
    label = _match_label(error)
    found, word_column = _found(error, source)
    column = word_column or column
    message = f"{label} (found {found})" if label else "unexpected " + found.removeprefix("the ")
    return make_diagnostic(source, Loc(filename, line, column), message, expected=describe_expected(expected, lark))


def _position(error: UnexpectedInput, source: str) -> tuple[int, int]:
    line, column = getattr(error, "line", -1), getattr(error, "column", -1)
    if isinstance(error, UnexpectedToken) and error.token.type == "_NL":
        # A newline token starts at the end of the line it closes: point there, not at the next line. (Line and
        # column, not offsets: a block parsed alone is padded, so its offsets are not the file's.)
        return error.token.line or 1, error.token.column or 1
    if line is None or line < 1:  # end of file
        lines = source.splitlines() or [""]
        return len(lines), len(lines[-1]) + 1
    return line, column


@functools.cache
def error_examples() -> dict[str, list[str]]:
    """The labelled snippets of `grammar/error_examples.py` (imported by name: it lives in the grammar folder)."""
    table: dict[str, list[str]] = importlib.import_module("dsl.grammar.error_examples").ERROR_EXAMPLES
    return table


def _state_key(error: UnexpectedInput) -> tuple[int, frozenset[str]]:
    """(LALR state, accepted terminals) of a failure: what `UnexpectedInput.match_examples` compares.

    Matching is done here rather than with `match_examples`, whose debug logging raises a TypeError when the
    contextual lexer reports the state as a ParserState object (lark 1.3).
    """
    state = error.state
    position = getattr(state, "position", state)
    accepted = getattr(error, "accepts", None) or getattr(error, "expected", None) or getattr(error, "allowed", ())
    return (position if isinstance(position, int) else -1, frozenset(accepted or ()))


def _token_type(error: UnexpectedInput) -> str | None:
    return error.token.type if isinstance(error, UnexpectedToken) else None


@functools.cache
def _example_index() -> tuple[dict[tuple[int, frozenset[str], str | None], str], dict[tuple[int, frozenset[str]], str]]:
    """Each example's failure key → its label; the first example wins when two share a key."""
    by_token: dict[tuple[int, frozenset[str], str | None], str] = {}
    by_state: dict[tuple[int, frozenset[str]], str] = {}
    for label, snippets in error_examples().items():
        for snippet in snippets:
            try:
                parse_snippet(snippet)
            except UnexpectedInput as failure:
                key = _state_key(failure)
                by_token.setdefault((*key, _token_type(failure)), label)
                if _token_type(failure) != "_NL":
                    by_state.setdefault(key, label)
    return by_token, by_state


def _match_label(error: UnexpectedInput) -> str | None:
    by_token, by_state = _example_index()
    key = _state_key(error)
    exact = by_token.get((*key, _token_type(error)))
    if exact is not None or _token_type(error) == "_NL":
        return exact  # an end-of-line example says "ended too early": never borrow it for another token
    return by_state.get(key)
