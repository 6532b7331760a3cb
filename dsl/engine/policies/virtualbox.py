"""`virtualbox`: VirtualBox HM on AMD-V (other-hypervisors.md § 3, VBOX-1 … VBOX-7) — retry INT n, and re-inject
INT3/INTO after non-exception exits without writing NextRIP.

After an exit during event delivery VirtualBox decides from the kind of exit (`hmR0SvmCheckExitDueToEventDelivery`):
an exception exit (e.g. the shadow-paging #PF intercept) re-executes INT3, INTO and INT n (VBOX-1); any other exit
(e.g. #NPF) re-executes only INT n and re-injects everything else, #BP and #OF included (VBOX-2). Injection writes
EVENTINJ only (VBOX-3), so a re-injected #BP/#OF is pushed with whatever NextRIP the exit left — 0 after an #NPF on
NRIPS hardware [I]. Instruction lengths come from NextRIP − RIP, else IEM emulates the instruction (VBOX-5). Nested
SVM (IEM) converts vmcb12 EVENTINJ into a trap without honouring L1's NextRIP (VBOX-6, its own TODO).
"""

from __future__ import annotations

from types import MappingProxyType

from dsl.engine import events
from dsl.engine.cpu import PF_FETCH_ERROR, Exit
from dsl.engine.decode import MAX_INSN_LENGTH, InsnKind, cpu_decode
from dsl.engine.machine import Machine
from dsl.engine.policies.base import (
    NestedState,
    Policy,
    clear_queue,
    in_flight_is_subject,
    reflect,
    requeue,
    vmrun_without_next_rip,
    write_event_inj,
)
from dsl.engine.program import L1Vmrun
from dsl.engine.result import RFLAGS_RF, Action, Change
from dsl.engine.vocab import (
    EXCEPTION_EXIT_BASE,
    Actor,
    EventType,
    Evidence,
    ExitCode,
    Level,
    Outcome,
    PageTable,
    PolicyName,
    Vector,
)

#: The [I] consequences of VBOX-3 and VBOX-6 (no NextRIP written), and what the specification leaves undescribed
#: for VirtualBox.
#: Tagged in the policy's evidence table, so a run citing them is "predicted, unconfirmed".
VBOX_3_CONSEQUENCE = "VBOX-3 [I]"
VBOX_6_CONSEQUENCE = "VBOX-6 [I]"
VBOX_UNDESCRIBED = "virtualbox [U]"

#: Exception intercepts are exit codes 0x40-0x5F, one per vector (APM Appendix C).
EXCEPTION_EXIT_COUNT = 32
#: What IEM raises for bytes that do not form a valid instruction (H-27, H-28).
_IEM_FAULT: dict[InsnKind, tuple[int, int | None]] = {InsnKind.UD: (Vector.UD, None), InsnKind.TOO_LONG: (Vector.GP, 0)}


def is_exception_exit(exit_code: int) -> bool:
    """An exception intercept (0x40 + vector): VBOX-1's path; every other exit takes VBOX-2's."""
    return EXCEPTION_EXIT_BASE <= exit_code < EXCEPTION_EXIT_BASE + EXCEPTION_EXIT_COUNT


