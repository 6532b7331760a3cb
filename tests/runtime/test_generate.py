"""Generated pytest modules (issue 4, item 4): literals, names, determinism, hostile scenario text."""

from __future__ import annotations

import ast as python_ast
import keyword
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsl.compiler.generate import (
    GenerateError,
    SuiteCase,
    SuiteModule,
    comment_text,
    py_identifier,
    py_str,
    render_conftest,
    render_module,
)
from dsl.compiler.names import PYTEST_BUILTIN_MARKERS, TAG_MARKER_PREFIX, marker_name, slug

HOSTILE_TITLES = (
    "a very long title " * 12,
    'say "hi"',
    "it's",
    "both ' and \"",
    '"""); import os; os.system("echo pwned"); ("""',
    "{{ 7 * 7 }} {% raw %}",
    "back\\slash\\",
    "non-ASCII: Δ → ✓ 中文 😀",
    "line\nbreak\rcarriage\u2028separator\x00nul",
    "# not a comment",
)


def _module(*titles: str, tags: tuple[str, ...] = ()) -> SuiteModule:
    cases = tuple(
        SuiteCase(title, line=10 + i, policy="kvm-6.0", row=None, tags=tags) for i, title in enumerate(titles)
    )
    return SuiteModule(source="../scenarios/x.svm", inputs_digest="0" * 64, cases=cases)


def _calls(source: str) -> list[tuple[str, str]]:
    """(test function name, scenario argument) for every generated test, read back with Python's own parser."""
    found = []
    for node in python_ast.parse(source).body:
        if isinstance(node, python_ast.FunctionDef):
            call = next(n for n in python_ast.walk(node) if isinstance(n, python_ast.Call))
            first = call.args[0]
            assert isinstance(first, python_ast.Constant)
            found.append((node.name, first.value))
    return found


@given(st.text())
def test_py_str_is_a_single_line_literal_that_evaluates_back_to_the_text(text: str) -> None:
    """Any text, however hostile, becomes one physical line of Python that evaluates to exactly that text."""
    literal = py_str(text)
    assert "\n" not in literal
    assert "\r" not in literal
    assert python_ast.literal_eval(literal) == text


def test_hostile_titles_survive_generation_exactly() -> None:
    """Quotes, triple quotes, Jinja syntax, backslashes, non-ASCII and control characters reach the test as data."""
    source = render_module(_module(*HOSTILE_TITLES))
    compile(source, "<generated>", "exec")
    assert [scenario for _, scenario in _calls(source)] == list(HOSTILE_TITLES)
    tree = python_ast.parse(source)
    kinds = [type(node).__name__ for node in tree.body]
    assert kinds == ["Expr", "ImportFrom", "Assign"] + ["FunctionDef"] * len(HOSTILE_TITLES)  # nothing injected
    assert all(len(node.body) == 1 for node in tree.body if isinstance(node, python_ast.FunctionDef))


def test_hostile_module_is_ruff_format_clean(tmp_path: Path) -> None:
    """Generated files are formatter-clean, even with the hostile titles (ruff picks the same quotes we do)."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    target = tmp_path / "test_hostile.py"
    target.write_text(render_module(_module(*HOSTILE_TITLES, tags=("seed",))), encoding="utf-8")
    config = Path(__file__).resolve().parents[2] / "pyproject.toml"
    completed = subprocess.run(
        [ruff, "format", "--check", "--diff", "--config", str(config), str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_rendering_is_deterministic_and_free_of_paths_and_times() -> None:
    """Same input, same bytes; no absolute paths; `\\n` line endings only."""
    module = _module("a", "b", tags=("seed", "nested"))
    first, second = render_module(module), render_module(module)
    assert first == second
    assert "\r" not in first
    assert str(Path.cwd()) not in first


def test_each_test_names_its_svm_file_and_line() -> None:
    """Every generated test carries `path:line` of its scenario and passes the line to the runtime."""
    source = render_module(_module("first", "second"))
    assert "# ../scenarios/x.svm:10" in source
    assert "# ../scenarios/x.svm:11" in source
    assert "line=11," in source


def test_titles_with_the_same_slug_get_distinct_test_names() -> None:
    """Two titles that slug alike ("A b" / "a-b") still give two tests, told apart by their line."""
    names = [name for name, _ in _calls(render_module(_module("A b", "a-b")))]
    assert len(set(names)) == 2


def test_outline_rows_get_their_own_tests() -> None:
    """One test per outline row, with the row passed to the runtime."""
    cases = tuple(SuiteCase("outline", line=5, policy="kvm-6.0", row=row) for row in (1, 2))
    source = render_module(SuiteModule("../x.svm", "0" * 64, cases))
    assert [name for name, _ in _calls(source)] == ["test_outline__kvm_6_0__row1", "test_outline__kvm_6_0__row2"]
    assert "row=2," in source


@pytest.mark.parametrize("word", ["class", "1abc", "a-b", "a b", "", "tést"])
def test_identifiers_are_validated_not_repaired(word: str) -> None:
    """Names placed in Python code must already be identifiers; anything else is an error, never an injection."""
    with pytest.raises(GenerateError):
        py_identifier(word)


@given(st.text())
def test_comment_text_is_one_line(text: str) -> None:
    """Comment text can never end the comment early."""
    rendered = comment_text(text)
    assert rendered.isascii()
    assert rendered.isprintable()


@given(st.text(alphabet=st.characters(codec="ascii"), min_size=1).map(lambda s: "t" + s))
def test_marker_names_are_identifiers_that_pytest_accepts(tag: str) -> None:
    """Every tag becomes a marker name that is an identifier, not a keyword and not one of pytest's own markers."""
    name = marker_name(tag)
    assert name.isidentifier()
    assert not keyword.iskeyword(name)
    assert not name.startswith("_")
    assert name not in PYTEST_BUILTIN_MARKERS


def test_tags_named_like_pytest_markers_are_prefixed() -> None:
    """A tag `skip` must not skip the test: it becomes `tag_skip`."""
    assert marker_name("skip") == TAG_MARKER_PREFIX + "skip"
    assert marker_name("seed") == "seed"
    assert marker_name("kvm-6.0") == "kvm_6_0"


def test_slug_is_lower_case_words() -> None:
    assert slug("INT3 hits #PF (EX-01)") == "int3_hits_pf_ex_01"
    assert slug("→→") == "scenario"


def test_conftest_registers_every_marker_and_compiles() -> None:
    """The generated conftest registers tag markers so that `--strict-markers` accepts them."""
    source = render_conftest(("seed", "nested"))
    compile(source, "<conftest>", "exec")
    namespace: dict[str, object] = {}
    exec(compile(source, "<conftest>", "exec"), namespace)
    assert namespace["TAG_MARKERS"] == ("nested", "seed")
    assert "TAG_MARKERS: tuple[str, ...] = ()" in render_conftest(())


def test_pending_scenarios_are_xfail_not_strict_like_under_direct_collection() -> None:
    """A `@pending` scenario (a known gap) is marked with the runtime's PENDING marker: xfail, not strict."""
    source = render_module(_module("gap", tags=("pending",)))
    assert "from dsl.runtime.suite import PENDING, SvmSource" in source
    assert "@PENDING\ndef test_gap__kvm_6_0() -> None:" in source
    assert "PENDING" not in render_module(_module("no gap"))
