"""`xen`: Xen HVM guests on AMD SVM (other-hypervisors.md § 2, XEN-1 … XEN-8) — retry soft events cut short.

On every exit Xen copies a valid EXITINTINFO back into EVENTINJ unless it is a software event (XEN-1): INT n,
INT3 and INTO are re-executed by the guest instead. Events Xen injects itself go through `svm_inject_event`
(XEN-2): NextRIP = RIP + length on NRIPS hardware, otherwise RIP is advanced after the IDT checks done in software
(XEN-3). Instruction lengths come from NextRIP or from a decode that must find the expected instruction, #GP
otherwise (XEN-5). ICEBP is always intercepted and injected with RIP advanced (XEN-4). Nested SVM copies vmcb12
EVENTINJ but not NextRIP (XEN-7). Xen has no `nrips` parameter: only the CPU's NRIPS matters.
"""

from __future__ import annotations

from types import MappingProxyType

import attrs

from dsl.engine import events
from dsl.engine.cpu import Exit
from dsl.engine.decode import MAX_INSN_LENGTH, InsnKind, cpu_decode
from dsl.engine.machine import ADDRESS_MASK_32, Machine
from dsl.engine.policies.base import (
    NestedState,
    Policy,
    handle_page_exit,
    in_flight_is_subject,
    reflect,
    reinject_verbatim,
    vmrun_without_next_rip,
    write_event_inj,
)
from dsl.engine.program import L1Vmrun
from dsl.engine.result import RFLAGS_RF, Action, Change
from dsl.engine.vocab import (
    Actor,
    CpuMode,
    EventType,
    Evidence,
    ExitCode,
    IdentityEnum,
    Level,
    Outcome,
    PageTable,
    PolicyName,
    Vector,
)

#: The [I] consequence of XEN-7, consequences derived from XEN-1 … XEN-3 that no source states, and what the
#: specification leaves undescribed for Xen.
#: Tagged in the policy's evidence table, so a run citing them is "predicted, unconfirmed".
XEN_7_CONSEQUENCE = "XEN-7 [I]"
XEN_DERIVED = "xen [D]"
XEN_UNDESCRIBED = "xen [U]"

#: The instruction `svm_get_insn_len` must find for each exit it serves (XEN-4, XEN-5).
EXPECTED_INSTRUCTION: dict[int, InsnKind] = {
    ExitCode.HLT: InsnKind.HLT,
    ExitCode.CPUID: InsnKind.CPUID,
    ExitCode.IOIO: InsnKind.IO,
    ExitCode.MSR: InsnKind.MSR,
    ExitCode.VMMCALL: InsnKind.VMMCALL,
    ExitCode.EXCP_BP: InsnKind.INT3,
    ExitCode.ICEBP: InsnKind.ICEBP,
}
#: The instruction behind a software exception Xen injects for guest debugging.
_SOFT_EXCEPTION_INSTRUCTION: dict[int, InsnKind] = {Vector.BP: InsnKind.INT3, Vector.OF: InsnKind.INTO}


class XenEventKind(IdentityEnum):
    """Xen's event types (X86_EVENTTYPE_*): finer than EVENTINJ's TYPE, which is what Xen derives it from."""

    EXT_INTR = "external interrupt"
    NMI = "NMI"
    HW_EXCEPTION = "hardware exception"
    SW_INTERRUPT = "software interrupt"  # INT n
    PRI_SW_EXCEPTION = "privileged software exception"  # ICEBP
    SW_EXCEPTION = "software exception"  # INT3, INTO


#: Kinds whose return address lies after the instruction: Xen places NextRIP or advances RIP (XEN-2).
_TRAP_KINDS: tuple[XenEventKind, ...] = (
    XenEventKind.SW_INTERRUPT,
    XenEventKind.PRI_SW_EXCEPTION,
    XenEventKind.SW_EXCEPTION,
)


