"""One call of the Lark parser on one text, turned into an AST or one diagnostic."""

from __future__ import annotations

from lark.exceptions import UnexpectedInput

from dsl.errors import Diagnostic, make_diagnostic
from dsl.syntax import ast
from dsl.syntax.diagnostics import diagnose_parse_error
from dsl.syntax.embedded import parse_ast
from dsl.syntax.instructions import ShapeError


class BlockError(Exception):
    """A text did not parse; `diagnostic` says where and why (internal: callers collect it)."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def parse_source(text: str, filename: str, source: str | None = None) -> ast.SvmFile:
    """Parse `text`; `source` is the real file text when `text` is a padded piece of it (for the caret line)."""
    source = text if source is None else source
    try:
        result = parse_ast(text, filename)
    except UnexpectedInput as error:
        raise BlockError(diagnose_parse_error(error, source, filename)) from None
    except ShapeError as cause:
        diagnostic = make_diagnostic(source, cause.loc, cause.message, expected=cause.expected, hint=cause.hint)
        raise BlockError(diagnostic) from None
    assert isinstance(result, ast.SvmFile)
    return result
