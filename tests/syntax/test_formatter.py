"""The formatter: canonical text whose parse equals the original's (issue 3: parse → format → parse)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from syntax_strategies import SYNTAX, lines

from dsl.syntax import ast, parse_file, parse_text, render
from dsl.syntax.formatter import format_file, format_text

HERE = Path(__file__).parent
CORPUS = sorted((HERE / "corpus" / "valid").glob("*.svm"))


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_round_trips_and_formatting_is_idempotent(path: Path) -> None:
    original = parse_file(path)
    formatted = format_file(original)
    assert parse_text(formatted, str(path)) == original
    assert format_text(formatted, str(path)) == formatted


def test_canonical_form_of_a_messy_scenario() -> None:
    messy = (
        "// lead comment\n"
        "@seed   @int3\n"
        '   scenario "t":   rip 4096 ;run\n'
        "      policies kvm-5.19,kvm-6.0   // trailing\n"
        "\n"
        "\n"
        " under kvm-6.0 :expect reinject with next_rip=4097\n"
    )
    assert format_text(messy) == (
        "// lead comment\n"
        "@seed @int3\n"
        'scenario "t": rip 0x1000; run\n'
        "  policies kvm-5.19, kvm-6.0  // trailing\n"
        "\n"
        "  under kvm-6.0: expect reinject with next_rip=0x1001\n"
    )


def test_examples_table_is_aligned() -> None:
    text = 'scenario outline "t <a>":\n  rip <a>\n  examples:\n  |a|long column|\n  | 0x1000 | 1 |\n'
    assert format_text(text).splitlines()[-3:] == [
        "  examples:",
        "    | a      | long column |",
        "    | 0x1000 | 1           |",
    ]


@settings(SYNTAX)
@given(st.lists(lines, min_size=1, max_size=6))
def test_rendered_statements_parse_back_to_themselves(body_lines: list[tuple[ast.Statement, ...]]) -> None:
    """Every statement the AST can hold has a spelling, and that spelling parses back to an equal node."""
    body = "\n".join("  " + "; ".join(render.statement(s) for s in line) for line in body_lines)
    parsed = parse_text(f'scenario "generated":\n{body}\n')
    scenario = parsed.items[0]
    assert isinstance(scenario, ast.Scenario)
    assert scenario.statements == tuple(s for line in body_lines for s in line)


@settings(SYNTAX)
@given(
    st.lists(lines, min_size=1, max_size=5),
    st.lists(st.sampled_from(["", " ", "\t", "    "]), min_size=5, max_size=5),
    st.booleans(),
)
def test_format_then_parse_gives_the_same_ast(
    body_lines: list[tuple[ast.Statement, ...]], indents: list[str], tags: bool
) -> None:
    """Issue 3's property: parse → format → parse gives an equal AST, whatever the indentation and grouping."""
    body = "\n".join(
        indents[i % len(indents)] + " ;  ".join(render.statement(s) for s in line) + "  // c"
        for i, line in enumerate(body_lines)
    )
    header = "@generated\n" if tags else ""
    text = f'background:\n  paging npt\n{header}scenario "generated":\n{body}\n'
    original = parse_text(text)
    formatted = format_file(original)
    assert parse_text(formatted) == original
    assert format_text(formatted) == formatted
