"""The simulated vCPU: VMCBs, KVM's per-vCPU state, guest memory, and the recorder of observations and trace.

A `Machine` lives for one `run(program)` and is mutated in place: it is the object with identity the model
simulates (one vCPU), like KVM's `struct vcpu_svm`. Everything that leaves the engine — records, trace entries,
the `Result` — is frozen. Fields are named after the VMCB and KVM fields of kvm.md § 0.2.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import attrs

from dsl.engine import events
from dsl.engine.profiles import Profile
from dsl.engine.program import DEFAULT_RFLAGS, IdtGate, Program, VectoringFault
from dsl.engine.result import (
    NO_SOFT_INT,
    RFLAGS_RF,
    Action,
    Change,
    Delivery,
    ExitRecord,
    SoftIntRecord,
    TraceEntry,
    Vmcb12Exit,
    VmrunRecord,
)
from dsl.engine.vocab import (
    Actor,
    CpuMode,
    EventType,
    HardwareProfile,
    Outcome,
    PageTable,
    Protection,
)

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
ADDRESS_MASK_32 = 0xFFFF_FFFF
ADDRESS_MASK_16 = 0xFFFF
LONG_MODE_BITS = 64
RFLAGS_TF = 1 << 8
RFLAGS_IF = 1 << 9
RFLAGS_OF = 1 << 11
#: Where the model places interrupt handlers: they never execute bytes, the handler "returns" (IRET) when run.
HANDLER_BASE = 0xFFFF_0000
HANDLER_STRIDE = 0x10


#: `tuple.__new__(Cls, values)` builds a NamedTuple in C; `Cls(...)` goes through a generated Python `__new__`.
#: A run builds dozens of trace entries and changes, always with every field, so the engine uses the C path.
_new_tuple = tuple.__new__

#: How the trace shows an empty event queue.
NOTHING_QUEUED = "—"
#: Trace actions whose entry reports a change of KVM's event queue as `Change("queue", old, new)`.
QUEUE_ACTIONS: tuple[Action, ...] = (
    Action.QUEUE,
    Action.REQUEUE,
    Action.INJECT,
    Action.DROP,
    Action.CANCEL,
    Action.COMPLETE,
    Action.DECODE,  # the emulator's skip clears a queued exception first (K-5.19-7 step b)
    Action.FAIL,
    Action.REFLECT,
)
#: The same members as a set: every trace entry asks.
_QUEUE_ACTION_SET: frozenset[Action] = frozenset(QUEUE_ACTIONS)


@functools.cache
def default_gate(vector: int) -> IdtGate:
    """The gate of a vector the set-up does not list (built once per vector: gates are looked up per delivery)."""
    return IdtGate(vector)


def page_of(address: int) -> int:
    return address >> PAGE_SHIFT


@attrs.define(eq=False)
class Vmcb:
    """One VMCB: the control fields of H-1 and the save-area fields the model uses.

    The fields a set-up gives come first, so every run's VMCB is built positionally (`runner.build`).
    """

    rip: int = 0
    cs_base: int = 0
    rflags: int = DEFAULT_RFLAGS
    int_shadow: bool = False
    next_rip: int = 0
    event_inj: int = 0
    event_inj_err: int = 0
    exit_code: int = 0
    exit_int_info: int = 0
    exit_int_info_err: int = 0


@attrs.define(eq=False)
class EventQueue:
    """KVM's event queue (x86.c): one exception, the NMI slot and one interrupt, each pending or injected.

    `subject` marks that the queued event is the scenario's subject (or its chain), for the outcome.
    """

    exception_pending: bool = False
    exception_injected: bool = False
    exception_vector: int = 0
    exception_error: int | None = None
    nmi_pending: bool = False
    nmi_injected: bool = False
    interrupt_injected: bool = False
    interrupt_nr: int = 0
    interrupt_soft: bool = False
    subject: bool = False

    def clear_exception(self) -> None:
        self.exception_pending = False
        self.exception_injected = False

    def clear_all(self) -> None:
        """kvm_clear_exception_queue + kvm_clear_interrupt_queue + nmi_injected = false."""
        self.exception_pending = self.exception_injected = False
        self.nmi_injected = False
        self.interrupt_injected = False
        self.subject = False

    def empty(self) -> bool:
        return not (
            self.exception_pending
            or self.exception_injected
            or self.nmi_pending
            or self.nmi_injected
            or self.interrupt_injected
        )

    def describe(self) -> str:
        """What the queue holds, for the trace: `#BP injected`, `INT 0x80 soft injected`, `NMI pending`, or `—`."""
        if self.empty():
            return NOTHING_QUEUED
        parts: list[str] = []
        if self.exception_pending or self.exception_injected:
            state = "injected" if self.exception_injected else "pending"
            parts.append(f"{events.VECTOR_NAMES[self.exception_vector]} {state}")
        if self.nmi_injected or self.nmi_pending:
            parts.append("NMI injected" if self.nmi_injected else "NMI pending")
        if self.interrupt_injected:
            kind = "soft" if self.interrupt_soft else "interrupt"
            parts.append(f"INT {hex(self.interrupt_nr)} {kind} injected")
        return "; ".join(parts) if parts else NOTHING_QUEUED

    def requeued_encoding(self) -> int:
        """The queued re-injection as EVENTINJ would encode it (for vmcb12 EXITINTINFO, K-5.19-24)."""
        if self.exception_injected:
            return events.encode(self.exception_vector, EventType.EXCEPTION, self.exception_error)
        if self.nmi_injected:
            return events.encode(0, EventType.NMI)
        if self.interrupt_injected:
            kind = EventType.SOFT if self.interrupt_soft else EventType.INTR
            return events.encode(self.interrupt_nr, kind)
        return 0


@attrs.define(eq=False)
class Vmcb12:
    """L1's vmcb12 as KVM caches it: control fields and the L2 save-area fields used (K-6.0-19, K-6.0-20)."""

    event_inj: int = 0
    event_inj_err: int = 0
    next_rip: int = 0
    rip: int = 0
    cs_base: int = 0
    int_shadow: bool = False  # synced back from vmcb02 in kvm-7.1 (K-7.1-2)


