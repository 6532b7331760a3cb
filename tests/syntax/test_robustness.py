"""Bad input of any shape gives an SvmError with a location, never another exception (issue 3)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from syntax_strategies import SYNTAX

from dsl.compiler.check import check
from dsl.errors import SvmError
from dsl.syntax import parse_text
from dsl.syntax.formatter import format_text

CORPUS_TEXTS = [
    p.read_text() for p in sorted((Path(__file__).parent / "corpus" / "valid").glob("*.svm")) if p.name != "common.svm"
]
#: Pieces that make plausible nonsense: keywords, vocabulary, punctuation, numbers, layout.
FRAGMENTS = (
    "scenario", "outline", '"t"', ":", "background", "include", "examples", "|", "@tag", "expect", "under",
    "guest", "executes", "int3", "int", "0x80", "#PF", "#", "//", '"""', ";", ",", "==", "!=", "=", "[", "]",
    "\n", "  ", "\t", "kvm-6.0", "with", "next_rip", "rip", "code", "at", "bytes", "cd", "<n>", "-1", "\r\n",
    "vectoring", "hits", "intercepted", "by", "L1", "page", "not", "present", "in", "host", "é", "\x00",
)  # fmt: skip


def _parse_and_check(text: str) -> None:
    failure: SvmError | None = None
    try:
        svm = parse_text(text, "fuzz.svm")
        check(svm)
        format_text(text, "fuzz.svm")
    except SvmError as error:  # anything else propagates and fails the test
        failure = error
    if failure is not None:
        assert failure.diagnostics
        assert all(d.loc.line >= 1 and d.loc.column >= 1 for d in failure.diagnostics)
        assert str(failure)  # rendering never fails either


@settings(SYNTAX)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(" ".join))
def test_random_sentences_raise_only_svm_errors(text: str) -> None:
    _parse_and_check(text)


@settings(SYNTAX)
@given(st.text(max_size=200))
def test_random_text_raises_only_svm_errors(text: str) -> None:
    _parse_and_check(text)


@settings(SYNTAX)
@given(
    st.sampled_from(CORPUS_TEXTS),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 8), st.sampled_from(FRAGMENTS)), min_size=1, max_size=4),
)
def test_mutated_corpus_files_raise_only_svm_errors(text: str, edits: list[tuple[int, int, str]]) -> None:
    """Delete a few characters and insert a fragment, a few times over, at random places in a valid file."""
    for position, length, fragment in edits:
        at = position % (len(text) + 1)
        text = text[:at] + fragment + text[at + length :]
    _parse_and_check(text)
