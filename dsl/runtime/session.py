"""Run every case under some paths: the report behind `svmdsl run` (text and JSON) and the documentation.

A case of a scenario tagged `@pending` (a known gap of the engine or the language) that does not hold is
*pending*: listed apart from the failures, and counted apart. It still makes the run fail: `svmdsl run` exits 0
only if every expectation held.

A case *diverges from architectural* when its scenario also runs under `architectural` (same row and profile)
and the two runs differ in what the guest sees: the outcome class, the first delivered vector, its return
address, how many times the subject event was delivered, or a spurious #DB.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import attrs

from dsl.compiler.names import PENDING_TAG
from dsl.engine.result import Result
from dsl.engine.vocab import HardwareProfile, Observable, PolicyName, policy_by_name
from dsl.runtime.discover import ScenarioFile, scenario_files
from dsl.runtime.loader import load
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


#: Scenario source (bytes) from which `run_paths(jobs=0)` starts a worker pool. Below it, forking the workers and
#: sending their results back costs about what they save: on two cores the library (150 KB) and the bench_runners
#: corpus of 1,000 scenarios (170 KB) ran faster in one process, 10,000 scenarios (1.7 MB) in two.
POOL_MIN_BYTES = 256 * 1024

_POLICY_INDEX: dict[str, int] = {p.value: i for i, p in enumerate(PolicyName)}


def policy_order(name: str) -> tuple[int, str]:
    """Sort key for policy names: the vocabulary's order, names it does not know last (alphabetically)."""
    return (_POLICY_INDEX.get(name, len(_POLICY_INDEX)), name)


@attrs.frozen
class Entry:
    """One case's result in a run, with the topic of its file and the profile override it ran under."""

    topic: str
    result: CaseResult
    profile: str | None = None
    visible: tuple[object, ...] | None = attrs.field(default=None, eq=False, repr=False)  # see GUEST_VISIBLE
    #: `visible` of the architectural run of the same scenario, row and profile, when there is one.
    architectural: tuple[object, ...] | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def diverges(self) -> bool | None:
        """Whether the guest sees something else than under `architectural`; None with nothing to compare with."""
        if self.visible is None or self.architectural is None:
            return None
        return self.visible != self.architectural

    @property
    def pending(self) -> bool:
        """A case of a `@pending` scenario that did not hold: a known gap, reported apart from the failures."""
        return PENDING_TAG in self.result.tags and self.result.verdict is not Verdict.HELD

    @property
    def verdict_word(self) -> str:
        """`held`, `failed`, `error`, or `pending`."""
        return "pending" if self.pending else self.result.verdict.value


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
    pending: int = 0
    divergences: int = 0


@attrs.frozen
class RunReport:
    """Everything `svmdsl run` reports."""

    entries: tuple[Entry, ...]
    file_errors: tuple[FileError, ...]
    files: int

    @property
    def ok(self) -> bool:
        """True only if every file loaded and every case held (pending ones included)."""
        return not self.file_errors and all(e.result.verdict is Verdict.HELD for e in self.entries)

    def count(self, verdict: Verdict) -> int:
        """Cases with this verdict, pending ones left out (see `pending_count`)."""
        return sum(1 for e in self.entries if e.result.verdict is verdict and not e.pending)

    @property
    def pending_count(self) -> int:
        return sum(1 for e in self.entries if e.pending)

    def scenarios_per_topic(self) -> dict[str, int]:
        """Distinct scenarios (outline rows counted) per topic, topics sorted."""
        seen = {(e.topic, e.result.key.file, e.result.key.scenario, e.result.key.row) for e in self.entries}
        counts = Counter(topic for topic, *_ in seen)
        return dict(sorted(counts.items()))

    def per_policy(self) -> dict[str, PolicyTally]:
        """Tallies per policy, in the vocabulary's policy order."""
        tallies: dict[str, PolicyTally] = {}
        for entry in self.entries:
            tally = tallies.get(entry.result.key.policy, PolicyTally())
            verdict = entry.result.verdict
            counted = not entry.pending
            tallies[entry.result.key.policy] = PolicyTally(
                cases=tally.cases + 1,
                held=tally.held + (verdict is Verdict.HELD),
                failed=tally.failed + (counted and verdict is Verdict.FAILED),
                error=tally.error + (counted and verdict is Verdict.ERROR),
                pending=tally.pending + entry.pending,
                divergences=tally.divergences + bool(entry.diverges),
            )
        return dict(sorted(tallies.items(), key=lambda item: policy_order(item[0])))


