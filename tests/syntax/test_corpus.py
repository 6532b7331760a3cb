"""The corpus: valid files parse and check clean; invalid files give exactly their snapshotted diagnostics.

To refresh the snapshots after an intended change of wording: `SVM_UPDATE_SNAPSHOTS=1 pytest tests/syntax`, then
review the diff of `tests/syntax/corpus/invalid/*.expected` like any other change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsl.compiler.check import check, load
from dsl.errors import Severity, SvmError
from dsl.syntax import ast, parse_file

HERE = Path(__file__).parent
VALID = sorted((HERE / "corpus" / "valid").glob("*.svm"))
INVALID = sorted((HERE / "corpus" / "invalid").glob("*.svm"))
UPDATE = os.environ.get("SVM_UPDATE_SNAPSHOTS") == "1"


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_file_parses_and_checks_without_errors(path: Path) -> None:
    svm = parse_file(path)
    errors = [d for d in check(svm) if d.severity is Severity.ERROR]
    assert errors == []


def test_the_valid_corpus_expresses_every_worked_example_and_the_selftest() -> None:
    """Every EX-01 … EX-46 and the selftest steps S-9 … S-19 appear in some scenario title of the corpus."""
    titles = " ".join(
        scenario.title
        for path in VALID
        for scenario in parse_file(path).scenarios
        for scenario in (scenario.scenarios if isinstance(scenario, ast.ScenarioOutline) else (scenario,))
    )
    missing = [f"EX-{n:02d}" for n in range(1, 47) if f"EX-{n:02d}" not in titles]
    assert missing == []
    assert all(step in titles for step in ("S-9", "S-13", "S-16"))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_file_gives_its_snapshotted_diagnostics(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)  # paths in the messages are relative, as a user would type them
    relative = path.relative_to(HERE)
    with pytest.raises(SvmError) as caught:
        load(relative)
    rendered = str(caught.value) + "\n"
    expected_path = path.with_suffix(".expected")
    if UPDATE:
        expected_path.write_text(rendered)
    assert rendered == expected_path.read_text()
