"""The engine's output: what the CPU and the hypervisor did (the observables), the outcome and the trace.

Every record is immutable. `Result.observe(Observable.X, pick)` is the one generic accessor the language uses
(`expect next_rip == 0x1001`); the records stay available for reports and sequence diagrams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

import attrs

from dsl.engine.vocab import Actor, EventType, Evidence, IdentityEnum, Observable, Outcome, Pick, Vector

#: RFLAGS.RF (resume flag), bit 16.
RFLAGS_RF = 1 << 16


class Action(IdentityEnum):
    """What a trace entry records. Names follow the spec's glossary (skip, unwind, re-stuff, requeue …)."""

    EXECUTE = "execute"  # the guest executes an instruction
    DECODE = "decode"  # KVM's emulator decodes in skip mode (K-5.19-7)
    SKIP = "skip"  # RIP advanced past an instruction
    UNWIND = "unwind"  # RIP put back to the soft event's instruction (K-6.0-11, K-5.19-14)
    SAVE = "save"  # soft_int_* / int3_* bookkeeping recorded
    RESTUFF = "restuff"  # next_rip re-stuffed after an exit cleared it (K-6.0-10)
    REQUEUE = "requeue"  # an event from EXITINTINFO put back into KVM's queue as injected
    QUEUE = "queue"  # an event queued by userspace, guest debug or the decoder
    INJECT = "inject"  # EVENTINJ written
    DROP = "drop"  # the injection hook or the completion discards an event
    VMRUN = "vmrun"  # the CPU enters the guest
    VMEXIT = "vmexit"  # the CPU exits the guest
    DELIVER = "deliver"  # an event is delivered through the guest IDT (a frame pushed)
    FAULT = "fault"  # an exception raised while delivering or fetching
    IRET = "iret"  # the guest's handler returns
    COMPLETE = "complete"  # the completion after a VMRUN (K-5.19-12, K-6.0-9)
    CANCEL = "cancel"  # an entry abandoned after injection
    REFLECT = "reflect"  # an exit forwarded to L1 as an emulated #VMEXIT
    PREPARE = "prepare"  # L0 builds vmcb02 from vmcb12
    RESTORE = "restore"  # nested state saved and restored into a fresh vCPU
    MODIFY = "modify"  # guest memory or page tables change
    HANDLE = "handle"  # L0 or L1 handles an exit (fixes a page, emulates an instruction)
    BUG = "bug"  # the host hits a BUG_ON
    FAIL = "fail"  # a VMRUN or an emulation fails
    NOTE = "note"  # a remark with no state change (e.g. an unspecified case)


class Change(NamedTuple):
    """One state field a trace entry changed."""

    name: str
    old: object
    new: object


class TraceEntry(NamedTuple):
    """One thing the model did: who, what, under which spec rule, and which fields changed.

    A NamedTuple rather than an attrs class: immutable and picklable all the same, and a run creates dozens of
    them, where attrs' frozen __init__ would dominate the engine's time (benchmarks/bench_engine.py).
    """

    actor: Actor
    action: Action
    rule: str
    message: str
    changes: tuple[Change, ...] = ()


@attrs.frozen
class SoftIntRecord:
    """KVM's soft-event record (K-6.0-2): set when KVM injects a soft event, consumed by the next VMRUN."""

    injected: bool = False
    csbase: int = 0
    old_rip: int = 0
    next_rip: int = 0


#: The empty record (nothing injected): one shared instance, as the record is immutable.
NO_SOFT_INT = SoftIntRecord()


# The records every run builds (VMRUNs, deliveries, the Result itself) are frozen but not slotted: a frozen slotted
# class sets each field through `object.__setattr__`, a dict-backed one stores into its dict, about twice as fast
# for these 5-18 fields (benchmarks/bench_engine.py).
@attrs.frozen(slots=False)
class VmrunRecord:
    """The VMCB as a VMRUN consumed it (H-5, H-6), with KVM's bookkeeping at that moment."""

    event_inj: int
    event_inj_err: int
    next_rip: int
    rip: int
    cs_base: int
    rflags: int
    interrupt_shadow: bool
    nested: bool  # a VMRUN of vmcb02 (L2) rather than of the guest / L1
    exits_before: int  # how many #VMEXITs happened before this VMRUN
    soft_int: SoftIntRecord = NO_SOFT_INT
    int3_injected: int = 0
    int3_rip: int = 0
    failed: bool = False  # the VMRUN failed its consistency checks (VMEXIT_INVALID)
    #: EVENTINJ holds an exception KVM queued for the guest while injecting another event (K-6.0-30's #UD);
    #: not the focus: the observables describe the injection of the scenario's event.
    deferred: bool = False

    @property
    def rf(self) -> bool:
        """RFLAGS.RF."""
        return bool(self.rflags & RFLAGS_RF)


