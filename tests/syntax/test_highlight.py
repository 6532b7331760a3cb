"""The Pygments lexer, found the way documentation tools find it: by name through the plugin entry point."""

from __future__ import annotations

from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Keyword, Name, Number, String

from dsl.syntax.highlight import SvmLexer

SAMPLE = '@seed\nscenario "t":\n  policies kvm-6.0; code at 0x1000: int3  // c\n  vectoring hits #PF intercepted\n'


def test_registered_under_its_alias_and_extension() -> None:
    assert isinstance(get_lexer_by_name("svm"), SvmLexer)
    assert isinstance(get_lexer_for_filename("example.svm"), SvmLexer)


def test_tokens_of_a_scenario() -> None:
    tokens = {(value, token) for token, value in get_lexer_by_name("svm").get_tokens(SAMPLE) if value.strip()}
    assert ("@seed", Name.Decorator) in tokens
    assert ("scenario", Keyword.Declaration) in tokens
    assert ('"t"', String) in tokens
    assert ("kvm-6.0", Name.Constant) in tokens
    assert ("0x1000", Number.Hex) in tokens
    assert ("int3", Name.Builtin) in tokens
    assert ("#PF", Name.Exception) in tokens  # a vector, not a comment
    assert ("// c", Comment.Single) in tokens


def test_text_survives_lexing_unchanged() -> None:
    text = "".join(value for _, value in get_lexer_by_name("svm").get_tokens(SAMPLE))
    assert text == SAMPLE
