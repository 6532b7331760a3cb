"""The two parsers behind `parse_text` (`dsl.syntax.embedded`): lark-cython parses, Lark's own reports errors.

lark-cython must build exactly the AST Lark's parser builds — locations and number spellings included, which AST
equality leaves out — and a text it rejects must fail in Lark's parser, whose errors carry what the diagnostics
read (the accepted terminals, the LALR state the error examples are matched on). Where lark-cython is not
installed, Lark's parser does both, with the same results.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from lark.exceptions import UnexpectedInput
from lark.parsers.lalr_parser_state import ParserState

from dsl.errors import SvmError
from dsl.syntax import ast, parse_text
from dsl.syntax.embedded import _fast_parser, parse_ast, reference_parser
from dsl.syntax.tokens import CYTHON_PLUGINS, Token

ROOT = Path(__file__).parents[2]
SVM_FILES = sorted((*ROOT.glob("scenarios/**/*.svm"), *(ROOT / "tests/syntax/corpus/valid").glob("*.svm")))


def snapshot(value: object) -> object:
    """`value` with what equality leaves out made comparable: every `Loc`, and how each number was spelled."""
    assert not isinstance(value, Token), "a lexer token reached the AST"
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))
        return (type(value).__name__, tuple((f.name, snapshot(getattr(value, f.name))) for f in fields))
    if isinstance(value, tuple | list):
        return tuple(snapshot(item) for item in value)
    if isinstance(value, ast.Number):
        return ("Number", int(value), value.spelling)
    return (type(value).__name__, value)


@pytest.mark.skipif(CYTHON_PLUGINS is None, reason="lark-cython has no wheel here: Lark's parser does all parsing")
@pytest.mark.parametrize("path", SVM_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_lark_cython_builds_the_ast_larks_parser_builds(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    fast = parse_ast(text, str(path))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("dsl.syntax.embedded._fast_parser", reference_parser)
        reference = parse_ast(text, str(path))
    assert _fast_parser() is not reference_parser()
    assert snapshot(fast) == snapshot(reference)


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ('scenario "t":\n  rip rip\n', {"NUMBER"}),  # a keyword where a number belongs
        ('scenario "t":\n  rip\n', {"NUMBER"}),  # the line ends too early
        ("scenario t:\n", {"STRING", "OUTLINE"}),  # an unquoted title
    ],
)
def test_a_text_that_does_not_parse_fails_in_larks_parser(text: str, accepted: set[str]) -> None:
    with pytest.raises(UnexpectedInput) as failure:
        parse_ast(text, "t.svm")
    assert isinstance(failure.value.state, ParserState)
    assert set(getattr(failure.value, "accepts", ())) == accepted


WITHOUT_LARK_CYTHON = """
import sys
sys.modules["lark_cython"] = None  # `import lark_cython` raises ImportError, as where it has no wheel
sys.path.insert(0, sys.argv[1])
from dsl.errors import SvmError
from dsl.syntax import parse_text, tokens
from test_fast_parser import snapshot
assert tokens.CYTHON_PLUGINS is None
path, broken = sys.argv[2], sys.argv[3]
print(repr(snapshot(parse_text(open(path, encoding="utf-8").read(), path))))
try:
    parse_text(broken, "broken.svm")
except SvmError as error:
    print(error.render())
"""
BROKEN = 'scenario "t":\n  rip rip\n  guest executes int3\n'


def test_without_lark_cython_larks_parser_does_it_all() -> None:
    """Where lark-cython has no wheel (pyproject.toml), parsing gives the same ASTs and the same errors."""
    path = ROOT / "tests/syntax/corpus/valid/selftest.svm"
    completed = subprocess.run(
        [sys.executable, "-c", WITHOUT_LARK_CYTHON, str(Path(__file__).parent), str(path), BROKEN],
        capture_output=True,
        text=True,
        check=True,
    )
    with pytest.raises(SvmError) as failure:
        parse_text(BROKEN, "broken.svm")
    expected = repr(snapshot(parse_text(path.read_text(encoding="utf-8"), str(path))))
    assert completed.stdout == expected + "\n" + failure.value.render() + "\n"
