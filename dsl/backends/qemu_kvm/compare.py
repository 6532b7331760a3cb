"""Hold the engine to real KVM: run each scenario row on the engine (profile qemu-tcg, the kernel's policy) and
under real kvm_amd in QEMU, and list every observable on which they disagree.

A scenario is compared once per outline row, whatever policies it names: the policy is the kernel's. Rows the
backend cannot express are listed with the reason, never dropped silently.

The engine is deterministic; a real run is not quite: the host may cancel an entry after KVM injected an event
(a timer, a pending signal), which the scenario does not script. KVM then takes the event back and injects it
again, with the `[reinjected]` tag where it re-queues it, or, before the seed series, drops an injected soft
exception and unwinds RIP. So a row that disagrees is run again in a second boot, and only a disagreement that
comes back counts; one that does not is kept as `disturbed`, and reports list it apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs

from dsl.backends.qemu_kvm import boot, report
from dsl.backends.qemu_kvm.kernel import Kernel
from dsl.backends.qemu_kvm.lower import GuestCase, NotExpressible, injected_event, lower, soft_vector
from dsl.engine import EngineError, Program, Result, events, run
from dsl.engine.result import EVENT_VALID
from dsl.engine.vocab import EventType, HardwareProfile, Outcome, PolicyName, SoftIntReading, Vector

#: Library tag of scenarios the engine does not model yet: listed, not compared.
PENDING_TAG = "pending"
#: K-6.19-6 is read two ways for INT n >= 0x80; real kvm_amd follows reading B (the sign-extended imm8 never
#: matches): on 6.1.192 `int 0x80` whose delivery is cut short is retried, not re-injected (tests/backends).
REAL_SOFT_INT_READING = SoftIntReading.B

#: The tag KVM appends to kvm_inj_* when it re-injects an event from EXITINTINFO (K-6.0-18).
REINJECTED = "[reinjected]"
#: Policies whose kvm_inj_exception has no re-injection flag (K-5.19-25: a61d7c5432ac is v6.0), while the kernel
#: the backend boots for them prints it: Debian's 5.10.223 says `#BP (0x0) [reinjected]` (the rest of its text is
#: v5.19's, which the policy prints). The flag is dropped from the real lines so that the policy keeps to v5.19.
UNFLAGGED_POLICIES: tuple[PolicyName, ...] = (PolicyName.KVM_5_19,)
#: How the engine's Result.notes start when a run stopped at its bound (dsl/engine/runner.py).
ENGINE_BOUND_NOTE = "run stopped"


@attrs.frozen
class Subject:
    """One scenario (outline row) to compare: where it is and its program under the kernel's policy."""

    label: str  # file:line: scenario [row n]
    program: Program
    pending: bool = False
    key: tuple[str, str, int | None] = ("", "", None)  # (file as displayed, scenario, row)


@attrs.frozen
class Disagreement:
    observable: str
    engine: str
    real: str


@attrs.frozen
class Comparison:
    subject: Subject
    lowered: GuestCase | NotExpressible
    observation: report.Observation | None = None
    disagreements: tuple[Disagreement, ...] = ()
    unspecified: bool = False  # the engine says the sources are silent: real KVM's answer is a finding, not a failure
    #: What the first boot disagreed on, when the second agreed: an event the scenario does not script disturbed it.
    disturbed: tuple[Disagreement, ...] = ()

    @property
    def expressible(self) -> bool:
        return isinstance(self.lowered, GuestCase)


@attrs.frozen
class ComparisonReport:
    kernel: Kernel
    policy: PolicyName
    comparisons: tuple[Comparison, ...]
    boot_seconds: float
    boots: int = 1

    @property
    def boots_text(self) -> str:
        """How many boots it took (a second runs the rows that disagreed), for the reports."""
        return "one boot" if self.boots == 1 else f"{self.boots} boots (the second for the rows that disagreed)"

    @property
    def disagreeing(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.disagreements)

    @property
    def compared(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.expressible)


def subjects(files: Iterable[Path], policy: PolicyName) -> tuple[Subject, ...]:
    """Every scenario row of `files`, once, as a program under `policy` on the qemu-tcg profile."""
    from dsl.runtime.loader import load  # the runtime stage; imported here so the backend stays importable alone

    found: dict[tuple[str, str, int | None], Subject] = {}
    for path in files:
        loaded = load(path)
        if loaded.lowered is None:
            continue
        for case in loaded.lowered.cases:
            key = (loaded.display, case.scenario, case.row)
            if key in found:
                continue
            row = f" [row {case.row}]" if case.row is not None else ""
            label = f"{loaded.display}:{case.loc.line}: {case.display_title}{row}"
            options = attrs.evolve(case.program.options, soft_int_reading=REAL_SOFT_INT_READING)
            program = attrs.evolve(case.program, profile=HardwareProfile.QEMU_TCG, policy=policy, options=options)
            found[key] = Subject(label, program, pending=PENDING_TAG in case.tags, key=key)
    return tuple(found.values())


