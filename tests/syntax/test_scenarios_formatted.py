"""The bundled scenario library is in canonical form: `svmdsl fmt --check scenarios/` has nothing to change."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.syntax.formatter import format_text

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
LIBRARY = sorted(SCENARIOS.rglob("*.svm"))


def test_the_library_is_there() -> None:
    """Guards the test below against passing on an empty folder."""
    assert LIBRARY


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(SCENARIOS)))
def test_each_bundled_scenario_file_is_formatter_clean(path: Path) -> None:
    """Issue 3 item 6 (`svmdsl fmt --check`): formatting a library file gives it back unchanged, numbers included."""
    text = path.read_text(encoding="utf-8")
    assert format_text(text, str(path)) == text