@attrs.frozen
class XenEvent:
    """An event Xen injects (`struct x86_event`): vector, kind, error code, length of the instruction behind it."""

    vector: int
    kind: XenEventKind
    error_code: int | None = None
    insn_len: int = 0


def needs_reinjection(event_type: EventType | None, vector: int) -> bool:
    """XEN-1, `hvm_event_needs_reinjection`: interrupts, NMIs and hardware exceptions except #BP/#OF."""
    if event_type in (EventType.INTR, EventType.NMI):
        return True
    if event_type is EventType.EXCEPTION:
        return not events.is_soft_exception(vector)
    return False  # software interrupts "can be re-executed"; reserved types never reach here


class Xen(Policy):
    """Retry soft events cut short; inject with NextRIP = RIP + length, or RIP advanced without NRIPS."""

    name = PolicyName.XEN
    evidence = MappingProxyType(
        {XEN_7_CONSEQUENCE: Evidence.INFERRED, XEN_DERIVED: Evidence.DERIVED, XEN_UNDESCRIBED: Evidence.UNVERIFIED}
    )
    intercepted_instructions = (ExitCode.ICEBP,)  # XEN-4: ICEBP is always intercepted

    # -- set-up -------------------------------------------------------------------------------------------------------

    def vm_init(self, m: Machine) -> None:
        """XEN-7: nested SVM requires NRIPS (and DecodeAssists) in L0."""
        if m.program.setup.nesting is not None and not m.cpu_nrips:
            m.log(Actor.L0, Action.FAIL, "XEN-7", "nested SVM needs NRIPS and DecodeAssists: not offered to L1")
            m.set_anomaly(Outcome.UNSUPPORTED)

    # -- exit ---------------------------------------------------------------------------------------------------------

    def complete_interrupts(self, m: Machine, exit_: Exit | None) -> None:
        """XEN-1: copy EXITINTINFO back into EVENTINJ unless it is a software event, which the guest re-executes."""
        info = m.vmcb.exit_int_info
        if not events.is_valid(info):
            return
        if exit_ is not None and exit_.handled_by is Level.L1:
            return  # reflected before the copy: L1 gets EXITINTINFO in vmcb12 (XEN-7)
        vector, event_type = events.vector_of(info), events.event_type_of(info)
        if needs_reinjection(event_type, vector):
            reinject_verbatim(m, exit_, "XEN-1")
            return
        chain = in_flight_is_subject(m, exit_)
        if chain and m.subject is not None:
            m.subject.retried = True
        m.log(Actor.L0, Action.DROP, "XEN-1", f"{events.describe(info)} not re-injected: the instruction re-executes")
        injected = exit_ is not None and exit_.in_flight is not None and exit_.in_flight.injected
        if injected and m.kvm.guest_mode:
            m.log(Actor.L0, Action.NOTE, XEN_7_CONSEQUENCE, "an L1-injected soft event is dropped: lost")
        elif injected and chain and m.subject is not None and m.vmcb.rip != m.subject.rip:
            # Without NRIPS XEN-2 advanced RIP for the injection and nothing moves it back.
            m.log(Actor.L0, Action.NOTE, XEN_DERIVED, f"RIP stays advanced at {hex(m.vmcb.rip)}: the event is lost")

    def handle_exit(self, m: Machine, exit_: Exit) -> None:
        """Map pages; complete intercepted instructions with the XEN-5 length; #BP and ICEBP intercepts."""
        handle_page_exit(m, exit_)
        expected = EXPECTED_INSTRUCTION.get(exit_.code)
        if exit_.code == ExitCode.ICEBP:
            self.icebp_intercept(m)
        elif exit_.code == ExitCode.EXCP_BP and m.program.options.guest_debug_sw_bp:
            length = self.insn_len(m, InsnKind.INT3)
            m.debug_exits += 1
            m.log(Actor.L0, Action.HANDLE, "XEN-5", f"#BP intercept reported to the debugger, length {length}")
        elif expected is not None and exit_.code != ExitCode.EXCP_BP:
            self.complete_instruction(m, self.insn_len(m, expected))

    def skip_emulated_instruction(self, m: Machine) -> bool:
        """`__update_guest_eip` with the length of the instruction at RIP (XEN-5); 0 leaves RIP unchanged."""
        exit_code = m.vmcb.exit_code
        self.complete_instruction(m, self.insn_len(m, EXPECTED_INSTRUCTION.get(exit_code, InsnKind.OTHER)))
        return True

    def complete_instruction(self, m: Machine, length: int) -> None:
        """`__update_guest_eip`: RIP past the instruction, RF and the interrupt shadow cleared."""
        if not length:
            return  # no length: the guest executes the instruction again (or takes the #GP Xen injected)
        vmcb = m.vmcb
        changes: list[Change] = [m.put(vmcb, "rip", (vmcb.rip + length) & m.rip_mask(), "vmcb.")]
        if vmcb.rflags & RFLAGS_RF:
            changes.append(m.put(vmcb, "rflags", vmcb.rflags & ~RFLAGS_RF, "vmcb."))
        if vmcb.int_shadow:
            changes.append(m.put(vmcb, "int_shadow", False, "vmcb."))
        m.log(Actor.L0, Action.SKIP, "XEN-5", f"RIP advanced by {length}", *changes)

    def insn_len(self, m: Machine, expected: InsnKind) -> int:
        """XEN-5, `svm_get_insn_len`: NextRIP − RIP, else a decode that must find `expected` (#GP otherwise)."""
        vmcb = m.vmcb
        if m.cpu_nrips and vmcb.next_rip:
            length = (vmcb.next_rip - vmcb.rip) & m.rip_mask()
            if 0 < length <= MAX_INSN_LENGTH:  # an implausible NextRIP is reported and the decode used instead
                m.log(Actor.L0, Action.DECODE, "XEN-5", f"length {length} from NextRIP (no decode)")
                return length
        linear = m.linear(vmcb.rip)
        insn = cpu_decode(m.read(linear, MAX_INSN_LENGTH), m.mode.bitness, vmcb.rip)
        if m.first_missing_page(PageTable.GUEST, linear, insn.length) is not None:
            # x86_decode_insn cannot fetch: svm_get_insn_len returns 0 without injecting anything.
            m.log(Actor.L0, Action.FAIL, "XEN-5", f"cannot fetch the instruction at {hex(linear)}: length 0")
            return 0
        if insn.kind in (InsnKind.UD, InsnKind.TOO_LONG):
            m.log(Actor.L0, Action.FAIL, "XEN-5", f"the bytes at {hex(linear)} do not decode: length 0")
            return 0
        if insn.kind is not expected:
            m.log(Actor.L0, Action.FAIL, "XEN-5", f"decoded {insn.text}, expected {expected.value}: #GP(0)")
            self.inject_event(m, XenEvent(Vector.GP, XenEventKind.HW_EXCEPTION, 0), subject=False)
            return 0
        m.log(Actor.L0, Action.DECODE, "XEN-5", f"decode at {hex(vmcb.rip)}: {insn.text} ({insn.length} bytes)")
        return insn.length

    def icebp_intercept(self, m: Machine) -> None:
        """XEN-4: ICEBP always exits (0x88); Xen injects its #DB as a privileged software exception."""
        m.log(Actor.L0, Action.HANDLE, "XEN-4", "ICEBP intercepted: its #DB is emulated, never re-executed")
        length = self.insn_len(m, InsnKind.ICEBP)
        if length:
            subject = m.subject is not None and m.subject.vector == Vector.DB
            self.inject_event(m, XenEvent(Vector.DB, XenEventKind.PRI_SW_EXCEPTION, insn_len=length), subject=subject)

    # -- entry --------------------------------------------------------------------------------------------------------

    def inject_pending_event(self, m: Machine) -> None:
        """XEN-1's copy is already in EVENTINJ and goes first; else inject what userspace or debugging queued."""
        if events.is_valid(m.vmcb.event_inj):
            return
        subject = m.kvm.queue.subject
        event = self.take_queued(m)
        m.kvm.queue.clear_all()  # taken: an event XEN-5 refused (length 0) is not injected later either
        if event is not None:
            self.inject_event(m, event, subject=subject)

    def take_queued(self, m: Machine) -> XenEvent | None:
        """The queued event as Xen's `struct x86_event`; #BP/#OF and INT n become software events."""
        queue = m.kvm.queue
        if queue.exception_pending and queue.exception_vector in _SOFT_EXCEPTION_INSTRUCTION:
            # Guest debugging: Xen's #BP intercept injects with the length XEN-5 finds for the instruction.
            length = self.insn_len(m, _SOFT_EXCEPTION_INSTRUCTION[queue.exception_vector])
            if not length:
                return None
            return XenEvent(queue.exception_vector, XenEventKind.SW_EXCEPTION, insn_len=length)
        if queue.exception_injected and queue.exception_vector in _SOFT_EXCEPTION_INSTRUCTION:
            self.toolstack_length(m)
            return XenEvent(queue.exception_vector, XenEventKind.SW_EXCEPTION)
        if queue.exception_injected or queue.exception_pending:
            return XenEvent(queue.exception_vector, XenEventKind.HW_EXCEPTION, queue.exception_error)
        if queue.nmi_injected or queue.nmi_pending:
            return XenEvent(Vector.NMI, XenEventKind.NMI)
        if queue.interrupt_injected and queue.interrupt_soft:
            self.toolstack_length(m)
            return XenEvent(queue.interrupt_nr, XenEventKind.SW_INTERRUPT)
        if queue.interrupt_injected:
            return XenEvent(queue.interrupt_nr, XenEventKind.EXT_INTR)
        return None

    def toolstack_length(self, m: Machine) -> None:
        """The toolstack passes the instruction length with the event; a Program has none, so 0 is assumed."""
        m.log(Actor.L0, Action.NOTE, XEN_UNDESCRIBED, "userspace software event: insn_len not given, 0 assumed")

    def inject_event(self, m: Machine, event: XenEvent, *, subject: bool) -> None:
        """XEN-2, `svm_inject_event`: checks without NRIPS (XEN-3), then NextRIP or RIP, then EVENTINJ."""
        if event.kind is XenEventKind.PRI_SW_EXCEPTION or (not m.cpu_nrips and event.kind in _TRAP_KINDS):
            event = self.emulate_swint_checks(m, event)
        vmcb = m.vmcb
        changes: list[Change] = []
        event_type = EventType.EXCEPTION
        if event.kind in (XenEventKind.SW_INTERRUPT, XenEventKind.SW_EXCEPTION):
            if event.kind is XenEventKind.SW_INTERRUPT:
                event_type = EventType.SOFT
            field = "next_rip" if m.cpu_nrips else "rip"
            changes += _set(m, field, vmcb.rip + event.insn_len)
        elif event.kind is XenEventKind.PRI_SW_EXCEPTION:
            # Hardware gives type 3 vector 1 no trap semantics: Xen always advances RIP itself.
            changes += _set(m, "rip", vmcb.rip + event.insn_len)
            if m.cpu_nrips:
                changes += _set(m, "next_rip", vmcb.rip)
        elif event.kind is XenEventKind.NMI:
            event_type = EventType.NMI
        elif event.kind is XenEventKind.EXT_INTR:
            event_type = EventType.INTR
        if m.mode is not CpuMode.LONG_64:
            changes += self.truncate(m)
        error = event.error_code if event.kind is XenEventKind.HW_EXCEPTION else None
        value = events.encode(event.vector, event_type, error)
        queue = m.kvm.queue
        queue.subject = subject  # write_event_inj carries the subject mark from the queue
        if changes:
            m.log(Actor.L0, Action.SKIP, "XEN-2", f"{event.kind.value}, insn_len {event.insn_len}", *changes)
        write_event_inj(m, "XEN-2", value, error or 0, "svm_inject_event")

    def truncate(self, m: Machine) -> list[Change]:
        """XEN-2: outside 64-bit mode RIP and NextRIP are cut to 32 bits after the adjustments."""
        vmcb = m.vmcb
        return _set(m, "rip", vmcb.rip & ADDRESS_MASK_32) + _set(m, "next_rip", vmcb.next_rip & ADDRESS_MASK_32)

    def emulate_swint_checks(self, m: Machine, event: XenEvent) -> XenEvent:
        """XEN-3, `svm_emul_swint_injection`: the gate checks in software, so the injection itself cannot fault.

        DPL (not for ICEBP) then present; a failed check injects #GP / #NP on the gate instead, fault-style
        (length 0). Real-mode IVT entries have neither, so nothing is checked there.
        """
        if m.mode is CpuMode.REAL:
            return event
        gate = m.gate(event.vector)
        icebp = event.kind is XenEventKind.PRI_SW_EXCEPTION
        error = events.idt_error_code(event.vector, external=icebp)  # ICEBP counts as an external event (H-17)
        if not icebp and m.cpl > gate.dpl:
            fault, why = Vector.GP, f"CPL {m.cpl} > gate DPL {gate.dpl}"
        elif not gate.present:
            fault, why = Vector.NP, "gate not present"
        else:
            m.log(Actor.L0, Action.NOTE, "XEN-3", f"gate {hex(event.vector)} checked in software: delivery can proceed")
            return event
        name = Vector(fault).mnemonic
        m.log(Actor.L0, Action.FAULT, "XEN-3", f"gate {hex(event.vector)}: {why}: inject {name}({hex(error)}) instead")
        return XenEvent(fault, XenEventKind.HW_EXCEPTION, error)

    def cancel_injection(self, m: Machine) -> None:
        """An abandoned entry is not described for Xen: EVENTINJ stays in the VMCB for the next entry."""
        m.log(Actor.L0, Action.CANCEL, XEN_UNDESCRIBED, "entry abandoned: EVENTINJ left in the VMCB (not described)")

    # -- nesting (XEN-7) -------------------------------------------------------------------------------------------

    def nested_vmrun(self, m: Machine, step: L1Vmrun) -> bool:
        """Emulated VMRUN: vmcb12 EVENTINJ copied verbatim; NextRIP is not ("only evaluated on #VMEXIT")."""
        not_used = "not copied: the CPU pushes vmcb02 NextRIP"
        vmrun_without_next_rip(m, step, "XEN-7", XEN_7_CONSEQUENCE, not_used, "L2 state from vmcb12")
        return True

    def nested_vmexit(self, m: Machine, exit_: Exit) -> None:
        """A reflected exit: L1 gets EXITINTINFO verbatim, and NextRIP (evaluated on #VMEXIT) (XEN-7)."""
        vmcb02 = m.vmcb02
        if events.is_valid(vmcb02.exit_int_info) and in_flight_is_subject(m, exit_) and m.subject is not None:
            m.subject.reflected = True
        reflect(m, exit_, vmcb02.exit_int_info, vmcb02.exit_int_info_err, vmcb02.next_rip, "XEN-7")
        m.set_guest_mode(False)
        m.l1_has_control = True

    def set_nested_state(self, m: Machine, saved: NestedState) -> None:
        """KVM_SET_NESTED_STATE has no Xen counterpart described by the specification."""
        m.log(Actor.USERSPACE, Action.NOTE, XEN_UNDESCRIBED, "nested save/restore is not described for Xen")
        m.set_anomaly(Outcome.UNSPECIFIED)


def _set(m: Machine, field: str, value: int) -> list[Change]:
    """Write a VMCB field; the change for the trace, or nothing when the value does not change."""
    if getattr(m.vmcb, field) == value:
        return []
    return [m.put(m.vmcb, field, value, "vmcb.")]
