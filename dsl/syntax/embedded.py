"""The AST builder run inside the LALR parser: no parse tree, no position propagation.

Lark's embedded transformer calls one function per rule with the rule's children. The parser keeps every token
(`keep_all_tokens`), so each function finds its location in its first token or located child, drops the
keyword and punctuation tokens, and hands the location and the rest to the `AstBuilder` method of the same name.
About twice as fast as building a tree and transforming it.

Two parsers share the grammar and the builder: lark-cython's parses every text; one it rejects is parsed again by
Lark's own, whose errors carry what `dsl.syntax.diagnostics` reads. Where lark-cython is not installed, Lark's
parser does both (`dsl.syntax.tokens`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from lark import Lark
from lark.exceptions import LarkError

from dsl.collector import collector_paused
from dsl.errors import NO_FILE, Loc
from dsl.syntax.grammar import build_parser
from dsl.syntax.instructions import ShapeError
from dsl.syntax.tokens import CYTHON_PLUGINS, Token
from dsl.syntax.transform_sentences import AstBuilder

#: Terminals that carry a value; every other token (keywords, punctuation, newlines) is dropped.
VALUE_TERMINALS = frozenset(
    ("NAME", "VECTOR", "NUMBER", "HEXBYTE", "STRING", "DOCSTRING", "TAG", "TEMPLATE_LINE", "ROW", "COMPARISON",
     "NRIPS_VALUE", "VMCB", "MEMORY_SIGN")
)  # fmt: skip
#: Rules written `!rule` in the grammar: their keywords are their value.
KEEP_KEYWORDS = frozenset(
    ("presence", "tables", "gate_attr", "l1", "injection_source", "handler", "level", "mapping", "save_option")
)
#: Terminals that are a value in one rule only (`expect delivered == #BP` names the `delivered` observable).
KEEP_IN_RULE = {"expect_field": frozenset(("DELIVERED",))}


def first_location(file: str, children: list[Any]) -> Loc | None:
    """Where the first token or located node among `children` is (looking inside tuples and lists)."""
    for child in children:
        if isinstance(child, Token):
            return Loc(file, child.line or 0, child.column or 0)
        loc = getattr(child, "loc", None)
        if isinstance(loc, Loc):
            return loc  # built in this parse, so it already names `file`
        if isinstance(child, tuple | list):
            found = first_location(file, list(child))
            if found is not None:
                return found
    return None


class EmbeddedBuilder:
    """One attribute per grammar rule, each a function of the rule's children, for `Lark(transformer=…)`."""

    def __init__(self) -> None:
        self.builder = AstBuilder(NO_FILE)
        for name, method in self.builder.rules().items():
            setattr(self, name, self._rule(name, method))

    def _rule(self, name: str, method: Callable[[Loc, list[Any]], Any]) -> Callable[[list[Any]], Any]:
        keep = VALUE_TERMINALS | KEEP_IN_RULE.get(name, frozenset())
        everything = name in KEEP_KEYWORDS
        builder = self.builder

        def build(children: list[Any]) -> Any:
            loc = first_location(builder.file, children) or Loc(builder.file, 0, 0)
            if not everything:
                children = [c for c in children if not isinstance(c, Token) or c.type in keep]
            return method(loc, children)

        return build


@functools.cache
def _builder() -> EmbeddedBuilder:
    return EmbeddedBuilder()


def _ast_parser(**options: Any) -> Lark:
    return build_parser(propagate_positions=False, keep_all_tokens=True, transformer=_builder(), **options)


@functools.cache
def _fast_parser() -> Lark:
    """lark-cython's LALR parser and lexer (about 1.4× as fast as Lark's own here), or Lark's where it is missing."""
    return reference_parser() if CYTHON_PLUGINS is None else _ast_parser(_plugins=CYTHON_PLUGINS)


@functools.cache
def reference_parser() -> Lark:
    """Lark's own parser: its errors carry what the diagnostics read (the accepted terminals, the parser state)."""
    return _ast_parser()


_PARSING = threading.Lock()  # the one builder names the file being parsed


def parse_ast(text: str, filename: str) -> object:
    """The AST of `text`, every location naming `filename`; Lark's `UnexpectedInput` or a `ShapeError` if the
    text does not parse.

    lark-cython's errors lack what the diagnostics need (its `accepts` fails, its states are not Lark's), so a
    text it rejects is parsed again by Lark's parser, whose outcome is the one that counts.
    """
    with _PARSING, collector_paused():
        _builder().builder.file = filename
        fast = _fast_parser()
        try:
            return fast.parse(text)
        except (LarkError, ShapeError):
            if fast is reference_parser():  # lark-cython is not installed: this was Lark's parser already
                raise
            return reference_parser().parse(text)


def parse_snippet(text: str) -> object:
    """Parse `text` with Lark's parser (replaying error examples, matched on its states; the result is not used)."""
    with _PARSING:
        _builder().builder.file = NO_FILE
        return reference_parser().parse(text)
