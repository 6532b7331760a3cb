"""What generated pytest modules call: `SOURCE.check(scenario, policy=…, line=…, row=…)`.

A thin layer over `run_case`: it locates the `.svm` file relative to the generated module, runs the case, and
fails the test with the same explanation the CLI and the direct-collection plugin print (no Python traceback:
the explanation points at the `.svm` line). A generated test whose recorded line no longer matches the scenario
fails too: the module is stale and `svmdsl gen` must run again.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from dsl.compiler.names import PENDING_REASON
from dsl.runtime.runner import run_case
from dsl.runtime.verdict import CaseResult, Verdict

#: How a case of an `@pending` scenario is marked, here and by the direct-collection plugin.
PENDING = pytest.mark.xfail(reason=PENDING_REASON, strict=False)


@attrs.frozen
class SvmSource:
    """The scenario file a generated module runs."""

    path: Path

    @classmethod
    def beside(cls, module_file: str, relative: str) -> SvmSource:
        """The file at `relative` (posix) from the folder of the generated module `module_file`."""
        return cls(Path(module_file).resolve().parent / relative)

    def result(self, scenario: str, *, policy: str, line: int, row: int | None = None) -> CaseResult:
        """Run the case and return its result (a stale line makes it an error)."""
        result = run_case(self.path, scenario, policy, row)
        if result.verdict is not Verdict.ERROR and result.line != line:
            stale = (
                f"{result.key.file}:{line}: the generated test expected {scenario!r} at line {line}, "
                f"but it is at line {result.line}: regenerate with `svmdsl gen`\n"
            )
            return attrs.evolve(result, verdict=Verdict.ERROR, error=stale)
        return result

    def check(self, scenario: str, *, policy: str, line: int, row: int | None = None) -> None:
        """Run the case; fail the calling test with the explanation unless every expectation held."""
        __tracebackhide__ = True
        result = self.result(scenario, policy=policy, line=line, row=row)
        if result.verdict is not Verdict.HELD:
            pytest.fail(result.explain(), pytrace=False)
