"""The grammar itself: conflict-free, collision-free, terminals converted, error-example table alive."""

from __future__ import annotations

import importlib
from typing import Any

import attrs
import pytest
from lark import Token

from dsl.errors import SvmSyntaxError
from dsl.syntax import ast, parse_text
from dsl.syntax.diagnostics import error_examples
from dsl.syntax.embedded import reference_parser
from dsl.syntax.grammar import build_parser, grammar_text

HEADLINE = '''\
// Comments use //.
background:
  profile amd-nrips
  mode long64; paging shadow

@seed @int3
scenario "INT3 whose delivery hits an intercepted #PF":
  source "EX-01; 6ef88d6e36c2 (seed commit message)"
  """
  The headline case of the seed commit: a shadow-paging #PF on the #BP handler's stack.
  """
  policies kvm-5.19, kvm-6.0, kvm-mainline, architectural
  code at 0x1000: int3
  rip 0x1000; rflags 0x202
  guest executes int3; vectoring hits #PF intercepted by L0
  host re-enters
  under kvm-5.19: expect retry; expect spurious_db == false
  under kvm-6.0, kvm-mainline: expect reinject with next_rip=0x1001
  expect delivered #BP with return rip=0x1001
  expect event_inj == 0x80000303
'''


def test_grammar_builds_in_strict_mode() -> None:
    """Strict mode fails on any LALR conflict and any terminal collision inside one lexer state."""
    build_parser(strict=True, cache=False)


def test_grammar_ships_inside_the_package() -> None:
    """The grammar is read through importlib.resources from dsl.grammar, not from the source tree."""
    assert "start:" in grammar_text()
    assert importlib.import_module("dsl.grammar").__name__ == "dsl.grammar"


def test_parser_is_built_once_per_process() -> None:
    assert reference_parser() is reference_parser()


def test_comments_use_slashes_and_hash_is_vocabulary() -> None:
    """`#PF` is a vector, never a comment; `//` starts a comment anywhere on a line."""
    svm = parse_text('scenario "t":\n  vectoring hits #PF intercepted // not #GP\n')
    (scenario,) = svm.items
    assert isinstance(scenario, ast.Scenario)
    (step,) = scenario.statements
    assert isinstance(step, ast.VectoringStep)
    assert step.fault.text == "#PF"


def _walk(value: Any) -> list[Any]:
    found = [value]
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            found.extend(_walk(getattr(value, field.name)))
    elif isinstance(value, tuple | list):
        for item in value:
            found.extend(_walk(item))
    return found


def test_no_lark_token_leaks_into_the_ast() -> None:
    """Every terminal is converted by the transformer (Token is a str subclass, so check the exact type)."""
    svm = parse_text(HEADLINE, "headline.svm")
    leaked = [v for v in _walk(svm) if isinstance(v, Token)]
    assert leaked == []


def test_every_node_carries_a_location_outside_equality() -> None:
    svm = parse_text(HEADLINE, "headline.svm")
    scenario = svm.items[1]
    assert isinstance(scenario, ast.Scenario)
    code = scenario.statements[1]
    assert code.loc == ast.Loc("headline.svm", 13, 3)
    moved = parse_text("\n\n" + HEADLINE, "elsewhere.svm")
    assert moved.items[1] == scenario  # same text two lines lower: equal nodes, different locations
    assert moved.items[1].loc != scenario.loc


@pytest.mark.parametrize(("label", "snippet"), [(label, s) for label, ss in error_examples().items() for s in ss])
def test_every_error_example_fails_and_gets_its_own_label(label: str, snippet: str) -> None:
    """The table of broken snippets next to the grammar stays true: each fails, with its label as the message."""
    with pytest.raises(SvmSyntaxError) as caught:
        parse_text(snippet, "example.svm")
    assert caught.value.diagnostics[0].message.startswith(label)
