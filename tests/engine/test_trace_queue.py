"""KVM's event queue in the trace: entries that change it carry `Change("queue", old, new)` in words."""

from __future__ import annotations

import pytest

from dsl.engine import Change, Result, TraceEntry
from dsl.engine.policies import implemented
from dsl.engine.result import Action
from dsl.engine.vocab import CpuMode, FaultKind, InjectionSource, PolicyName

from .builders import (
    BP,
    INT3,
    INTO,
    KVM_5_19,
    KVM_6_0,
    KVM_7_1,
    cut_short,
    execute_cut_short,
    inject,
    options,
    soft_int,
)

NOTHING = "—"
NPF = FaultKind.NPF


def queue_changes(result: Result) -> list[tuple[Action, str, object, object]]:
    return [(e.action, e.rule, c.old, c.new) for e in result.trace for c in e.changes if c.name == "queue"]


def _queue_change(entry: TraceEntry) -> Change | None:
    return next((c for c in entry.changes if c.name == "queue"), None)


def test_userspace_soft_interrupt_is_queued_in_words() -> None:
    """K-5.19-19, K-6.0-7: KVM_SET_VCPU_EVENTS with interrupt.soft puts INT 0x80 in the queue as injected."""
    result = inject(soft_int(0x80), KVM_7_1, code=b"\xcd\x80")
    assert queue_changes(result)[0] == (Action.QUEUE, "K-5.19-19", NOTHING, "INT 0x80 soft injected")


def test_requeued_bp_is_queued_as_injected() -> None:
    """K-6.0-9: the #BP EXITINTINFO reports after an #NPF is requeued as injected."""
    result = execute_cut_short(INT3, KVM_7_1, opts=options(npt=True), fault=FaultKind.NPF)
    assert queue_changes(result)[0] == (Action.REQUEUE, "K-6.0-9", NOTHING, "#BP injected")


def test_the_completion_empties_the_queue() -> None:
    """K-5.19-19, K-5.19-12, K-5.19-14: userspace's #BP is injected; its delivery is cut short; the completion
    clears the queue and, in kvm-5.19, does not requeue a soft exception."""
    result = inject(BP, KVM_5_19, before=(cut_short(),))
    assert queue_changes(result) == [
        (Action.QUEUE, "K-5.19-19", NOTHING, "#BP injected"),
        (Action.COMPLETE, "K-5.19-12", "#BP injected", NOTHING),
    ]


def test_emulator_skip_clears_the_queued_exception() -> None:
    """K-5.19-7 step b: the look-ahead skip (nrips=1, next_rip 0 after an #NPF) empties KVM's exception queue."""
    result = execute_cut_short(
        INTO, KVM_6_0, mode=CpuMode.PROTECTED_32, opts=options(npt=True), fault=FaultKind.NPF, rflags=0xA02
    )
    changes = queue_changes(result)
    assert changes[:2] == [
        (Action.REQUEUE, "K-6.0-9", NOTHING, "#OF injected"),
        (Action.DECODE, "K-5.19-7", "#OF injected", NOTHING),
    ]


def test_retry_never_touches_the_queue() -> None:
    """K-5.19-14: kvm-5.19 does not requeue a cut-short INT3: the queue stays empty throughout."""
    assert queue_changes(execute_cut_short(INT3, KVM_5_19)) == []


def test_guest_debug_bp_is_pending_then_injected() -> None:
    """K-5.19-20, K-5.19-18: a debugger's #BP waits as pending; inject_pending_event moves it to injected."""
    result = inject(BP, KVM_5_19, source=InjectionSource.GUEST_DEBUG, opts=options(guest_debug=True))
    states = [new for _, _, _, new in queue_changes(result)]
    assert states[:2] == ["#BP pending", "#BP injected"]


@pytest.mark.parametrize("policy", implemented())
def test_queue_changes_chain(policy: PolicyName) -> None:
    """The trace is complete: each queue change starts from the state the previous one ended in, and only the
    entries that can change the queue (queue, requeue, inject, drop, cancel, complete …) report one."""
    results = (
        execute_cut_short(INT3, policy, faults=2, opts=options(npt=True), fault=NPF),
        execute_cut_short(INTO, policy, mode=CpuMode.PROTECTED_32, rflags=0xA02, opts=options(npt=True), fault=NPF),
        inject(BP, policy, before=(cut_short(NPF),), opts=options(npt=True)),
        inject(soft_int(0x80), policy, code=b"\xcd\x80", opts=options(npt=True)),
    )
    assert any(_queue_change(entry) for entry in results[2].trace)  # userspace's #BP enters the queue
    for result in results:
        shown: object = NOTHING
        for entry in result.trace:
            change = _queue_change(entry)
            if change is None:
                continue
            assert change.old == shown != change.new
            assert entry.action not in (Action.VMRUN, Action.VMEXIT, Action.DELIVER, Action.IRET)
            shown = change.new