@attrs.define(eq=False)
class Kvm:
    """KVM's per-vCPU state (kvm.md § 0.2)."""

    nrips: bool  # effective module parameter (K-5.19-1)
    next_rip: int = 0  # svm->next_rip
    int3_injected: int = 0
    int3_rip: int = 0
    soft_int: SoftIntRecord = NO_SOFT_INT  # shared: the record is immutable, every change replaces it
    nmi_l1_to_l2: bool = False
    nmi_masked: bool = False  # HF_NMI_MASK of the vCPU (L1's when nested)
    queue: EventQueue = attrs.Factory(EventQueue)
    guest_mode: bool = False  # running L2; written only by Machine.set_guest_mode (it switches the VMCB)
    nested_run_pending: bool = False
    vmcb12: Vmcb12 = attrs.Factory(Vmcb12)
    insn_emulation_fail: int = 0
    #: KVM_REQ_EVENT raised while injecting, with an exception left pending (K-6.0-30): served at the next entry.
    event_request: bool = False


class InFlight(NamedTuple):
    """An event the CPU is delivering: what it is, where its frame returns to, and where delivery started.

    NamedTuples for the CPU's short-lived values: immutable like attrs frozen classes, much cheaper to create.
    """

    vector: int
    type: EventType
    error_code: int | None
    return_rip: int | None
    start_rip: int  # the RIP from which delivery started (a secondary fault's frame, H-16)
    injected: bool  # from EVENTINJ
    dpl_checked: bool  # INT n / INT3 / INTO semantics (H-7)
    from_instruction: bool  # raised by a guest instruction (reported as type 3/4 per H-4)
    subject: bool
    external: bool = False
    maps_page: int | None = None  # a guest #PF on an instruction fetch: its handler maps this page


class Frame(NamedTuple):
    """An exception frame on the guest stack: the handler's IRET returns to `return_rip` with `rflags`."""

    vector: int
    return_rip: int | None
    rflags: int
    maps_page: int | None = None  # a guest #PF handler for a fetch fault maps this page before returning


@attrs.define(eq=False)
class Subject:
    """The event the scenario is about: the first one raised by a guest instruction or injected."""

    vector: int
    type: EventType
    rip: int  # RIP of its instruction, or RIP when it was injected
    linear: int
    injected: bool  # no guest instruction raised it (userspace, guest debug, L1)
    original: bytes  # the bytes of its instruction when it was raised (empty when injected)
    arch_return: int | None  # the architecturally right return address
    deliveries: int = 0
    requeued: bool = False
    reinjected: bool = False
    dropped: bool = False
    retried: bool = False
    reflected: bool = False  # handed to L1 in vmcb12 EXITINTINFO