def run_paths(
    paths: tuple[str, ...],
    *,
    policies: tuple[str, ...] = (),
    profiles: tuple[str, ...] = (),
    jobs: int = 1,
    on_file: Callable[[int, int], None] | None = None,
) -> RunReport:
    """Run every case under `paths`; `policies` restricts to those policies, `profiles` overrides the hardware.

    With `jobs` > 1, files run in that many worker processes and the entries do not keep the engine's `Result`
    (their verdicts, mismatches and traces are the same); with 1 (the default) everything runs here and each
    entry keeps it; with 0, one worker per available core once the files are large enough to pay for a pool
    (POOL_MIN_BYTES), else here. `on_file(done, total)` reports progress in files. Raises `PathProblem` for a path
    that does not exist; every other problem is in the report.
    """
    files = scenario_files(paths)
    work = [_FileWork(file, policies, profiles) for file in files]
    outcomes: list[tuple[FileError | None, list[Entry]]] = []
    workers = min(jobs or _automatic_workers(files), len(files))
    if workers > 1:
        # Workers fork from here: import the compiler once now, not once in each of them (loader imports it
        # on the first file it parses).
        import dsl.compiler.lower  # noqa: F401

        with ProcessPoolExecutor(max_workers=workers, mp_context=_process_context()) as pool:
            for outcome in pool.map(_run_file_detached, work):
                outcomes.append(outcome)
                if on_file is not None:
                    on_file(len(outcomes), len(files))
    else:
        for item in work:
            outcomes.append(_run_file(item))
            if on_file is not None:
                on_file(len(outcomes), len(files))
    file_errors = tuple(error for error, _ in outcomes if error is not None)
    entries = [entry for _, file_entries in outcomes for entry in file_entries]
    return RunReport(_with_divergences(entries), file_errors, files=len(files))


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _automatic_workers(files: tuple[ScenarioFile, ...]) -> int:
    """One worker per core for a large library; one process (no pool) when starting workers and sending their
    results back would cost about as much as they save."""
    size = 0
    for file in files:
        try:
            size += file.path.stat().st_size
        except OSError:  # reported as that file's error when it is run
            continue
    return available_cores() if size >= POOL_MIN_BYTES else 1


@attrs.frozen
class _FileWork:
    file: ScenarioFile
    policies: tuple[str, ...]
    profiles: tuple[str, ...]


def _run_file(work: _FileWork) -> tuple[FileError | None, list[Entry]]:
    """Every case of one file (load errors become a FileError)."""
    loaded = load(work.file.path)
    if loaded.error is not None or loaded.lowered is None:
        message = loaded.error.render() if loaded.error is not None else "could not be loaded"
        return FileError(loaded.display, work.file.topic, message), []
    wanted = {policy_by_name(p) for p in work.policies}
    overrides: tuple[HardwareProfile | None, ...] = tuple(HardwareProfile(p) for p in work.profiles) or (None,)
    entries = []
    for case in loaded.lowered.cases:
        if work.policies and case.policy not in wanted:
            continue
        for profile in overrides:
            result = execute(case, loaded, profile=profile)
            visible = _visible(result.result) if result.result is not None else None
            entries.append(Entry(work.file.topic, result, profile.value if profile else None, visible=visible))
    return None, entries


def _run_file_detached(work: _FileWork) -> tuple[FileError | None, list[Entry]]:
    """`_run_file` in a worker process: the engine Results stay behind (they are large to send back), their
    traces go as text (reports show them)."""
    error, entries = _run_file(work)
    return error, [attrs.evolve(e, result=attrs.evolve(e.result, trace=e.result.trace, result=None)) for e in entries]


def _process_context() -> multiprocessing.context.BaseContext:
    # fork starts workers with everything imported already; elsewhere the platform default
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def _with_divergences(entries: list[Entry]) -> tuple[Entry, ...]:
    def place(entry: Entry) -> tuple[str, str, int | None, str | None]:
        key = entry.result.key
        return (key.file, key.scenario, key.row, entry.profile)

    reference = {
        place(e): e.visible
        for e in entries
        if e.result.key.policy == PolicyName.ARCHITECTURAL.value and e.visible is not None
    }
    return tuple(
        entry
        if entry.result.key.policy == PolicyName.ARCHITECTURAL.value
        else attrs.evolve(entry, architectural=reference.get(place(entry)))
        for entry in entries
    )


def _visible(result: Result) -> tuple[object, ...]:
    return tuple(result.observe(observable) for observable in GUEST_VISIBLE)
