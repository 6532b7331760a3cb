"""The formatter: canonical text whose parse equals the original's (issue 3: parse → format → parse)."""

from __future__ import annotations

import pickle
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
        'scenario "t": rip 4096; run\n'
        "  policies kvm-5.19, kvm-6.0  // trailing\n"
        "\n"
        "  under kvm-6.0: expect reinject with next_rip=4097\n"
    )


NUMBERS_AS_WRITTEN = """\
scenario "numbers as written":
  rip 4096
  cs base 0x0200
  code at 0x1000: mov eax, [ebx - 0x8]
  code at 0x2000: mov eax, [ebx + ecx*4 + 16]
  vmcb12 event_inj 0x8000_0303
  guest executes
  expect delivery_count == 1
  expect vmcb12_exit_code == -1
  expect exit_code[0] == 0X7A
  expect reinject with next_rip=0x01001
"""


def test_the_formatter_keeps_every_number_as_written() -> None:
    """Issue 3 item 6 (follow-up 1): `1` stays `1`, `-1` stays `-1`, `0x0200` stays `0x0200` — no hex rewrite."""
    assert format_text(NUMBERS_AS_WRITTEN) == NUMBERS_AS_WRITTEN


def test_a_spelling_is_not_part_of_the_ast() -> None:
    """Issue 3 (AST): `4096` and `0x1000` are the same value, so the same node; only the formatter sees the text."""
    decimal = parse_text('scenario "t": rip 4096\n')
    hexadecimal = parse_text('scenario "t": rip 0x1000\n')
    assert decimal.items == hexadecimal.items
    assert repr(decimal.items) == repr(hexadecimal.items)


def test_outline_rows_keep_their_spelling() -> None:
    """Outline substitution is textual: each row's numbers are quoted back as that row wrote them."""
    text = 'scenario outline "t <a>":\n  rip <a>\n  examples:\n    | a      |\n    | 4096   |\n    | 0x2000 |\n'
    outline = parse_text(text).items[0]
    assert isinstance(outline, ast.ScenarioOutline)
    assert [render.statement(s.statements[0]) for s in outline.scenarios] == ["rip 4096", "rip 0x2000"]


def test_numbers_built_in_code_get_the_canonical_spelling() -> None:
    """Nodes made by tools (explore's counterexamples) have plain ints: hex, decimal below ten and for counts."""
    loc = ast.Loc("t.svm", 1, 1)
    assert render.statement(ast.RipSetting(0x1000, loc=loc)) == "rip 0x1000"
    assert render.statement(ast.CplSetting(3, loc=loc)) == "cpl 3"
    count = ast.FieldExpectation(ast.Name("delivery_count", loc=loc), None, ast.Comparison.EQ, 12, loc=loc)
    assert render.statement(count) == "expect delivery_count == 12"


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


def test_a_spelling_survives_pickling() -> None:
    """Issue 3 (errors and ASTs cross xdist workers): a pickled number keeps its value and its spelling."""
    scenario = parse_text('scenario "t": rip 0x0200\n').items[0]
    restored = pickle.loads(pickle.dumps(scenario))
    assert restored == scenario
    assert render.statement(restored.statements[0]) == "rip 0x0200"
