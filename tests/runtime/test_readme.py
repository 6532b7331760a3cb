"""The README's example scenario is real: it parses, checks and holds under every policy it names (EX-01)."""

from __future__ import annotations

import re
from pathlib import Path

from dsl.runtime.loader import load
from dsl.runtime.runner import execute
from dsl.runtime.verdict import Verdict

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_scenario_holds(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## What a scenario looks like", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.DOTALL)
    assert block is not None
    scenario = tmp_path / "readme.svm"
    scenario.write_text(block.group(1))
    loaded = load(scenario)
    assert loaded.lowered is not None, loaded.error.render() if loaded.error else ""
    results = [execute(case, loaded) for case in loaded.lowered.cases]
    assert [r.key.policy for r in results] == ["kvm-5.19", "kvm-6.0", "architectural"]
    assert all(r.verdict is Verdict.HELD for r in results), "\n".join(r.explain() for r in results)
