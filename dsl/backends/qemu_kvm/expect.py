"""`svmdsl run --backend qemu-kvm`: hold each scenario's expectations to what real KVM did.

Real KVM shows fewer observables than the engine: the frames the guest's handlers found, KVM's exits (kvm_exit:
exit code, EXITINTINFO, RIP) and its injection tracepoints. Expectations on anything else — the VMCB at each
VMRUN (event_inj, next_rip, rip), KVM's soft_int_* record, vmcb12, evidence — are counted as not observable.
Expectations are read for the policy of the booted kernel only; the others are for other KVM releases.
"""

from __future__ import annotations

import attrs

from dsl.backends.qemu_kvm import report
from dsl.backends.qemu_kvm.compare import ComparisonReport, classify, subject_vector
from dsl.backends.qemu_kvm.lower import injected_event
from dsl.compiler.lowered import Case, Check, Probe
from dsl.engine.program import Program
from dsl.engine.result import EVENT_VALID, Delivery, ExitRecord, Result
from dsl.engine.vocab import EventType, Evidence, ExitCode, Observable, Outcome
from dsl.runtime.runner import evaluate
from dsl.runtime.verdict import Mismatch

#: What a real run shows (see the module docstring).
REAL_OBSERVABLES = (
    Observable.DELIVERED,
    Observable.RETURN_RIP,
    Observable.DELIVERED_ERROR_CODE,
    Observable.DELIVERY_COUNT,
    Observable.EXIT_CODE,
    Observable.EXIT_INT_INFO,
    Observable.EXIT_RIP,
    Observable.OUTCOME,
    Observable.TRACEPOINTS,
    Observable.REQUEUED,
)
#: The guest program's own exits: HLT in a handler or at the end, and host interrupts between instructions.
_MECHANISM_EXITS = (ExitCode.HLT, ExitCode.INTR)
_OUTCOMES = {outcome.value: outcome for outcome in Outcome}


@attrs.frozen
class CaseReport:
    case: Case
    mismatches: tuple[Mismatch, ...]
    checked: int
    not_observable: int


def observable(check: Check) -> bool:
    if isinstance(check.target, Probe):
        return check.event_type is None  # the frame does not say which EVENTINJ type delivered it
    return check.target in REAL_OBSERVABLES


def real_result(program: Program, real: report.Observation) -> Result:
    """The engine's Result shape filled with what real KVM showed (the rest left empty)."""
    injected = injected_event(program) is not None
    outcome = _OUTCOMES.get(classify(real, subject_vector(program), injected=injected), Outcome.UNSUPPORTED)
    exits = tuple(
        ExitRecord(
            e.exit_code if e.exit_code is not None else ExitCode.INVALID, e.exit_int_info, 0, 0, e.rip, False, False
        )
        for e in real.exits
        if e.exit_int_info & EVENT_VALID or e.exit_code not in _MECHANISM_EXITS
    )
    deliveries = tuple(
        Delivery(d.vector, EventType.EXCEPTION, d.return_rip, d.error_code, injected=False) for d in real.deliveries
    )
    requeued = tuple(e.exit_int_info for e in exits if e.exit_int_info & EVENT_VALID)
    reinjected = any(compare_reinjected(line) for line in real.injections)
    return Result(
        outcome=outcome,
        evidence=Evidence.VERIFIED,
        exits=exits,
        deliveries=deliveries,
        requeued=requeued if reinjected else (),
        subject_vector=subject_vector(program),
        tracepoints=real.tracepoints,
    )


def compare_reinjected(line: str) -> bool:
    return line.endswith("[reinjected]")


def hold(cases: tuple[Case, ...], comparisons: ComparisonReport, texts: dict[str, str]) -> tuple[CaseReport, ...]:
    """Each case's observable expectations evaluated on the real run of its row."""
    by_key = {c.subject.key: c for c in comparisons.comparisons if c.observation is not None}
    reports = []
    for case in cases:
        comparison = by_key.get((case.loc.file, case.scenario, case.row))
        if comparison is None or comparison.observation is None:
            continue
        result = real_result(comparison.subject.program, comparison.observation)
        checks = [check for check in case.checks if observable(check)]
        text = texts.get(case.loc.file, "")
        mismatches = tuple(m for m in (evaluate(check, result, text) for check in checks) if m is not None)
        reports.append(CaseReport(case, mismatches, len(checks), len(case.checks) - len(checks)))
    return tuple(reports)
