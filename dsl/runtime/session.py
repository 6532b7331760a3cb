"""Run every case under some paths: the report behind `svmdsl run` (text and JSON) and the documentation.

A case *diverges from architectural* when its scenario also runs under `architectural` (same row and profile)
and the two runs differ in what the guest sees: the outcome class, the first delivered vector, its return
address, how many times the subject event was delivered, or a spurious #DB.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import attrs

from dsl.compiler.lowered import Case
from dsl.engine.result import Result
from dsl.engine.vocab import HardwareProfile, Observable, PolicyName, policy_by_name
from dsl.runtime.discover import ScenarioFile, scenario_files
from dsl.runtime.loader import LoadedFile, load
from dsl.runtime.runner import execute
from dsl.runtime.verdict import CaseResult, Verdict

#: What the guest sees, for the divergence comparison (see the module docstring).
GUEST_VISIBLE: tuple[Observable, ...] = (
    Observable.OUTCOME,
    Observable.DELIVERED,
    Observable.RETURN_RIP,
    Observable.DELIVERY_COUNT,
    Observable.SPURIOUS_DB,
)


@attrs.frozen
class Entry:
    """One case's result in a run, with the topic of its file and the profile override it ran under."""

    topic: str
    result: CaseResult
    profile: str | None = None
    diverges: bool | None = None  # None: no architectural run to compare with


@attrs.frozen
class FileError:
    """A file that could not be parsed, checked or lowered: none of its cases ran."""

    file: str
    topic: str
    message: str


@attrs.frozen
class PolicyTally:
    """Counts for one policy."""

    cases: int = 0
    held: int = 0
    failed: int = 0
    error: int = 0
    divergences: int = 0


@attrs.frozen
class RunReport:
    """Everything `svmdsl run` reports."""

    entries: tuple[Entry, ...]
    file_errors: tuple[FileError, ...]
    files: int

    @property
    def ok(self) -> bool:
        """True only if every file loaded and every case held."""
        return not self.file_errors and all(e.result.verdict is Verdict.HELD for e in self.entries)

    def count(self, verdict: Verdict) -> int:
        return sum(1 for e in self.entries if e.result.verdict is verdict)

    def scenarios_per_topic(self) -> dict[str, int]:
        """Distinct scenarios (outline rows counted) per topic, topics sorted."""
        seen = {(e.topic, e.result.key.file, e.result.key.scenario, e.result.key.row) for e in self.entries}
        counts = Counter(topic for topic, *_ in seen)
        return dict(sorted(counts.items()))

    def per_policy(self) -> dict[str, PolicyTally]:
        """Tallies per policy, in the vocabulary's policy order."""
        order = {p.value: i for i, p in enumerate(PolicyName)}
        tallies: dict[str, PolicyTally] = {}
        for entry in self.entries:
            tally = tallies.get(entry.result.key.policy, PolicyTally())
            verdict = entry.result.verdict
            tallies[entry.result.key.policy] = PolicyTally(
                cases=tally.cases + 1,
                held=tally.held + (verdict is Verdict.HELD),
                failed=tally.failed + (verdict is Verdict.FAILED),
                error=tally.error + (verdict is Verdict.ERROR),
                divergences=tally.divergences + bool(entry.diverges),
            )
        return dict(sorted(tallies.items(), key=lambda item: order.get(item[0], len(order))))


def run_paths(
    paths: tuple[str, ...],
    *,
    policies: tuple[str, ...] = (),
    profiles: tuple[str, ...] = (),
    on_case: Callable[[CaseResult], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> RunReport:
    """Run every case under `paths`; `policies` restricts to those policies, `profiles` overrides the hardware.

    Raises `PathProblem` for a path that does not exist; every other problem is in the report.
    """
    files = scenario_files(paths)
    wanted = {policy_by_name(p) for p in policies}
    overrides: tuple[HardwareProfile | None, ...] = tuple(HardwareProfile(p) for p in profiles) or (None,)
    file_errors: list[FileError] = []
    planned: list[tuple[ScenarioFile, LoadedFile, Case, HardwareProfile | None]] = []
    for file in files:
        loaded = load(file.path)
        if loaded.error is not None or loaded.lowered is None:
            message = loaded.error.render() if loaded.error is not None else "could not be loaded"
            file_errors.append(FileError(loaded.display, file.topic, message))
            continue
        for case in loaded.lowered.cases:
            if policies and case.policy not in wanted:
                continue
            planned.extend((file, loaded, case, profile) for profile in overrides)
    if on_total is not None:
        on_total(len(planned))
    entries: list[Entry] = []
    for file, loaded, case, profile in planned:
        result = execute(case, loaded, profile=profile)
        entries.append(Entry(file.topic, result, profile.value if profile else None))
        if on_case is not None:
            on_case(result)
    return RunReport(_with_divergences(entries), tuple(file_errors), files=len(files))


def _with_divergences(entries: list[Entry]) -> tuple[Entry, ...]:
    def place(entry: Entry) -> tuple[str, str, int | None, str | None]:
        key = entry.result.key
        return (key.file, key.scenario, key.row, entry.profile)

    reference = {
        place(e): e.result.result
        for e in entries
        if e.result.key.policy == PolicyName.ARCHITECTURAL.value and e.result.result is not None
    }
    marked = []
    for entry in entries:
        architectural = reference.get(place(entry))
        own = entry.result.result
        if architectural is None or own is None or entry.result.key.policy == PolicyName.ARCHITECTURAL.value:
            marked.append(entry)
            continue
        marked.append(attrs.evolve(entry, diverges=_visible(own) != _visible(architectural)))
    return tuple(marked)


def _visible(result: Result) -> tuple[object, ...]:
    return tuple(result.observe(observable) for observable in GUEST_VISIBLE)
