"""The lexer's tokens, as the rule methods see them: from either of the two Lark parsers (`dsl.syntax.embedded`).

Text is parsed by lark-cython, whose tokens are not `str`; text that fails to parse is parsed again by Lark's own
parser, whose tokens are. So the rule methods take a token's text as `str(token)` and test for one with
`isinstance(x, Token)`; both kinds have `type`, `line` and `column`.
"""

from __future__ import annotations

from typing import TypeAlias

import lark
import lark_cython  # type: ignore[import-untyped]  # no type information; its Token has lark.Token's attributes

#: A token of either parser, for `isinstance` and annotations.
Token: TypeAlias = lark.Token | lark_cython.Token
