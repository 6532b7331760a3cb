"""Escaping for GitHub-flavoured Markdown: text from scenarios must read as text, never as HTML or markup.

GitHub renders raw HTML in Markdown (and sanitises only part of it), so `<`, `>`, `&` and `"` become entities;
Markdown's own punctuation is backslash-escaped (CommonMark allows a backslash before any ASCII punctuation);
line breaks inside a table cell would end the row, so cells are kept on one line.
"""

from __future__ import annotations

import re

#: HTML's special characters, as entities (GitHub then shows them literally).
_ENTITIES: dict[str, str] = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}

#: Markdown punctuation that opens emphasis, code, links and images, table cells or strikethrough anywhere in a line
#: (`(`, `)` and `!` only mean something next to an escaped `[` or `]`).
_MARKUP = frozenset("\\`*_[]|~")
#: What makes a line a heading, list item, quote, rule or setext underline when it starts the line.
_LINE_START = re.compile(r"^([ \t]*)([#>+=-]|\d+(?=[.)]))", re.MULTILINE)

_LONGEST_BACKTICKS = re.compile(r"`+")
#: The shortest fence CommonMark accepts.
MIN_FENCE = 3


class Raw(str):
    """Markdown built by us from already-escaped parts (links, emphasis): passed through unchanged."""

    __slots__ = ()


def escape(value: object) -> Raw:
    """`value` as Markdown text that GitHub shows exactly as written."""
    if isinstance(value, Raw):
        return value
    out = []
    for char in str(value):
        if char in _ENTITIES:
            out.append(_ENTITIES[char])
        elif char in _MARKUP:
            out.append("\\" + char)
        else:
            out.append(char)
    return Raw(_LINE_START.sub(_escape_line_start, "".join(out)))


def _escape_line_start(match: re.Match[str]) -> str:
    indent, marker = match.group(1), match.group(2)
    if marker[0].isdigit():
        return f"{indent}{marker}\\"  # `1.` → `1\.`: the escape goes before the dot the lookahead saw
    return f"{indent}\\{marker}"


def cell(value: object) -> Raw:
    """Escaped text for a table cell: one line, pipes escaped."""
    if isinstance(value, Raw):
        return Raw(value.replace("\n", " "))
    return escape(" ".join(str(value).split()))


def fence(text: str) -> Raw:
    """A fence longer than any run of backticks inside `text`, so the code block cannot be closed early."""
    longest = max((len(run) for run in _LONGEST_BACKTICKS.findall(text)), default=0)
    return Raw("`" * max(MIN_FENCE, longest + 1))


def link(text: object, target: str) -> Raw:
    """`[text](target)`; the target is a path we built, with its parentheses and spaces percent-encoded."""
    safe_target = target.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return Raw(f"[{escape(text)}]({safe_target})")


def emphasis(text: object) -> Raw:
    """**text**, escaped inside."""
    return Raw(f"**{escape(text)}**")


def finalize(value: object) -> object:
    """Jinja's `finalize` for Markdown templates: every `{{ … }}` is escaped unless built as `Raw`."""
    if value is None:
        return ""
    return escape(value)