def compare(items: tuple[Subject, ...], kernel: Kernel, cache: Path) -> ComparisonReport:
    """Lower every subject, boot once for all expressible ones, and compare each with the engine."""
    lowered = tuple(
        NotExpressible("pending in the library: the engine does not model it yet")
        if subject.pending
        else lower(subject.program, f"c{index}")
        for index, subject in enumerate(items)
    )
    cases = tuple(item for item in lowered if isinstance(item, GuestCase))
    observations, seconds = _boot(kernel, cases, cache)
    comparisons = []
    for subject, item in zip(items, lowered, strict=True):
        if isinstance(item, NotExpressible):
            comparisons.append(Comparison(subject, item))
            continue
        observation = observations.get(item.case_id, report.Observation(item.case_id, error="no output for this case"))
        unspecified = _unspecified(subject.program)
        found = disagreements(subject.program, observation)
        comparisons.append(Comparison(subject, item, observation, found, unspecified))
    # An unspecified row's disagreements are findings, not failures: they need no confirmation.
    doubtful = tuple(c.lowered for c in comparisons if c.disagreements and not c.unspecified)
    if not doubtful:
        return ComparisonReport(kernel, kernel.policy, tuple(comparisons), seconds)
    again, more_seconds = _boot(kernel, tuple(case for case in doubtful if isinstance(case, GuestCase)), cache)
    confirmed = tuple(_confirmed(c, again) if c.lowered in doubtful else c for c in comparisons)
    return ComparisonReport(kernel, kernel.policy, confirmed, seconds + more_seconds, boots=2)


def _boot(kernel: Kernel, cases: tuple[GuestCase, ...], cache: Path) -> tuple[dict[str, report.Observation], float]:
    """Every case's observation from one boot of `kernel`, and how long the boot took."""
    if not cases:
        return {}, 0.0
    output = boot.boot(kernel, cases, cache)
    return report.parse(output.results, {case.case_id: case.mode for case in cases}), output.seconds


def _confirmed(first: Comparison, again: dict[str, report.Observation]) -> Comparison:
    """`first` as the second boot leaves it: its disagreements if they come back, else disturbed."""
    assert isinstance(first.lowered, GuestCase)  # only expressible rows disagree
    observation = again.get(first.lowered.case_id)
    if observation is None or disagreements(first.subject.program, observation):
        return first
    return attrs.evolve(first, observation=observation, disagreements=(), disturbed=first.disagreements)


def disagreements(program: Program, real: report.Observation) -> tuple[Disagreement, ...]:
    """Every observable on which the engine's run of `program` and real KVM's differ."""
    try:
        result = run(program)
    except EngineError as problem:
        return (Disagreement("engine", f"error: {problem}", "ran"),)
    injected = injected_event(program) is not None
    subject = subject_vector(program)
    engine_deliveries, real_deliveries = result.deliveries, real.deliveries
    if real.stop == report.STOP_AT_LIMIT:
        # Both sides cut a loop at their own bound: compare what both saw (the engine's bound counts entries, and
        # a loop of injected events, e.g. KVM's #UD, costs one entry per delivery).
        shown = len(real_deliveries)
        if any(note.startswith(ENGINE_BOUND_NOTE) for note in result.notes):
            shown = min(shown, len(engine_deliveries))
        engine_deliveries, real_deliveries = engine_deliveries[:shown], real_deliveries[:shown]
    pairs = [
        ("outcome", _engine_outcome(result, injected=injected), classify(real, subject, injected=injected)),
        (
            "deliveries (vector, return address)",
            _listing((d.vector, d.return_rip) for d in engine_deliveries),
            _listing((d.vector, d.return_rip) for d in real_deliveries),
        ),
        ("vectoring exits (exit code, EXITINTINFO)", _engine_exits(result), _real_exits(real)),
        ("RIP at the VMRUN after the first vectoring exit", _engine_reentry(result), _real_reentry(real)),
        ("injection tracepoints", _engine_injections(result), _real_injections(real, program.policy)),
    ]
    return tuple(Disagreement(name, engine, actual) for name, engine, actual in pairs if engine != actual)


def _unspecified(program: Program) -> bool:
    try:
        return run(program).outcome is Outcome.UNSPECIFIED
    except EngineError:
        return False


def subject_vector(program: Program) -> int | None:
    """The vector of the scenario's subject: the event userspace injects, else the soft event of the instruction."""
    event = injected_event(program)
    return event.vector if event is not None else soft_vector(program.setup)


