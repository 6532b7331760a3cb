"""Run lowered cases on the engine and turn results into verdicts.

`run_case(file, scenario, policy, row)` is the one function the CLI, the pytest plugin, the generated modules
and the documentation call, so every path gives the same verdict for the same case.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path

import attrs

from dsl.compiler.lowered import Case, Check, Comparison, Probe
from dsl.engine import EngineError, Result, run
from dsl.engine.result import Observed
from dsl.engine.vocab import HardwareProfile, Observable, PolicyName, policy_by_name
from dsl.errors import make_diagnostic
from dsl.runtime.loader import LoadedFile, load
from dsl.runtime.values import contains, same, show
from dsl.runtime.verdict import CaseKey, CaseResult, Mismatch, Verdict


def run_case(
    file: Path | str,
    scenario: str,
    policy: str,
    row: int | None = None,
    *,
    profile: str | None = None,
) -> CaseResult:
    """Run one case: the scenario titled `scenario` in `file`, under `policy` (and outline row `row`, from 1).

    Never raises for bad input: a file that does not parse, an unknown scenario or policy, or a program the engine
    cannot run gives a result with verdict `error` and a message saying why.
    """
    loaded = load(file)
    key = CaseKey(loaded.display, scenario, policy, row)
    if loaded.error is not None or loaded.lowered is None:
        error = loaded.error.render() if loaded.error is not None else "the file could not be loaded"
        return CaseResult(key, line=1, verdict=Verdict.ERROR, error=error)
    found = find_case(loaded, scenario, policy, row)
    if isinstance(found, str):
        return CaseResult(key, line=1, verdict=Verdict.ERROR, error=found)
    hardware = _profile(profile) if profile else None
    if profile and hardware is None:
        known = ", ".join(p.value for p in HardwareProfile)
        return CaseResult(key, line=1, verdict=Verdict.ERROR, error=f"unknown hardware profile {profile!r}: {known}")
    return execute(found, loaded, profile=hardware)


def find_case(loaded: LoadedFile, scenario: str, policy: str, row: int | None) -> Case | str:
    """The case named by (scenario, policy, row) in a loaded file, or a message saying what is there instead."""
    assert loaded.lowered is not None
    named = _policy(policy)
    if named is not None and (found := loaded.index.get((scenario, named, row))) is not None:
        return found
    scenarios = {s.name: s for s in loaded.lowered.scenarios}
    if scenario not in scenarios:
        near = difflib.get_close_matches(scenario, list(scenarios), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        return f"{loaded.display}: no scenario titled {scenario!r}{hint}"
    offered = sorted({c.policy.value for c in scenarios[scenario].cases})
    rows = sorted({c.row for c in scenarios[scenario].cases if c.row is not None})
    what = f"policy {policy!r}" + (f", row {row}" if row is not None else "")
    extra = f" (rows 1-{rows[-1]})" if rows else ""
    return f"{loaded.display}: scenario {scenario!r} has no case for {what}; its policies: {', '.join(offered)}{extra}"


@functools.cache
def _policy(name: str) -> PolicyName | None:
    return policy_by_name(name)


def _profile(name: str) -> HardwareProfile | None:
    return next((p for p in HardwareProfile if p.value == name), None)


def execute(case: Case, loaded: LoadedFile, *, profile: HardwareProfile | None = None) -> CaseResult:
    """Run a lowered case (optionally under another hardware profile) and evaluate its checks."""
    key = CaseKey(loaded.display, case.scenario, case.policy.value, case.row)
    program = case.program if profile is None else attrs.evolve(case.program, profile=profile)
    line = case.loc.line
    try:
        result = run(program)
    except EngineError as problem:
        message = make_diagnostic(
            loaded.text, case.loc, f"the engine cannot run this scenario under {case.policy.value}: {problem}"
        ).render()
        return CaseResult(key, line, Verdict.ERROR, tags=case.tags, error=message, title=case.title)
    except Exception as bug:  # a defect in the engine must show up as this case's error, not stop the whole run
        message = make_diagnostic(
            loaded.text, case.loc, f"internal error in the engine: {type(bug).__name__}: {bug}"
        ).render()
        return CaseResult(key, line, Verdict.ERROR, tags=case.tags, error=message, title=case.title)
    mismatches = tuple(m for check in case.checks if (m := evaluate(check, result, loaded.text)) is not None)
    return CaseResult(
        key,
        line,
        Verdict.FAILED if mismatches else Verdict.HELD,
        tags=case.tags,
        checks=len(case.checks),
        mismatches=mismatches,
        outcome=result.outcome.value,
        confirmed=result.confirmed,
        title=case.title,
        result=result,
    )


def evaluate(check: Check, result: Result, text: str) -> Mismatch | None:
    """None if the check holds on `result`; otherwise what was expected and what was observed."""
    actual = observe(check, result)
    observable = check.target if isinstance(check.target, Observable) else None
    if check.comparison is Comparison.CONTAINS:
        held = contains(check.expected, actual)
    else:
        held = same(check.expected, actual) == (check.comparison is Comparison.EQ)
    if held:
        return None
    expected = show(check.expected, observable)
    if check.comparison is Comparison.NE:
        expected = f"anything but {expected}"
    elif check.comparison is Comparison.CONTAINS:
        expected = f"an entry matching {expected}"
    diagnostic = make_diagnostic(text, check.loc, "expectation failed")
    return Mismatch(
        file=check.loc.file,
        line=check.loc.line,
        column=check.loc.column,
        expectation=check.text,
        expected=expected,
        actual=show(actual, observable),
        excerpt=_excerpt(diagnostic.render()),
    )


def observe(check: Check, result: Result) -> Observed:
    """The value a check reads: an engine observable, or a probe over every delivery."""
    if isinstance(check.target, Observable):
        return result.observe(check.target, check.pick)
    matching = [
        d
        for d in result.deliveries
        if d.vector == check.vector and (check.event_type is None or d.type is check.event_type)
    ]
    if check.target is Probe.DELIVERED:
        return bool(matching)
    if not matching:
        return None
    if check.target is Probe.ERROR_CODE:
        return matching[0].error_code
    return matching[0].return_rip


def _excerpt(rendered: str) -> str:
    """The source line and caret of a rendered diagnostic (its first line repeats what the report says)."""
    return "\n".join(rendered.splitlines()[1:])
