"""Both pytest paths agree on the whole library, and `generated/` is up to date (issue 4, item 6).

Direct collection of `scenarios/` and the generated modules in `generated/` must give the same verdict for every
case (scenario × policy × outline row). Both run here under pytest in a subprocess; the direct items name their
case in a user property, the generated tests in their call to the runtime (read back with Python's parser).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dsl.runtime.pytest_items import CASE_PROPERTY

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
GENERATED = ROOT / "generated"

CaseKey = tuple[str, str, str, str]  # resolved .svm path, scenario, policy, row ("" for none)


def _has_scenarios() -> bool:
    return any(SCENARIOS.rglob("*.svm"))


pytestmark = pytest.mark.skipif(not _has_scenarios(), reason="the scenario library is empty")


def _generated_cases() -> dict[tuple[str, str], CaseKey]:
    """(module file name, test name) → the case its call to `SOURCE.check` names."""
    cases: dict[tuple[str, str], CaseKey] = {}
    for module in sorted(GENERATED.glob("test_*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        source = next(
            node.value.args[1].value  # SOURCE = SvmSource.beside(__file__, "<relative path>")
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.args[1], ast.Constant)
        )
        svm = str((module.parent / source).resolve())
        for function in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
            call = next(n for n in ast.walk(function) if isinstance(n, ast.Call))
            scenario = call.args[0]
            assert isinstance(scenario, ast.Constant)
            keywords = {k.arg: k.value for k in call.keywords}
            policy, row = keywords["policy"], keywords.get("row")
            assert isinstance(policy, ast.Constant)
            row_text = str(row.value) if isinstance(row, ast.Constant) else ""
            cases[(module.name, function.name)] = (svm, scenario.value, policy.value, row_text)
    return cases


def _verdict(testcase: ET.Element) -> str:
    for kind in ("failure", "error", "skipped"):
        if testcase.find(kind) is not None:
            return kind
    return "passed"


def test_direct_collection_and_generated_modules_give_the_same_verdicts(tmp_path: Path) -> None:
    report = tmp_path / "both.xml"
    env = {**os.environ, "NO_COLOR": "1"}
    command = [sys.executable, "-m", "pytest", "scenarios", "generated", "-q", "-p", "no:cacheprovider", "-n", "0"]
    subprocess.run(
        [*command, f"--junitxml={report}", "-o", "junit_family=xunit1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    generated = _generated_cases()
    direct: dict[CaseKey, str] = {}
    through_modules: dict[CaseKey, str] = {}
    for testcase in ET.parse(report).getroot().iter("testcase"):
        prop = testcase.find(f"properties/property[@name='{CASE_PROPERTY}']")
        if prop is not None:
            path, scenario, policy, row = prop.attrib["value"].split("|")
            direct[(str(Path(path).resolve()), scenario, policy, row)] = _verdict(testcase)
            continue
        module = testcase.attrib.get("classname", "").rsplit(".", 1)[-1] + ".py"
        key = generated.get((module, testcase.attrib["name"]))
        if key is not None:
            through_modules[key] = _verdict(testcase)
    assert direct, "direct collection found no cases"
    assert set(direct) == set(through_modules), "the two paths ran different cases: regenerate generated/"
    differing = {key: (direct[key], through_modules[key]) for key in direct if direct[key] != through_modules[key]}
    assert not differing


def test_generated_suite_is_up_to_date() -> None:
    """`svmdsl gen --check scenarios/ -o generated/` is clean (CI runs the same check through the console script;
    `tests/runtime/test_cli.py` tests the script itself)."""
    completed = subprocess.run(
        [sys.executable, "-m", "dsl", "gen", "--check", "scenarios/", "-o", "generated/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