@attrs.frozen(slots=False)  # built on every #VMEXIT: see VmrunRecord
class ExitRecord:
    """One #VMEXIT as the CPU wrote it (H-12, H-14)."""

    exit_code: int
    exit_int_info: int
    exit_int_info_err: int
    next_rip: int
    rip: int
    nested: bool  # an exit of L2 (vmcb02)
    reflected: bool  # forwarded to L1
    cancelled: bool = False  # a cancelled entry's synthetic completion (K-5.19-17), not a hardware exit


@attrs.frozen(slots=False)  # built on every run: see VmrunRecord
class Delivery:
    """An event delivered through the guest's IDT: the frame its handler sees."""

    vector: int
    type: EventType
    return_rip: int | None  # None when the sources leave the pushed value unspecified
    error_code: int | None
    injected: bool  # delivered from EVENTINJ (True) or raised by a guest instruction (False)


@attrs.frozen
class Vmcb12Exit:
    """What L1 reads in vmcb12 after a reflected #VMEXIT (K-5.19-24, K-6.0-24, K-7.1-1)."""

    exit_code: int
    exit_int_info: int
    exit_int_info_err: int
    next_rip: int


Observed = int | bool | str | None | Outcome | Evidence | EventType | tuple[str, ...]


def _vector_value(vector: int | None) -> int | None:
    if vector is None:
        return None
    return Vector(vector) if vector in Vector._value2member_map_ else vector


@attrs.frozen(slots=False)  # built on every run: see VmrunRecord
class Result:
    """Everything the engine observed while running one Program."""

    outcome: Outcome
    evidence: Evidence
    vmruns: tuple[VmrunRecord, ...] = ()
    exits: tuple[ExitRecord, ...] = ()
    deliveries: tuple[Delivery, ...] = ()
    requeued: tuple[int, ...] = ()  # EVENTINJ encodings, in order
    vmcb12_exits: tuple[Vmcb12Exit, ...] = ()
    subject_vector: int | None = None  # the soft event the scenario is about (first raised or injected)
    spurious_db: bool = False
    pending_exception: int | None = None
    l1_nmi_masked: bool = False
    debug_exits: int = 0
    emulation_failures: int = 0
    final_rip: int = 0
    outcome_rules: tuple[str, ...] = ()  # rules the outcome depends on
    tracepoints: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    trace: tuple[TraceEntry, ...] = ()

    @property
    def confirmed(self) -> bool:
        """False when the outcome rests on a [D], [I] or [U] rule: "predicted, unconfirmed"."""
        return self.evidence.confirmed

    # -- selection -----------------------------------------------------------------------------------------------

    def vmrun(self, pick: Pick | int = Pick.FOCUS) -> VmrunRecord | None:
        """The VMRUN an observable reads (see Observable for the focus rule)."""
        if not self.vmruns:
            return None
        if isinstance(pick, int):
            return self.vmruns[pick] if -len(self.vmruns) <= pick < len(self.vmruns) else None
        if pick is Pick.FIRST:
            return self.vmruns[0]
        if pick is Pick.LAST:
            return self.vmruns[-1]
        injecting = [run for run in self.vmruns if run.event_inj & EVENT_VALID and not run.deferred]
        if injecting:
            return injecting[-1]
        after_exit = [run for run in self.vmruns if run.exits_before > 0]
        return after_exit[0] if after_exit else self.vmruns[-1]

    def exit(self, pick: Pick | int = Pick.FOCUS) -> ExitRecord | None:
        """The #VMEXIT an observable reads: the first one unless picked otherwise."""
        return _pick(self.exits, pick, Pick.FIRST)

    def delivery(self, pick: Pick | int = Pick.FOCUS) -> Delivery | None:
        """The delivery an observable reads: the first one unless picked otherwise."""
        return _pick(self.deliveries, pick, Pick.FIRST)

    def vmcb12_exit(self, pick: Pick | int = Pick.FOCUS) -> Vmcb12Exit | None:
        """The reflected #VMEXIT L1 saw: the first one unless picked otherwise."""
        return _pick(self.vmcb12_exits, pick, Pick.FIRST)

    # -- the generic accessor --------------------------------------------------------------------------------------

    def observe(self, observable: Observable, pick: Pick | int = Pick.FOCUS) -> Observed:
        """The value of one observable (documented on `Observable`)."""
        reader = _READERS[observable]
        return reader(self, pick)


#: EVENTINJ / EXITINTINFO valid bit (README § Encodings).
EVENT_VALID = 0x8000_0000


_T = TypeVar("_T")
_Reader = Callable[["Result", "Pick | int"], Observed]


def _pick(items: tuple[_T, ...], pick: Pick | int, focus: Pick) -> _T | None:
    if not items:
        return None
    if isinstance(pick, int):
        return items[pick] if -len(items) <= pick < len(items) else None
    chosen = focus if pick is Pick.FOCUS else pick
    return items[0] if chosen is Pick.FIRST else items[-1]