def classify(real: report.Observation, subject: int | None, *, injected: bool = False) -> str:
    """The outcome class of a real run, in the engine's words (README glossary), or what went wrong.

    `subject` is the vector of the event userspace injected (`injected`) or the one the scenario's instruction
    raises as a soft event (None: not a soft instruction).
    """
    if real.error is not None:
        return f"error: {real.error}"
    vectors = [d.vector for d in real.deliveries]
    if real.stop not in (report.STOP_AT_END, report.STOP_AT_LIMIT):
        return f"stopped: {real.stop} at 0x{real.stop_rip:x}"
    if subject is None:  # nothing soft raised: only faults of the instruction itself, if anything
        return Outcome.DELIVERED.value if vectors and real.stop == report.STOP_AT_END else Outcome.NO_EVENT.value
    if vectors.count(subject) > 1:
        return Outcome.DUPLICATED.value  # e.g. injected, then the instruction runs again
    if real.stop == report.STOP_AT_LIMIT and any(vectors.count(vector) > 1 for vector in vectors):
        return Outcome.DUPLICATED.value  # a delivery that returns onto its own instruction, again and again
    delivered = subject in vectors
    exits = [e for e in _valid_exits(real) if _carries(e.exit_int_info, subject)]
    if not exits:
        if delivered:
            return Outcome.DELIVERED.value
        return Outcome.LOST.value if injected else Outcome.NO_EVENT.value
    if not delivered:
        return Outcome.LOST.value
    # An injected event has no instruction to retry: delivered after the exit, KVM re-injected it (an NMI's
    # re-injection has no tracepoint of its own).
    if injected or any(REINJECTED in line for line in real.injections):
        return Outcome.REINJECT.value
    return Outcome.RETRY.value


def _carries(exit_int_info: int, subject: int) -> bool:
    """EXITINTINFO holds the subject; an NMI's vector field may read 0 (KVM writes 0, and TCG copies EVENTINJ)."""
    if events.type_of(exit_int_info) == EventType.NMI:
        return subject == Vector.NMI
    return events.vector_of(exit_int_info) == subject


def _engine_outcome(result: Result, *, injected: bool) -> str:
    # A drop (README glossary) is what the guest sees next: for a guest instruction a retry; for an injected
    # event, the guest's own instruction delivering it anyway, or nothing (lost).
    if result.outcome is Outcome.DROPPED:
        if not injected:
            return Outcome.RETRY.value
        delivered = any(d.vector == result.subject_vector for d in result.deliveries)
        return Outcome.DELIVERED.value if delivered else Outcome.LOST.value
    return str(result.outcome.value)


def _engine_exits(result: Result) -> str:
    valid = (e for e in result.exits if e.exit_int_info & EVENT_VALID and not e.cancelled)
    return _listing((e.exit_code, e.exit_int_info) for e in valid)


def _valid_exits(real: report.Observation) -> tuple[report.RealExit, ...]:
    return tuple(e for e in real.exits if e.exit_int_info & EVENT_VALID)


def _real_exits(real: report.Observation) -> str:
    return _listing((e.exit_code if e.exit_code is not None else e.reason, e.exit_int_info) for e in _valid_exits(real))


def _engine_reentry(result: Result) -> str:
    """As real KVM's trace is read: the first entry after the first exit with a valid EXITINTINFO (other exits, e.g.
    KVM's #UD intercept, come before it)."""
    vectoring = [index for index, e in enumerate(result.exits) if e.exit_int_info & EVENT_VALID and not e.cancelled]
    if not vectoring:
        return "-"
    after = [vmrun.rip for vmrun in result.vmruns if vmrun.exits_before > vectoring[0]]
    return f"0x{after[0]:x}" if after else "-"


def _real_reentry(real: report.Observation) -> str:
    seen_exit = False
    for line in real.tracepoints:
        exit_match, entry_match = report._EXIT.search(line), report._ENTRY.search(line)
        if exit_match and int(exit_match["info"], 0) & EVENT_VALID:
            seen_exit = True
        elif entry_match and seen_exit:
            return f"0x{int(entry_match['rip'], 0):x}"
    return "-"


def _engine_injections(result: Result) -> str:
    return " | ".join(sorted({line for line in result.tracepoints if line.startswith("kvm_inj_")})) or "-"


def _real_injections(real: report.Observation, policy: PolicyName) -> str:
    lines = real.injections
    if policy in UNFLAGGED_POLICIES:
        lines = tuple(line.replace(f" {REINJECTED}", "") for line in lines)
    return " | ".join(sorted(set(lines))) or "-"


#: Long delivery loops are shown by their first entries and their length.
_LISTED = 4


def _listing(items: Iterable[tuple[int | str, int | None]]) -> str:
    shown = [f"({_hex(a)}, {_hex(b)})" for a, b in items]
    if len(shown) > _LISTED:
        return ", ".join(shown[:_LISTED]) + f", … ({len(shown)} in all)"
    return ", ".join(shown) or "-"


def _hex(value: int | str | None) -> str:
    if value is None:
        return "?"
    return value if isinstance(value, str) else f"0x{value:x}"
