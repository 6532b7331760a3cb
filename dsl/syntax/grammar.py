"""The grammar (`grammar/svm.lark`) as shipped in the package, and the one way to build a Lark parser from it."""

from __future__ import annotations

from importlib import resources
from typing import Any

from lark import Lark

from dsl import GRAMMAR_PACKAGE

GRAMMAR_FILE = "svm.lark"


def grammar_text() -> str:
    """The grammar's source, read from the installed package."""
    return (resources.files(GRAMMAR_PACKAGE) / GRAMMAR_FILE).read_text(encoding="utf-8")


def build_parser(*, strict: bool = False, cache: bool = True, propagate_positions: bool = True, **options: Any) -> Lark:
    """A fresh LALR parser with the contextual lexer. `strict=True` fails on any conflict or terminal collision;
    `options` go to Lark as they are (the AST-building parser passes `keep_all_tokens` and `transformer`)."""
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=propagate_positions,
        maybe_placeholders=False,
        strict=strict,
        cache=cache,
        **options,
    )