class VirtualBox(Policy):
    """Retry INT n always and INT3/INTO on exception exits; re-inject the rest through EVENTINJ only."""

    name = PolicyName.VIRTUALBOX
    evidence = MappingProxyType(
        {
            VBOX_3_CONSEQUENCE: Evidence.INFERRED,
            VBOX_6_CONSEQUENCE: Evidence.INFERRED,
            VBOX_UNDESCRIBED: Evidence.UNVERIFIED,
        }
    )

    # -- exit ---------------------------------------------------------------------------------------------------------

    def complete_interrupts(self, m: Machine, exit_: Exit | None) -> None:
        """`hmR0SvmCheckExitDueToEventDelivery`: re-inject or re-execute what EXITINTINFO reports (VBOX-1, -2)."""
        vmcb = m.vmcb
        clear_queue(m, "VBOX-1")
        info = vmcb.exit_int_info
        if not events.is_valid(info):
            return
        if exit_ is not None and exit_.handled_by is Level.L1:
            return  # the nested guest's exit goes to L1 with the event in EXITINTINFO (VBOX-6)
        vector, event_type = events.vector_of(info), events.event_type_of(info)
        chain = in_flight_is_subject(m, exit_)
        exception_exit = exit_ is not None and is_exception_exit(exit_.code)
        rule = "VBOX-1" if exception_exit else "VBOX-2"
        # IEM maps INT3/INTO to software-interrupt flags: re-executed on exception exits, re-injected otherwise.
        retried = event_type is EventType.SOFT or (exception_exit and events.is_soft_encoding(info))
        if retried:
            if chain and m.subject is not None:
                m.subject.retried = True
            m.log(Actor.L0, Action.DROP, rule, f"{events.describe(info)}: software interrupt, re-executed")
        elif event_type is EventType.NMI:
            requeue(m, rule, chain, nmi=True)
        elif event_type is EventType.EXCEPTION:
            error = vmcb.exit_int_info_err if events.has_error_code(info) else None
            requeue(m, rule, chain, exception=(vector, error))
        elif event_type is EventType.INTR:
            requeue(m, rule, chain, interrupt=(vector, False))

    def skip_emulated_instruction(self, m: Machine) -> bool:
        """VBOX-5: RIP = NextRIP when the CPU saved it, else IEM executes the instruction (IEMExecOne)."""
        vmcb = m.vmcb
        if m.cpu_nrips and vmcb.next_rip:
            self.complete_instruction(m, vmcb.next_rip, "NextRIP")
            return True
        linear = m.linear(vmcb.rip)
        insn = cpu_decode(m.read(linear, MAX_INSN_LENGTH), m.mode.bitness, vmcb.rip)
        if m.first_missing_page(PageTable.GUEST, linear, insn.length) is not None:
            self.iem_raises(m, Vector.PF, PF_FETCH_ERROR, f"instruction fetch at {hex(linear)} faults")
        elif insn.kind in _IEM_FAULT:
            vector, error = _IEM_FAULT[insn.kind]
            self.iem_raises(m, vector, error, f"the bytes at {hex(linear)} are not a valid instruction")
        else:
            self.complete_instruction(m, (vmcb.rip + insn.length) & m.rip_mask(), f"IEM: {insn.text}")
        return True

    def complete_instruction(self, m: Machine, next_rip: int, how: str) -> None:
        """The instruction completed: RIP moves on, RF and the interrupt shadow end (H-34, H-35)."""
        vmcb = m.vmcb
        changes: list[Change] = [m.put(vmcb, "rip", next_rip, "vmcb.")]
        if vmcb.rflags & RFLAGS_RF:
            changes.append(m.put(vmcb, "rflags", vmcb.rflags & ~RFLAGS_RF, "vmcb."))
        if vmcb.int_shadow:
            changes.append(m.put(vmcb, "int_shadow", False, "vmcb."))
        m.log(Actor.L0, Action.SKIP, "VBOX-5", f"RIP past the instruction ({how})", *changes)

    def iem_raises(self, m: Machine, vector: int, error: int | None, why: str) -> None:
        """IEM executes like the CPU: an instruction that faults raises the exception in the guest, RIP unchanged."""
        queue = m.kvm.queue
        queue.exception_pending, queue.exception_vector, queue.exception_error = True, vector, error
        m.log(Actor.L0, Action.QUEUE, "VBOX-5", f"IEM: {why}: {Vector(vector).mnemonic} for the guest")

    def handle_exit(self, m: Machine, exit_: Exit) -> None:
        """Intercepted instructions through VBOX-5; a #BP intercepted for debugging stops in the debugger."""
        if exit_.code == ExitCode.EXCP_BP and m.program.options.guest_debug_sw_bp:
            m.debug_exits += 1
            m.log(Actor.L0, Action.HANDLE, VBOX_UNDESCRIBED, "#BP intercepted for the debugger (not described)")
            return
        super().handle_exit(m, exit_)

    # -- entry --------------------------------------------------------------------------------------------------------

    def inject_pending_event(self, m: Machine) -> None:
        """`hmR0SvmInjectEventVmcb`: EVENTINJ only, NextRIP never written (VBOX-3)."""
        queue = m.kvm.queue
        if queue.exception_injected or queue.exception_pending:
            vector, error = queue.exception_vector, queue.exception_error
            value = events.encode(vector, EventType.EXCEPTION, error)
        elif queue.nmi_injected or queue.nmi_pending:
            value, error = events.encode(Vector.NMI, EventType.NMI), None
        elif queue.interrupt_injected:
            kind = EventType.SOFT if queue.interrupt_soft else EventType.INTR
            value, error = events.encode(queue.interrupt_nr, kind), None
        else:
            return
        subject = queue.subject
        queue.clear_all()  # taken out of the queue into EVENTINJ
        write_event_inj(m, "VBOX-3", value, error or 0, "hmR0SvmInjectEventVmcb", subject)
        if events.is_soft_encoding(value):
            vmcb = m.vmcb
            pushed = f"NextRIP {hex(vmcb.next_rip)}" if m.cpu_nrips else f"RIP {hex(vmcb.rip)}"
            m.log(Actor.L0, Action.NOTE, VBOX_3_CONSEQUENCE, f"NextRIP not written: the CPU pushes {pushed}")

    def cancel_injection(self, m: Machine) -> None:
        """An abandoned entry is not described for VirtualBox: EVENTINJ is left for the next entry."""
        m.log(Actor.L0, Action.CANCEL, VBOX_UNDESCRIBED, "entry abandoned: EVENTINJ left in the VMCB (not described)")

    # -- nesting (VBOX-6) ---------------------------------------------------------------------------------------------

    def nested_vmrun(self, m: Machine, step: L1Vmrun) -> bool:
        """IEM's VMRUN turns vmcb12 EVENTINJ into a trap injected like any event: L1's NextRIP is not honoured."""
        not_used = "not honoured: the CPU pushes NextRIP"
        vmrun_without_next_rip(m, step, "VBOX-6", VBOX_6_CONSEQUENCE, not_used, "nested-guest state from vmcb12")
        return True

    def nested_vmexit(self, m: Machine, exit_: Exit) -> None:
        """EXITINTINFO for L1 is synthesised from the in-flight event, INT3/INTO/ICEBP as type 3 (VBOX-6)."""
        vmcb02 = m.vmcb02
        info, error = vmcb02.exit_int_info, vmcb02.exit_int_info_err
        flight = exit_.in_flight
        if flight is not None and events.is_valid(info):
            info = events.encode(flight.vector, flight.type, flight.error_code)
            if flight.subject and m.subject is not None:
                m.subject.reflected = True
        m.log(Actor.L0, Action.NOTE, VBOX_UNDESCRIBED, "the nested guest's NextRIP for L1 is not described")
        reflect(m, exit_, info, error, vmcb02.next_rip, "VBOX-6")
        m.set_guest_mode(False)
        m.l1_has_control = True

    def set_nested_state(self, m: Machine, saved: NestedState) -> None:
        """KVM_SET_NESTED_STATE has no VirtualBox counterpart described by the specification."""
        m.log(Actor.USERSPACE, Action.NOTE, VBOX_UNDESCRIBED, "nested save/restore is not described for VirtualBox")
        m.set_anomaly(Outcome.UNSPECIFIED)