@attrs.define(eq=False)
class Machine:
    """The vCPU under simulation and everything observed so far."""

    program: Program
    hardware: Profile  # the CPU model of program.profile, looked up once
    mode: CpuMode
    cpl: int
    gif: bool
    vmcb01: Vmcb
    vmcb02: Vmcb
    #: svm->vmcb, the VMCB KVM runs the guest with: vmcb02 while L2 runs, else vmcb01. A field switched by
    #: `set_guest_mode` (as svm_switch_vmcb does), not a property: it is read many times per guest action.
    vmcb: Vmcb
    kvm: Kvm
    memory: dict[int, bytearray]  # 4-KiB page number → bytes
    written: set[int]  # linear addresses the scenario wrote
    missing: dict[PageTable, set[int]]
    idt: dict[int, IdtGate]
    breakpoints: dict[int, int]  # linear address → DR slot
    instruction_intercepts: tuple[int, ...] = ()  # the policy's optional instruction intercepts (H-18, XEN-4)
    exception_intercepts: tuple[int, ...] = ()  # vectors L0 intercepts when a guest instruction raises them
    frames: list[Frame] = attrs.Factory(list)
    armed_faults: list[VectoringFault] = attrs.Factory(list)
    armed_exits: list[int] = attrs.Factory(list)
    cancel_armed: bool = False
    in_guest: bool = False
    l1_has_control: bool = False
    subject: Subject | None = None
    anomaly: Outcome | None = None
    debug_exit_pending: bool = False
    inj_subject: bool = False  # the EVENTINJ now in the VMCB carries the subject (or its chain)
    stale_next_rip: bool = False  # VMCB next_rip was left by an intercepted instruction L0 already skipped
    arch_return: int | None = None  # the architectural policy's memory of a requeued event's return address
    arch_origin: int | None = None  # RIP before the architectural policy advanced it (CPU without NRIPS)
    qemu_event_slot: int = 0  # QEMU TCG's in-flight EVENTINJ copy
    breakpoint_hits: dict[int, int] = attrs.Factory(dict)
    spurious_db: bool = False
    entries: int = 0
    # Records.
    vmruns: list[VmrunRecord] = attrs.Factory(list)
    exits: list[ExitRecord] = attrs.Factory(list)
    deliveries: list[Delivery] = attrs.Factory(list)
    requeued: list[int] = attrs.Factory(list)
    vmcb12_exits: list[Vmcb12Exit] = attrs.Factory(list)
    tracepoints: list[str] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)
    rules: dict[str, None] = attrs.Factory(dict)  # rules applied, in first-use order (a dict: O(1) membership)
    trace: list[TraceEntry] = attrs.Factory(list)
    pending_exception_seen: int | None = None
    debug_exits: int = 0
    l1_nmi_masked: bool = False
    queue_shown: str = NOTHING_QUEUED  # the event queue as the trace last reported it
    deferred_entry: bool = False  # this entry injects an exception KVM queued while injecting (K-6.0-30)

    # -- the current VMCB and guest registers ----------------------------------------------------------------------

    def set_guest_mode(self, l2: bool) -> None:
        """enter_guest_mode / leave_guest_mode with svm_switch_vmcb: L2 runs with vmcb02, L1 with vmcb01.

        The only writer of `kvm.guest_mode`, so `vmcb` always follows it (also after vmcb02 is replaced).
        """
        self.kvm.guest_mode = l2
        self.vmcb = self.vmcb02 if l2 else self.vmcb01

    @property
    def profile(self) -> HardwareProfile:
        return self.program.profile

    @property
    def cpu_nrips(self) -> bool:
        """Whether the CPU has NRIPS (H-2, Q-1)."""
        return self.program.profile is HardwareProfile.AMD_NRIPS

    @property
    def protection(self) -> Protection:
        return self.program.options.protection

    @property
    def state_protected(self) -> bool:
        """SEV-ES / SNP: KVM cannot read or write guest registers (K-5.19-4, K-6.0-31)."""
        protection = self.program.options.protection
        return protection is Protection.SEV_ES or protection is Protection.SEV_SNP

    def linear(self, rip: int, cs_base: int | None = None) -> int:
        """Linear address of CS:rip (H-31): RIP in 64-bit mode, else (CS.base + EIP) mod 2^32."""
        if self.mode.bitness == LONG_MODE_BITS:  # a cached attribute: `is CpuMode.LONG_64` is a slow class lookup
            return rip
        base = self.vmcb.cs_base if cs_base is None else cs_base
        return (base + rip) & ADDRESS_MASK_32

    def linear_rip(self) -> int:
        """kvm_get_linear_rip (K-5.19-4): 0 for protected state, else the linear address of RIP."""
        return 0 if self.state_protected else self.linear(self.vmcb.rip)

    def is_linear_rip(self, comparand: int) -> bool:
        """kvm_is_linear_rip: compares with a full-width, never truncated sum (K-5.19-4)."""
        return self.linear_rip() == comparand

    def rip_mask(self) -> int:
        """RIP width of the mode: truncation for next-RIP arithmetic (H-32)."""
        bits = self.mode.bitness
        return (1 << bits) - 1

    def gate(self, vector: int) -> IdtGate:
        return self.idt.get(vector) or default_gate(vector)

    def handler_address(self, vector: int) -> int:
        return HANDLER_BASE + vector * HANDLER_STRIDE

    # -- memory ----------------------------------------------------------------------------------------------------

    def read(self, linear: int, length: int) -> bytes:
        """Guest bytes at a linear address (unwritten memory reads as 0), wrapping at 4 GiB outside 64-bit mode."""
        if self.mode.bitness != LONG_MODE_BITS:
            linear &= ADDRESS_MASK_32
        page, offset = divmod(linear, PAGE_SIZE)
        if offset + length <= PAGE_SIZE:
            frame = self.memory.get(page)
            return bytes(frame[offset : offset + length]) if frame is not None else bytes(length)
        head = PAGE_SIZE - offset
        return self.read(linear, head) + self.read(linear + head, length - head)

    def write(self, linear: int, data: bytes) -> None:
        """Store bytes at a linear address, one page at a time, wrapping at 4 GiB outside 64-bit mode."""
        done = 0
        while done < len(data):
            address = linear + done
            if self.mode.bitness != LONG_MODE_BITS:
                address &= ADDRESS_MASK_32
            page, offset = divmod(address, PAGE_SIZE)
            size = min(len(data) - done, PAGE_SIZE - offset)
            frame = self.memory.get(page)
            if frame is None:
                frame = self.memory[page] = bytearray(PAGE_SIZE)
            frame[offset : offset + size] = data[done : done + size]
            self.written.update(range(address, address + size))
            done += size

    def has_code(self, linear: int) -> bool:
        """Whether the scenario wrote the byte at `linear` (set-up code or a code modification)."""
        return linear in self.written

    def first_missing_page(self, table: PageTable, linear: int, length: int) -> int | None:
        """The first page of [linear, linear+length) missing from `table`; None if all are present."""
        missing = self.missing[table]
        if not missing:
            return None
        for page in range(page_of(linear), page_of(linear + max(length, 1) - 1) + 1):
            if page in missing:
                return page
        return None

    # -- recording -------------------------------------------------------------------------------------------------

    def log(self, actor: Actor, action: Action, rule: str, message: str, *changes: Change) -> None:
        """Append one trace entry; the rule also joins the set the outcome's evidence is computed from.

        Entries that can change KVM's event queue (QUEUE_ACTIONS) also report it when it changed since the last
        report, so the trace shows the queued event without a reader having to infer it from the actions.
        Messages spell values with `hex(x)`: the same text as `{x:#x}`, at half the cost (no format spec to parse),
        and every run formats a dozen of them.
        """
        if action in _QUEUE_ACTION_SET:
            shown = self.kvm.queue.describe()
            if shown != self.queue_shown:
                changes = (*changes, _new_tuple(Change, ("queue", self.queue_shown, shown)))
                self.queue_shown = shown
        self.trace.append(_new_tuple(TraceEntry, (actor, action, rule, message, changes)))
        if rule:
            self.rules[rule] = None  # a dict keeps the first insertion's place

    def put(self, target: object, name: str, value: object, label: str = "") -> Change:
        """Set `target.name` and return the change for the trace (`label` prefixes the field name)."""
        old = getattr(target, name)
        setattr(target, name, value)
        return _new_tuple(Change, (label + name, old, value))

    def set_anomaly(self, outcome: Outcome) -> None:
        """The first anomaly (host BUG, VMEXIT_INVALID, …) decides the outcome."""
        if self.anomaly is None:
            self.anomaly = outcome

    def record_vmrun(self, failed: bool = False) -> None:
        vmcb = self.vmcb
        kvm = self.kvm
        # Positional, in field order (event_inj … failed): keyword binding of 13 arguments doubles the cost.
        self.vmruns.append(
            VmrunRecord(
                vmcb.event_inj,
                vmcb.event_inj_err,
                vmcb.next_rip,
                vmcb.rip,
                vmcb.cs_base,
                vmcb.rflags,
                vmcb.int_shadow,
                kvm.guest_mode,
                len(self.exits),
                kvm.soft_int,
                kvm.int3_injected,
                kvm.int3_rip,
                failed,
                self.deferred_entry,
            )
        )

    def clear_rf(self) -> Change | None:
        """Clear RFLAGS.RF in the current VMCB; None when it was already clear."""
        vmcb = self.vmcb
        if not vmcb.rflags & RFLAGS_RF:
            return None
        return self.put(vmcb, "rflags", vmcb.rflags & ~RFLAGS_RF)
