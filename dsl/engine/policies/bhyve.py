"""`bhyve`: FreeBSD's hypervisor on AMD SVM (other-hypervisors.md § 4, BHYVE-1 … BHYVE-6) — re-inject verbatim.

bhyve hands any valid EXITINTINFO back to the next VM entry unchanged, software events included (BHYVE-2), and
never writes NextRIP (BHYVE-3): a re-injected INT3/INTO/INT n is pushed with whatever NextRIP the last exit left,
which is 0 after an #NPF on NRIPS hardware [I]. Instruction lengths come from NextRIP − RIP (BHYVE-1); #BP exits
go to userspace with that length (BHYVE-4). Nested SVM is not upstream (BHYVE-6).

`reinject_verbatim` (in `base`) is shared with `xen`, which copies EXITINTINFO back into EVENTINJ the same way (XEN-1).
"""

from __future__ import annotations

from types import MappingProxyType

from dsl.engine import events
from dsl.engine.cpu import Exit
from dsl.engine.machine import Machine
from dsl.engine.policies.base import NestedState, Policy, reinject_verbatim, write_event_inj
from dsl.engine.program import L1Vmrun
from dsl.engine.result import Action
from dsl.engine.vocab import Actor, EventType, Evidence, ExitCode, Outcome, PagingMode, PolicyName, Vector

#: The parts of bhyve's rules that are consequences read from code, not observed (other-hypervisors.md § 4), and
#: what the specification leaves undescribed for bhyve.
#: Tagged in the policy's evidence table, so a run citing them is "predicted, unconfirmed".
BHYVE_3_CONSEQUENCE = "BHYVE-3 [I]"
BHYVE_UNDESCRIBED = "bhyve [U]"


class Bhyve(Policy):
    """Re-inject every event EXITINTINFO reports, verbatim, without ever writing NextRIP."""

    name = PolicyName.BHYVE
    evidence = MappingProxyType({BHYVE_3_CONSEQUENCE: Evidence.INFERRED, BHYVE_UNDESCRIBED: Evidence.UNVERIFIED})

    # -- set-up -------------------------------------------------------------------------------------------------------

    def vm_init(self, m: Machine) -> None:
        """vmm.ko loads only with NRIP Save and Nested Paging (svm.c check_svm_features); no nested SVM (BHYVE-6)."""
        if not m.cpu_nrips:
            self.refuse(m, "", "bhyve requires the NRIP Save feature (svm.c check_svm_features): vmm.ko not loaded")
        elif m.program.options.paging is not PagingMode.NPT:
            self.refuse(m, "", "bhyve requires Nested Paging (svm.c check_svm_features): no shadow paging")
        elif m.program.setup.nesting is not None:
            self.refuse(m, "BHYVE-6", "nested SVM is not upstream in bhyve")

    def refuse(self, m: Machine, rule: str, message: str) -> None:
        m.log(Actor.L0, Action.FAIL, rule, message)
        m.set_anomaly(Outcome.UNSUPPORTED)

    # -- exit ---------------------------------------------------------------------------------------------------------

    def complete_interrupts(self, m: Machine, exit_: Exit | None) -> None:
        """svm_save_intinfo → vm_exit_intinfo (BHYVE-2): any valid EXITINTINFO is kept for the next entry."""
        if not events.is_valid(m.vmcb.exit_int_info):
            return
        reinject_verbatim(m, exit_, "BHYVE-2")

    def skip_emulated_instruction(self, m: Machine) -> bool:
        """BHYVE-1: inst_length = NextRIP − RIP for the exits nrip_valid() lists (every intercepted instruction)."""
        vmcb = m.vmcb
        length = (vmcb.next_rip - vmcb.rip) & m.rip_mask() if vmcb.next_rip else 0
        target = (vmcb.rip + length) & m.rip_mask()
        # The interrupt shadow is left to the hardware state: bhyve's handling of it is not described.
        m.log(Actor.L0, Action.SKIP, "BHYVE-1", f"inst_length {length} from NextRIP", m.put(vmcb, "rip", target))
        return True

    def handle_exit(self, m: Machine, exit_: Exit) -> None:
        """#BP exits go to userspace as VM_EXITCODE_BPT with the instruction length (BHYVE-4)."""
        if exit_.code == ExitCode.EXCP_BP and m.program.options.guest_debug_sw_bp:
            vmcb = m.vmcb
            length = (vmcb.next_rip - vmcb.rip) & m.rip_mask() if vmcb.next_rip else 0
            m.debug_exits += 1
            m.log(Actor.L0, Action.HANDLE, "BHYVE-4", f"#BP exit: VM_EXITCODE_BPT to userspace, inst_length {length}")
            return
        super().handle_exit(m, exit_)

    # -- entry --------------------------------------------------------------------------------------------------------

    def inject_pending_event(self, m: Machine) -> None:
        """svm_inj_intinfo first (BHYVE-2), then events userspace queued; NextRIP is never written (BHYVE-3)."""
        vmcb = m.vmcb
        if events.is_valid(vmcb.event_inj):
            self.note_next_rip(m, vmcb.event_inj)
            return  # the saved EXITINTINFO goes first; a queued event waits for the next entry
        queue = m.kvm.queue
        if queue.exception_injected or queue.exception_pending:
            value = events.encode(queue.exception_vector, EventType.EXCEPTION, queue.exception_error)
            error = queue.exception_error or 0
        elif queue.nmi_injected or queue.nmi_pending:
            value, error = events.encode(Vector.NMI, EventType.NMI), 0  # bhyve writes vector 2 (IDT_NMI)
        elif queue.interrupt_injected and queue.interrupt_soft:
            m.log(Actor.L0, Action.NOTE, BHYVE_UNDESCRIBED, "bhyve's userspace cannot inject a software interrupt")
            m.set_anomaly(Outcome.UNSPECIFIED)
            return
        elif queue.interrupt_injected:
            value, error = events.encode(queue.interrupt_nr, EventType.INTR), 0
        else:
            return
        subject = queue.subject
        queue.clear_all()  # taken out of the queue into EVENTINJ
        write_event_inj(m, "BHYVE-2", value, error, "svm_eventinject", subject)
        self.note_next_rip(m, value)

    def note_next_rip(self, m: Machine, value: int) -> None:
        """BHYVE-3: a soft event goes out with the NextRIP the last exit left (0 after an #NPF) [I]."""
        if events.is_soft_encoding(value):
            pushed = f"NextRIP {hex(m.vmcb.next_rip)}" if m.cpu_nrips else f"RIP {hex(m.vmcb.rip)}"
            m.log(Actor.L0, Action.NOTE, BHYVE_3_CONSEQUENCE, f"NextRIP not written: the CPU pushes {pushed}")

    def cancel_injection(self, m: Machine) -> None:
        """An abandoned entry is not described for bhyve: EVENTINJ is left for the next entry."""
        m.log(Actor.L0, Action.CANCEL, BHYVE_UNDESCRIBED, "entry abandoned: EVENTINJ left in the VMCB (not described)")

    # -- nesting: not upstream (BHYVE-6); vm_init refuses a nested set-up -------------------------------------------

    def nested_vmrun(self, m: Machine, step: L1Vmrun) -> bool:
        self.refuse(m, "BHYVE-6", "nested SVM is not upstream in bhyve")
        return False

    def nested_vmexit(self, m: Machine, exit_: Exit) -> None:
        self.refuse(m, "BHYVE-6", "nested SVM is not upstream in bhyve")

    def set_nested_state(self, m: Machine, saved: NestedState) -> None:
        self.refuse(m, "BHYVE-6", "nested SVM is not upstream in bhyve")
