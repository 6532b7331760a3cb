"""The scenario library (issue 5): every scenario names its source, every worked example of the specification is in
it, every policy a scenario runs has an expectation, and `svmdsl run scenarios/` holds.

A scenario the engine or the language cannot run yet carries the tag `@pending` and a `// pending: <reason>` comment
above it; such a scenario must still fail (so the tag is removed as soon as it passes) and nothing else may fail.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dsl.compiler.lower import lower_file
from dsl.syntax import ast, parse_file, parse_text

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "scenarios"
#: The topics the issue asks for, one folder each.
TOPICS = ("seed", "series", "nested", "selftest", "followups", "hypervisors", "edge")
#: examples.md numbers its worked examples EX-01 … EX-46.
WORKED_EXAMPLES = tuple(f"EX-{number:02d}" for number in range(1, 47))
#: The issue's lower bound on the library's size (outline rows count).
MIN_SCENARIOS = 80
PENDING_TAG = "pending"
PENDING_COMMENT = "// pending:"
#: How long the whole library may take to run through the console script (it takes seconds; this is a hang guard).
RUN_TIMEOUT_SECONDS = 600
_EXAMPLE_ID = re.compile(r"EX-\d\d")


def library_files() -> tuple[Path, ...]:
    return tuple(sorted(LIBRARY.rglob("*.svm")))


def topic_of(path: Path) -> str:
    return path.relative_to(LIBRARY).parts[0]


def blocks(svm: ast.SvmFile) -> tuple[ast.Scenario | ast.ScenarioOutline, ...]:
    """Scenarios and outlines as written."""
    return svm.scenarios


def concrete(block: ast.Scenario | ast.ScenarioOutline) -> tuple[ast.Scenario, ...]:
    """The scenarios a block stands for: itself, or one per examples row."""
    return block.scenarios if isinstance(block, ast.ScenarioOutline) else (block,)


def scenarios_without_source(svm: ast.SvmFile) -> tuple[str, ...]:
    """Titles of the scenarios (or outlines) that cite no source, or only blank ones."""
    return tuple(block.title for block in blocks(svm) if not any(source.strip() for source in block.sources))


def example_ids(svm: ast.SvmFile) -> set[str]:
    """EX-nn ids named by a title (of a scenario or of an expanded outline row), a tag or a source."""
    found: set[str] = set()
    for block in blocks(svm):
        texts = [block.title, *block.tags, *block.sources, *(s.title for s in concrete(block))]
        for text in texts:
            found.update(_EXAMPLE_ID.findall(text))
    return found


def pending_titles(svm: ast.SvmFile) -> tuple[str, ...]:
    return tuple(block.title for block in blocks(svm) if PENDING_TAG in block.tags)


@pytest.fixture(scope="module")
def parsed() -> dict[Path, ast.SvmFile]:
    return {path: parse_file(path) for path in library_files()}


# --- sources ---------------------------------------------------------------------------------------------------------


def test_every_scenario_names_the_source_of_its_expectation(parsed: dict[Path, ast.SvmFile]) -> None:
    """Issue 5 'How it is checked': each scenario names its source (a rule id, EX-nn, commit or Message-Id)."""
    missing = {str(path.relative_to(ROOT)): scenarios_without_source(svm) for path, svm in parsed.items()}
    assert {file: titles for file, titles in missing.items() if titles} == {}


def test_a_scenario_without_a_source_is_reported() -> None:
    """The source check itself: a scenario with no `source` line, or a blank one, is named; one with a source is not."""
    text = (
        'scenario "cited":\n  source "EX-01"\n  policies kvm-6.0\n  expect reinject\n'
        'scenario "uncited":\n  policies kvm-6.0\n  expect reinject\n'
        'scenario "blank":\n  source " "\n  policies kvm-6.0\n  expect reinject\n'
    )
    assert scenarios_without_source(parse_text(text, "inline.svm")) == ("uncited", "blank")


def test_every_file_starts_with_a_description() -> None:
    """Issue 5: each file starts with a short description (a `//` comment block before anything else)."""
    undescribed = [str(p.relative_to(ROOT)) for p in library_files() if not p.read_text().startswith("// ")]
    assert undescribed == []


def test_the_library_index_lists_every_file() -> None:
    """scenarios/README.md is the map a new user reads first: every `.svm` file appears in it by name."""
    index = (LIBRARY / "README.md").read_text()
    unlisted = [str(p.relative_to(ROOT)) for p in library_files() if f"`{p.name}`" not in index]
    assert unlisted == []


# --- coverage --------------------------------------------------------------------------------------------------------


def test_every_worked_example_of_the_specification_is_in_the_library(parsed: dict[Path, ast.SvmFile]) -> None:
    """examples.md: every worked example EX-01 … EX-46 is among the scenarios (by title, tag or source)."""
    named: set[str] = set()
    for svm in parsed.values():
        named |= example_ids(svm)
    assert [ex for ex in WORKED_EXAMPLES if ex not in named] == []


def test_the_library_covers_every_topic_with_enough_scenarios(parsed: dict[Path, ast.SvmFile]) -> None:
    """Issue 5: organised by topic, at least 80 scenarios with outline rows counted."""
    per_topic: Counter[str] = Counter()
    for path, svm in parsed.items():
        per_topic[topic_of(path)] += sum(len(concrete(block)) for block in blocks(svm))
    assert [topic for topic in TOPICS if per_topic[topic] == 0] == []
    assert sum(per_topic.values()) >= MIN_SCENARIOS


def test_every_policy_a_scenario_runs_under_has_an_expectation() -> None:
    """Issue 5 item 3: each scenario states the outcome under each policy it concerns — no policy runs unchecked."""
    unchecked: list[str] = []
    for path in library_files():
        lowered = lower_file(path.read_text(), str(path))
        for scenario in lowered.scenarios:
            unchecked.extend(f"{scenario.name} [{case.policy.value}]" for case in scenario.cases if not case.checks)
    assert unchecked == []


def test_every_pending_scenario_says_why(parsed: dict[Path, ast.SvmFile]) -> None:
    """A `@pending` scenario has a `// pending: <reason>` comment in the lines right above its tags."""
    silent: list[str] = []
    for path, svm in parsed.items():
        lines = path.read_text().splitlines()
        for block in blocks(svm):
            if PENDING_TAG not in block.tags:
                continue
            above = _comment_block_above(lines, _tag_line(lines, block.loc.line))
            if not any(line.startswith(PENDING_COMMENT) for line in above):
                silent.append(f"{path.relative_to(ROOT)}:{block.loc.line} {block.title}")
    assert silent == []


def _tag_line(lines: list[str], header_line: int) -> int:
    """1-based number of the first tag line above a scenario header (the header itself if it has no tags)."""
    line = header_line
    while line > 1 and lines[line - 2].lstrip().startswith("@"):
        line -= 1
    return line


def _comment_block_above(lines: list[str], line: int) -> list[str]:
    block: list[str] = []
    index = line - 2
    while index >= 0 and lines[index].startswith("//"):
        block.append(lines[index])
        index -= 1
    return block


# --- running the library ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_report() -> tuple[int, dict[str, Any]]:
    """`svmdsl run scenarios --format json`, through the console entry point (`python -m dsl`), once per session."""
    completed = subprocess.run(
        [sys.executable, "-m", "dsl", "run", "scenarios", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.stdout, completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout)
    return completed.returncode, report


def _is_pending(case: dict[str, Any]) -> bool:
    return PENDING_TAG in (tag.lstrip("@") for tag in case.get("tags", ()))


def _name(case: dict[str, Any]) -> str:
    row = f", row {case['row']}" if case.get("row") is not None else ""
    return f"{case['file']}:{case['line']} {case['scenario']} [{case['policy']}{row}]: {case['verdict']}"


def test_svmdsl_run_holds_every_scenario_that_is_not_pending(run_report: tuple[int, dict[str, Any]]) -> None:
    """Issue 5 'How it is checked': every scenario runs and holds under every policy it names."""
    _, report = run_report
    assert report["cases"], "the run found no cases"
    assert report["file_errors"] == []
    broken = [_name(case) for case in report["cases"] if case["verdict"] != "held" and not _is_pending(case)]
    assert broken == []


def test_every_pending_scenario_still_fails(run_report: tuple[int, dict[str, Any]]) -> None:
    """A `@pending` scenario that holds under every policy is no longer pending: remove the tag and the comment."""
    _, report = run_report
    verdicts: dict[tuple[str, str], list[str]] = {}
    for case in report["cases"]:
        if _is_pending(case):
            verdicts.setdefault((case["file"], case["scenario"]), []).append(case["verdict"])
    stale = [f"{file}: {title}" for (file, title), seen in verdicts.items() if all(v == "held" for v in seen)]
    assert stale == []


def test_svmdsl_run_exit_status_matches_the_verdicts(run_report: tuple[int, dict[str, Any]]) -> None:
    """`svmdsl run scenarios/` exits 0 exactly when every case held and every file loaded, 1 otherwise."""
    status, report = run_report
    all_held = all(case["verdict"] == "held" for case in report["cases"])
    assert report["ok"] is (all_held and not report["file_errors"])
    assert status == (0 if report["ok"] else 1)