def _run_field(name: str, default: Observed = 0) -> _Reader:
    def read(result: Result, pick: Pick | int) -> Observed:
        run = result.vmrun(pick)
        return default if run is None else getattr(run, name)

    return read


def _soft_field(name: str) -> _Reader:
    def read(result: Result, pick: Pick | int) -> Observed:
        run = result.vmrun(pick)
        if run is None or not run.soft_int.injected:
            return None
        value: int = getattr(run.soft_int, name)
        return value

    return read


def _exit_field(name: str) -> _Reader:
    def read(result: Result, pick: Pick | int) -> Observed:
        record = result.exit(pick)
        return None if record is None else getattr(record, name)

    return read


def _vmcb12_field(name: str) -> _Reader:
    def read(result: Result, pick: Pick | int) -> Observed:
        record = result.vmcb12_exit(pick)
        return None if record is None else getattr(record, name)

    return read


def _delivered(result: Result, pick: Pick | int) -> Observed:
    record = result.delivery(pick)
    return None if record is None else _vector_value(record.vector)


def _delivery_field(name: str) -> _Reader:
    def read(result: Result, pick: Pick | int) -> Observed:
        record = result.delivery(pick)
        return None if record is None else getattr(record, name)

    return read


def _delivery_count(result: Result, _pick_: Pick | int) -> Observed:
    return sum(1 for d in result.deliveries if d.vector == result.subject_vector)


def _soft_injected(result: Result, pick: Pick | int) -> Observed:
    run = result.vmrun(pick)
    return run is not None and run.soft_int.injected


def _plain(name: str) -> _Reader:
    def read(result: Result, _pick_: Pick | int) -> Observed:
        value: Observed = getattr(result, name)
        return value

    return read


def _requeued_event(result: Result, _pick_: Pick | int) -> Observed:
    return result.requeued[0] if result.requeued else 0


def _pending(result: Result, _pick_: Pick | int) -> Observed:
    return _vector_value(result.pending_exception)


_READERS: dict[Observable, _Reader] = {
    Observable.EVENT_INJ: _run_field("event_inj"),
    Observable.EVENT_INJ_ERR: _run_field("event_inj_err"),
    Observable.NEXT_RIP: _run_field("next_rip"),
    Observable.RIP: _run_field("rip"),
    Observable.RFLAGS: _run_field("rflags"),
    Observable.RF: _run_field("rf", False),
    Observable.INTERRUPT_SHADOW: _run_field("interrupt_shadow", False),
    Observable.EXIT_CODE: _exit_field("exit_code"),
    Observable.EXIT_INT_INFO: _exit_field("exit_int_info"),
    Observable.EXIT_INT_INFO_ERR: _exit_field("exit_int_info_err"),
    Observable.EXIT_NEXT_RIP: _exit_field("next_rip"),
    Observable.EXIT_RIP: _exit_field("rip"),
    Observable.RETURN_RIP: _delivery_field("return_rip"),
    Observable.DELIVERED: _delivered,
    Observable.DELIVERED_TYPE: _delivery_field("type"),
    Observable.DELIVERED_ERROR_CODE: _delivery_field("error_code"),
    Observable.DELIVERY_COUNT: _delivery_count,
    Observable.SPURIOUS_DB: _plain("spurious_db"),
    Observable.REQUEUED: lambda result, _pick_: bool(result.requeued),
    Observable.REQUEUED_EVENT: _requeued_event,
    Observable.PENDING_EXCEPTION: _pending,
    Observable.SOFT_INT_INJECTED: _soft_injected,
    Observable.SOFT_INT_CSBASE: _soft_field("csbase"),
    Observable.SOFT_INT_OLD_RIP: _soft_field("old_rip"),
    Observable.SOFT_INT_NEXT_RIP: _soft_field("next_rip"),
    Observable.INT3_INJECTED: _run_field("int3_injected"),
    Observable.INT3_RIP: _run_field("int3_rip"),
    Observable.VMCB12_EXIT_CODE: _vmcb12_field("exit_code"),
    Observable.VMCB12_EXIT_INT_INFO: _vmcb12_field("exit_int_info"),
    Observable.VMCB12_NEXT_RIP: _vmcb12_field("next_rip"),
    Observable.L1_NMI_MASKED: _plain("l1_nmi_masked"),
    Observable.DEBUG_EXITS: _plain("debug_exits"),
    Observable.EMULATION_FAILURES: _plain("emulation_failures"),
    Observable.FINAL_RIP: _plain("final_rip"),
    Observable.OUTCOME: _plain("outcome"),
    Observable.EVIDENCE: _plain("evidence"),
    Observable.CONFIRMED: _plain("confirmed"),
    Observable.TRACEPOINTS: _plain("tracepoints"),
}
