"""docs/language.md cannot drift: every ```svm block parses and checks, and the page names the whole vocabulary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dsl.compiler.check import check
from dsl.engine.vocab import Observable, Outcome
from dsl.errors import Severity
from dsl.syntax import parse_text, vocabulary

REFERENCE = Path(__file__).parents[2] / "docs" / "language.md"
TEXT = REFERENCE.read_text()
BLOCKS = [
    (TEXT.count("\n", 0, match.start()) + 2, match.group(1))
    for match in re.finditer(r"^```svm\n(.*?)^```$", TEXT, flags=re.MULTILINE | re.DOTALL)
]


def test_the_reference_has_examples() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize(("line", "block"), BLOCKS, ids=[f"line-{line}" for line, _ in BLOCKS])
def test_every_svm_block_parses_and_checks(line: int, block: str) -> None:
    svm = parse_text(block, f"docs/language.md:{line}")
    assert [d.render() for d in check(svm) if d.severity is Severity.ERROR] == []


@pytest.mark.parametrize(
    "word",
    [
        *(o.value for o in Observable),
        *vocabulary.MNEMONICS,
        *vocabulary.PROFILES,
        *vocabulary.MODES,
        *vocabulary.FAULTS,
        *(vocabulary.outcome_spelling(o) for o in Outcome),
    ],
)
def test_the_reference_names_every_word_of_the_vocabulary(word: str) -> None:
    assert re.search(rf"(?<![\w#-]){re.escape(word)}(?![\w-])", TEXT), f"docs/language.md does not mention {word}"
