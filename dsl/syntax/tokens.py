"""The lexer's tokens, as the rule methods see them, and lark-cython, the compiled parser that makes most of them.

lark-cython is installed where it has wheels (pyproject.toml). Where it is, texts are parsed by it and its tokens
are not `str`; a text it rejects, and every text where it is missing, is parsed by Lark's own parser, whose tokens
are. So the rule methods take a token's text as `str(token)` and test for one with `isinstance(x, Token)`; both
kinds have `type`, `line` and `column`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import lark

try:
    import lark_cython  # untyped: see [[tool.mypy.overrides]] in pyproject.toml
except ImportError:  # no wheel for this platform
    lark_cython = None

#: lark-cython's parser and lexer, for `Lark(_plugins=…)`; None where it is not installed.
CYTHON_PLUGINS: dict[str, Any] | None = None if lark_cython is None else lark_cython.plugins

if TYPE_CHECKING:
    Token: TypeAlias = lark.Token  # what the type checker sees: lark-cython's token has the same attributes
else:
    #: A token of either parser, for `isinstance`.
    Token = lark.Token if lark_cython is None else lark.Token | lark_cython.Token
