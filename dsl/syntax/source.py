"""One call of the Lark parser on one text, turned into an AST or one diagnostic."""

from __future__ import annotations

from lark import Token, Tree
from lark.exceptions import UnexpectedInput, VisitError

from dsl.errors import Diagnostic, make_diagnostic
from dsl.syntax import ast
from dsl.syntax.diagnostics import diagnose_parse_error
from dsl.syntax.grammar import parser
from dsl.syntax.instructions import ShapeError
from dsl.syntax.transform import AstBuilder


class BlockError(Exception):
    """A text did not parse; `diagnostic` says where and why (internal: callers collect it)."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def parse_source(text: str, filename: str, source: str | None = None) -> ast.SvmFile:
    """Parse `text`; `source` is the real file text when `text` is a padded piece of it (for the caret line)."""
    source = text if source is None else source
    try:
        tree: Tree[Token] = parser().parse(text)
    except UnexpectedInput as error:
        raise BlockError(diagnose_parse_error(error, source, filename)) from None
    try:
        return AstBuilder(filename).transform(tree)
    except VisitError as error:
        cause = error.orig_exc
        if isinstance(cause, ShapeError):
            diagnostic = make_diagnostic(source, cause.loc, cause.message, expected=cause.expected, hint=cause.hint)
            raise BlockError(diagnostic) from None
        raise
