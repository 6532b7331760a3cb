"""Lark parse tree → AST. Every terminal is converted here, so no `lark.Token` reaches the AST."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from dsl.errors import Loc
from dsl.syntax import ast
from dsl.syntax.instructions import split_instruction
from dsl.syntax.tokens import Token

_STRING_ESCAPE = re.compile(r"\\(.)")
_DOCSTRING_QUOTES = 3


def unquote(text: str) -> str:
    """The value of a `"…"` string: quotes removed, `\\x` → `x` (so `\\"` and `\\\\` work)."""
    return _STRING_ESCAPE.sub(r"\1", text[1:-1])


def quote(text: str) -> str:
    """The inverse of `unquote`: a `"…"` literal for `text`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_number(text: str) -> int:
    """`0x1000`, `4096`, `0x8000_0303` (underscores group digits), `-1`. `010` is ten: octal would surprise."""
    clean = text.replace("_", "")
    sign = -1 if clean.startswith("-") else 1
    digits = clean.lstrip("-")
    if digits[:2] in ("0x", "0X"):
        return sign * int(digits[2:], 16)
    return sign * int(digits, 10)


class RuleBuilder:
    """Builds AST nodes, one method per grammar rule taking `(loc, children)`: where the rule's first token is, and
    its value children (keywords and punctuation dropped); `file` names the source in every `Loc`.
    `dsl.syntax.embedded` runs these methods inside the LALR parser as it reduces each rule. This class has the
    file structure and shared pieces; `AstBuilder` (`dsl.syntax.transform_sentences`) adds the sentences.
    """

    def __init__(self, file: str) -> None:
        self.file = file

    def rules(self) -> dict[str, Callable[[Loc, list[Any]], Any]]:
        """Rule name → method, for every rule of the grammar."""
        names = {name for cls in type(self).__mro__ for name in vars(cls) if not name.startswith("_")}
        return {name: getattr(self, name) for name in sorted(names - {"rules"})}

    def _tok_loc(self, token: Token) -> Loc:
        return Loc(self.file, token.line or 0, token.column or 0)

    # --- file structure ---------------------------------------------------------------------------------------

    def start(self, loc: Loc, children: list[Any]) -> ast.SvmFile:
        return ast.SvmFile(self.file, tuple(children), loc=Loc(self.file, 1, 1))

    def include(self, loc: Loc, children: list[Any]) -> ast.Include:
        return ast.Include(unquote(str(children[0])), None, loc=loc)

    def background(self, loc: Loc, children: list[Any]) -> ast.Background:
        return ast.Background(tuple(children), loc=loc)

    def tags(self, loc: Loc, children: list[Token]) -> tuple[str, ...]:
        return tuple(str(t)[1:] for t in children)

    def source(self, loc: Loc, children: list[Token]) -> tuple[str, str]:
        return ("source", unquote(str(children[0])))

    def description(self, loc: Loc, children: list[Token]) -> tuple[str, str]:
        return ("description", inspect.cleandoc(str(children[0])[_DOCSTRING_QUOTES:-_DOCSTRING_QUOTES]))

    def _header(self, children: list[Any]) -> tuple[tuple[str, ...], str, list[str], str | None, list[Any]]:
        tags, title, *rest = children
        sources: list[str] = []
        description: str | None = None
        body: list[Any] = []
        for child in rest:
            if isinstance(child, tuple) and child and child[0] == "source":
                sources.append(child[1])
            elif isinstance(child, tuple) and child and child[0] == "description":
                # Several docstrings read as paragraphs of one description.
                description = child[1] if description is None else description + "\n\n" + child[1]
            else:
                body.append(child)
        return tags, unquote(str(title)), sources, description, body

    def scenario(self, loc: Loc, children: list[Any]) -> ast.Scenario:
        tags, title, sources, description, body = self._header(children)
        return ast.Scenario(title, tags, tuple(sources), description, tuple(body), None, loc=loc)

    def outline(self, loc: Loc, children: list[Any]) -> ast.ScenarioOutline:
        tags, title, sources, description, body = self._header(children)
        template = tuple(c for c in body if isinstance(c, ast.TemplateLine))
        examples = next(c for c in body if isinstance(c, ast.Examples))
        return ast.ScenarioOutline(title, tags, tuple(sources), description, template, examples, (), loc=loc)

    def template_line(self, loc: Loc, children: list[Token]) -> ast.TemplateLine:
        token = children[0]
        return ast.TemplateLine(strip_comment(str(token)), loc=self._tok_loc(token))

    def examples(self, loc: Loc, children: list[ast.ExampleRow]) -> ast.Examples:
        header, *rows = children
        return ast.Examples(header.cells, tuple(rows), loc=loc)

    def example_row(self, loc: Loc, children: list[Token]) -> ast.ExampleRow:
        token = children[0]
        return ast.ExampleRow(split_row(str(token)), loc=self._tok_loc(token))

    # --- shared pieces ----------------------------------------------------------------------------------------

    def name(self, loc: Loc, children: list[Token]) -> ast.Name:
        return ast.Name(str(children[0]), loc=self._tok_loc(children[0]))

    def name_list(self, loc: Loc, children: list[ast.Name]) -> tuple[ast.Name, ...]:
        return tuple(children)

    def number(self, loc: Loc, children: list[Token]) -> ast.Number:
        text = str(children[0])
        return ast.Number(parse_number(text), text)

    def true(self, loc: Loc, children: list[Any]) -> bool:
        return True

    def false(self, loc: Loc, children: list[Any]) -> bool:
        return False

    def field_value(self, loc: Loc, children: list[Any]) -> ast.FieldValue:
        token, value = children
        return ast.FieldValue(ast.Name(str(token), loc=self._tok_loc(token)), value, loc=loc)

    def with_fields(self, loc: Loc, children: list[ast.FieldValue]) -> tuple[ast.FieldValue, ...]:
        return tuple(children)

    def event_exception(self, loc: Loc, children: list[Token]) -> ast.EventSpec:
        vector = ast.Name(str(children[0]), loc=self._tok_loc(children[0]))
        return ast.EventSpec(ast.EventKind.EXCEPTION, vector, None, loc=loc)

    def event_soft(self, loc: Loc, children: list[int]) -> ast.EventSpec:
        return ast.EventSpec(ast.EventKind.SOFT_INTERRUPT, children[0], None, loc=loc)

    def event_irq(self, loc: Loc, children: list[int]) -> ast.EventSpec:
        return ast.EventSpec(ast.EventKind.INTERRUPT, children[0], None, loc=loc)

    def event_nmi(self, loc: Loc, children: list[Any]) -> ast.EventSpec:
        return ast.EventSpec(ast.EventKind.NMI, None, None, loc=loc)

    def event_raw(self, loc: Loc, children: list[int]) -> ast.EventSpec:
        return ast.EventSpec(ast.EventKind.RAW, None, children[0], loc=loc)

    # --- code -------------------------------------------------------------------------------------------------

    def raw_bytes(self, loc: Loc, children: list[Token]) -> ast.RawBytes:
        return ast.RawBytes(bytes(int(str(t), 16) for t in children), loc=loc)

    def instruction(self, loc: Loc, children: list[list[Any]]) -> ast.Instruction:
        return split_instruction(children, loc, self._tok_loc)

    def operand_group(self, loc: Loc, children: list[Any]) -> list[Any]:
        return children

    def memory(self, loc: Loc, children: list[Any]) -> ast.Memory:
        from dsl.syntax.instructions import build_memory

        return build_memory(children, loc)

    def memory_term(self, loc: Loc, children: list[Any]) -> tuple[str | None, int]:
        if isinstance(children[0], Token):
            scale = children[1] if len(children) > 1 else 1
            return (str(children[0]).lower(), scale)
        return (None, children[0])


def strip_comment(line: str) -> str:
    """A template line without its trailing `// comment` (outside strings) and trailing blanks."""
    in_string = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and in_string:
            i += 2
            continue
        if ch == '"':
            in_string = not in_string
        elif not in_string and line.startswith("//", i):
            return line[:i].rstrip()
        i += 1
    return line.rstrip()


def split_row(row: str) -> tuple[str, ...]:
    """`| a | b |` → ("a", "b"); a trailing `// comment` is dropped; the closing bar is optional."""
    body = strip_comment(row).strip()
    cells = body[1:].split("|")
    if cells and cells[-1].strip() == "":
        cells = cells[:-1]
    return tuple(cell.strip() for cell in cells)
