"""`kvm-5.19`: Linux v5.19, the last release that retries soft events (kvm.md § 1, K-5.19-1 … K-5.19-25).

Hooks are named after the KVM functions they model (`svm_skip_emulated_instruction`, `svm_queue_exception`,
`svm_inject_irq`, `svm_complete_interrupts` …). Later policies subclass this one and override what changed.
"""

from __future__ import annotations

from dsl.engine import events
from dsl.engine.cpu import PF_FETCH_ERROR, Exit
from dsl.engine.decode import MAX_INSN_LENGTH, KvmDecode, kvm_decode
from dsl.engine.machine import ADDRESS_MASK_16, Machine, Vmcb
from dsl.engine.policies.base import (
    NestedState,
    Policy,
    cache_vmcb12,
    clear_queue,
    copy_event_inj,
    in_flight_is_subject,
    prepare_save,
    reflect,
    requeue,
    unmapped_code,
    write_event_inj,
)
from dsl.engine.program import L1Vmrun
from dsl.engine.result import Action, Change
from dsl.engine.rules import UD_INTERCEPT_RULE
from dsl.engine.vocab import (
    Actor,
    CpuMode,
    EventType,
    ExitCode,
    InjectionSource,
    Outcome,
    PolicyName,
    Protection,
    Vector,
)


class Kvm519(Policy):
    """Retry: soft events whose delivery is cut short are not requeued; the guest re-executes the instruction."""

    name = PolicyName.KVM_5_19

    # -- parameters ------------------------------------------------------------------------------------------------

    def nrips_enabled(self, m: Machine) -> bool:
        """L1 sees NRIPS only if the effective `nrips` is 1 and L1's CPUID has the bit (K-5.19-3)."""
        nesting = m.program.setup.nesting
        return m.kvm.nrips and nesting is not None and nesting.l1_nrips

    def intercepted_exceptions(self, protection: Protection) -> tuple[int, ...]:
        """#UD, for the emulator (UD_INTERCEPT_RULE); not for SEV guests, whose code KVM cannot decode
        (init_vmcb clears it for them; sev_init_vmcb in later trees)."""
        return (Vector.UD,) if protection is Protection.NONE else ()

    def handle_exit(self, m: Machine, exit_: Exit) -> None:
        """ud_interception: the emulator declines the instruction and queues #UD for the guest (UD_INTERCEPT_RULE)."""
        super().handle_exit(m, exit_)
        if exit_.code != ExitCode.EXCP_UD:
            return
        queue = m.kvm.queue
        queue.exception_pending, queue.exception_vector, queue.exception_error = True, Vector.UD, None
        m.log(Actor.L0, Action.QUEUE, UD_INTERCEPT_RULE, "#UD intercepted: the emulator declines it, #UD queued")

    def userspace_rule(self, source: InjectionSource) -> str:
        """KVM_SET_VCPU_EVENTS fills the queue (K-5.19-19); KVM_SET_GUEST_DEBUG's #BP intercept (K-5.19-20)."""
        return "K-5.19-20" if source is InjectionSource.GUEST_DEBUG else "K-5.19-19"

    # -- the skip (K-5.19-6, K-5.19-7) -----------------------------------------------------------------------------

    def skip_emulated_instruction(self, m: Machine) -> bool:
        """K-5.19-6: next_rip from the VMCB if `nrips`, else decode; then clear the interrupt shadow."""
        vmcb, kvm = m.vmcb, m.kvm
        if not m.state_protected:
            if kvm.nrips and vmcb.next_rip:
                kvm.next_rip = vmcb.next_rip
                self.note_stale_next_rip(m)
            if not kvm.next_rip:
                if not self.emulate_skip(m, None):
                    return False
            else:
                m.log(Actor.L0, Action.SKIP, "K-5.19-6", "skip to next_rip", m.put(vmcb, "rip", kvm.next_rip, "vmcb."))
        if vmcb.int_shadow:
            m.log(Actor.L0, Action.SKIP, "K-5.19-6", "clear the interrupt shadow", m.put(vmcb, "int_shadow", False))
        return True

    def note_stale_next_rip(self, m: Machine) -> None:
        """A next_rip left by an earlier intercepted instruction is trusted as is (K-6.0-26)."""
        if m.stale_next_rip:
            m.log(Actor.L0, Action.NOTE, "K-6.0-26", f"next_rip {hex(m.vmcb.next_rip)} is stale (earlier intercept)")

    def emulate_skip(self, m: Machine, soft_vector: int | None) -> bool:
        """x86_emulate_instruction(EMULTYPE_SKIP), K-5.19-7: True = "1" (success or RIP unchanged), False = "0"."""
        vmcb, kvm = m.vmcb, m.kvm
        if m.protection is Protection.SEV:  # step a: no instruction bytes for an encrypted guest
            return self.cannot_read_sev_code(m)
        kvm.queue.clear_exception()  # step b
        linear = m.linear(vmcb.rip)
        decoded = kvm_decode(m.read(linear, MAX_INSN_LENGTH), m.mode.bitness)
        missing = unmapped_code(m, linear, decoded.length if decoded is not None else 1)
        if missing is not None:
            return self.decode_fault(m, linear)
        if decoded is None:  # step e
            kvm.insn_emulation_fail += 1
            m.log(Actor.L0, Action.FAIL, "K-5.19-7", f"the emulator cannot decode the bytes at {hex(linear)}")
            return False
        m.log(
            Actor.L0, Action.DECODE, "K-5.19-7", f"decode at {hex(vmcb.rip)}: {decoded.text} ({decoded.length} bytes)"
        )
        if not self.opcode_matches(m, decoded, soft_vector):
            return False
        new_rip = vmcb.rip + decoded.length
        if m.mode.bitness == 16 and new_rip > ADDRESS_MASK_16:
            m.log(Actor.L0, Action.NOTE, "H-32", "the skip overflows a 16-bit IP: KVM's behaviour is not described")
            m.set_anomaly(Outcome.UNSPECIFIED)
        if m.mode is not CpuMode.LONG_64:
            new_rip &= 0xFFFF_FFFF  # step f: 32-bit wrap (5e854864ee43)
        changes: list[Change] = [m.put(vmcb, "rip", new_rip, "vmcb.")]
        rf = m.clear_rf()
        if rf is not None:
            changes.append(rf)
        m.log(Actor.L0, Action.SKIP, "K-5.19-7", f"RIP past the decoded instruction: {hex(new_rip)}", *changes)
        return True

    def cannot_read_sev_code(self, m: Machine) -> bool:
        """K-5.19-7 step a: the "can emulate" hook queues #UD and the emulator reports success (K-6.0-30).

        kvm_queue_exception: a benign #UD replaces an exception being injected (the #BP's locals are already
        read, so EVENTINJ still gets the #BP) and stays pending; KVM_REQ_EVENT is raised for it.
        """
        queue = m.kvm.queue
        queue.exception_injected = False
        queue.exception_pending, queue.exception_vector, queue.exception_error = True, Vector.UD, None
        m.kvm.event_request = True
        m.pending_exception_seen = Vector.UD
        m.log(Actor.L0, Action.QUEUE, "K-6.0-30", "SEV: no instruction bytes; #UD queued, skip reports success")
        return True

    def decode_fault(self, m: Machine, linear: int) -> bool:
        """K-5.19-7 step d: the fetch #PF is queued for the guest and the call returns 1, RIP unchanged."""
        queue = m.kvm.queue
        queue.exception_pending, queue.exception_vector, queue.exception_error = True, Vector.PF, PF_FETCH_ERROR
        m.pending_exception_seen = Vector.PF
        m.log(Actor.L0, Action.QUEUE, "K-6.0-27", f"decode at {hex(linear)} faults: #PF queued, skip reports success")
        return True

    def opcode_matches(self, m: Machine, decoded: KvmDecode, soft_vector: int | None) -> bool:
        """No opcode check before kvm-6.19 (K-6.0-29)."""
        return True

    # -- injection (K-5.19-8 … K-5.19-11, K-5.19-18) ---------------------------------------------------------------

    def inject_pending_event(self, m: Machine) -> None:
        """x86.c inject_pending_event: re-injections first, then new events (K-5.19-18)."""
        queue = m.kvm.queue
        if queue.exception_injected:
            self.trace_exception(m, reinjected=True)
            self.queue_exception(m)
        elif queue.nmi_injected:
            self.inject_nmi(m)
        elif queue.interrupt_injected:
            self.inject_irq(m)  # traces kvm_inj_virq itself, once it knows the event goes in (K-6.0-7)
        elif queue.exception_pending:
            queue.exception_pending, queue.exception_injected = False, True
            self.trace_exception(m, reinjected=False)
            self.queue_exception(m)
        elif queue.nmi_pending:
            queue.nmi_pending, queue.nmi_injected = False, True
            self.inject_nmi(m)

    def trace_exception(self, m: Machine, reinjected: bool) -> None:
        """kvm_inj_exception (vector, error code), without a re-injection flag in kvm-5.19 (K-5.19-25).

        TP_printk("%s (0x%x)"): the error code is printed even when there is none, as 0 (printed only if valid
        from 21d4c575eb4a, K-6.0-18); real 5.10.223 prints `#BP (0x0)`.
        """
        queue = m.kvm.queue
        name = events.VECTOR_NAMES[queue.exception_vector]
        m.tracepoints.append(f"kvm_inj_exception: {name} ({hex(queue.exception_error or 0)})")

    def trace_irq(self, m: Machine, reinjected: bool) -> None:
        """kvm_inj_virq(nr), TP_printk("irq %u"): decimal until 2d61391270a3 (K-6.0-18); 5.10.223 prints `irq 48`."""
        m.tracepoints.append(f"kvm_inj_virq: irq {m.kvm.queue.interrupt_nr}")

    def queue_exception(self, m: Machine) -> None:
        """svm_queue_exception (K-5.19-8): only #BP with nrips=0 advances RIP (int3_injected)."""
        vmcb, kvm = m.vmcb, m.kvm
        vector, error = kvm.queue.exception_vector, kvm.queue.exception_error
        if vector == Vector.BP and not kvm.nrips:
            old = vmcb.rip
            self.skip_emulated_instruction(m)  # a failure is ignored
            new = vmcb.rip
            changes = (
                m.put(kvm, "int3_rip", new + vmcb.cs_base, "kvm."),
                m.put(kvm, "int3_injected", new - old, "kvm."),
            )
            m.log(Actor.L0, Action.SAVE, "K-5.19-8", "remember the INT3 advance for an unwind", *changes)
        value = events.encode(vector, EventType.EXCEPTION, error)
        write_event_inj(m, "K-5.19-8", value, error or 0, "svm_queue_exception")

    def inject_irq(self, m: Machine) -> None:
        """svm_inject_irq (K-5.19-10): BUG_ON(GIF == 0); always type INTR, even for a soft interrupt."""
        if not m.gif:
            m.log(Actor.L0, Action.BUG, "K-5.19-10", "BUG_ON(!gif_set(svm)): kernel BUG at svm.c")
            m.set_anomaly(Outcome.HOST_BUG)
            return
        self.trace_irq(m, reinjected=True)
        value = events.encode(m.kvm.queue.interrupt_nr, EventType.INTR)
        write_event_inj(m, "K-5.19-10", value, 0, "svm_inject_irq")

    def inject_nmi(self, m: Machine) -> None:
        """svm_inject_nmi (K-5.19-11): also masks NMIs — L1's, when the NMI was L1's for L2 (K-5.19-23)."""
        write_event_inj(m, "K-5.19-11", events.encode(0, EventType.NMI), 0, "svm_inject_nmi")
        self.mask_nmis(m, "K-5.19-23" if m.kvm.guest_mode else "K-5.19-11")

    def mask_nmis(self, m: Machine, rule: str) -> None:
        """HF_NMI_MASK + IRET intercept on the vCPU: L1's when nested, whether L1 or L2 is running."""
        m.kvm.nmi_masked = True
        if m.kvm.guest_mode or m.program.setup.nesting is not None:
            m.l1_nmi_masked = True
        m.log(Actor.L0, Action.SAVE, rule, "NMIs masked, IRET intercepted")

    # -- completion (K-5.19-12 … K-5.19-17) ------------------------------------------------------------------------

    def complete_interrupts(self, m: Machine, exit_: Exit | None) -> None:
        """svm_complete_interrupts (K-5.19-12 … -16)."""
        kvm, vmcb = m.kvm, m.vmcb
        int3 = kvm.int3_injected
        kvm.int3_injected = 0
        clear_queue(m, "K-5.19-12")
        info = vmcb.exit_int_info
        if not events.is_valid(info):
            return
        chain = in_flight_is_subject(m, exit_)
        vector, event_type = events.vector_of(info), events.event_type_of(info)
        error = vmcb.exit_int_info_err if events.has_error_code(info) else None
        if event_type is EventType.NMI:
            requeue(m, "K-5.19-13", chain, nmi=True)
        elif event_type is EventType.EXCEPTION:
            if vector == Vector.VC:  # #VC is never re-injected (K-5.19-14)
                return
            if events.is_soft_exception(vector):
                if vector == Vector.BP and int3 and m.is_linear_rip(kvm.int3_rip):
                    change = m.put(vmcb, "rip", vmcb.rip - int3, "vmcb.")
                    m.log(Actor.L0, Action.UNWIND, "K-5.19-14", "undo KVM's INT3 advance", change)
                self.not_requeued(m, chain, "K-5.19-14", f"soft exception {hex(vector)} not requeued: retry")
            else:
                requeue(m, "K-5.19-14", chain, exception=(vector, error))
        elif event_type is EventType.INTR:
            requeue(m, "K-5.19-15", chain, interrupt=(vector, False))
        elif event_type is EventType.SOFT:
            self.not_requeued(m, chain, "K-5.19-16", f"INT n {hex(vector)} dropped: retry")

    def not_requeued(self, m: Machine, chain: bool, rule: str, message: str) -> None:
        if chain and m.subject is not None:
            m.subject.retried = True
        m.log(Actor.L0, Action.DROP, rule, message)

    def cancel_injection(self, m: Machine) -> None:
        """svm_cancel_injection (K-5.19-17): EVENTINJ copied into EXITINTINFO, then the completion."""
        vmcb = m.vmcb
        changes = (
            m.put(vmcb, "exit_int_info", vmcb.event_inj, "vmcb."),
            m.put(vmcb, "exit_int_info_err", vmcb.event_inj_err, "vmcb."),
            m.put(vmcb, "event_inj", 0, "vmcb."),
        )
        m.log(Actor.L0, Action.CANCEL, "K-5.19-17", "entry cancelled after injection", *changes)
        self.complete_interrupts(m, None)

    # -- nesting (K-5.19-22 … K-5.19-24) ---------------------------------------------------------------------------

    def nested_vmrun(self, m: Machine, step: L1Vmrun) -> bool:
        """enter_svm_guest_mode: cache vmcb12, switch to vmcb02, prepare control then save area."""
        cache_vmcb12(m, step)
        self.check_vmcb12(m)
        if m.anomaly is Outcome.VMEXIT_INVALID:
            return False
        kvm = m.kvm
        m.set_guest_mode(True)
        kvm.nested_run_pending = True
        self.prepare_control(m, kvm.vmcb12.rip, kvm.vmcb12.cs_base)
        prepare_save(m, "K-6.0-21")
        return True

    def check_vmcb12(self, m: Machine) -> None:
        """No EVENTINJ consistency check before kvm-7.1: hardware decides (K-7.1-6)."""

    def prepare_control(self, m: Machine, rip: int, cs_base: int) -> None:
        """nested_vmcb02_prepare_control (K-5.19-22): EVENTINJ copied; next_rip is not (stale vmcb02 value)."""
        copy_event_inj(m, "K-5.19-22")

    def nested_vmexit(self, m: Machine, exit_: Exit) -> None:
        """nested_svm_vmexit (K-5.19-24): vmcb12 EXITINTINFO rebuilt from KVM's requeued state."""
        kvm = m.kvm
        info = kvm.queue.requeued_encoding()
        error = kvm.queue.exception_error if kvm.queue.exception_injected else None
        next_rip = m.vmcb02.next_rip if self.nrips_enabled(m) else 0
        reflect(m, exit_, info, error or 0, next_rip, self.vmexit_rule)
        self.leave_guest_mode(m)

    vmexit_rule = "K-5.19-24"

    def leave_guest_mode(self, m: Machine) -> None:
        m.kvm.queue.clear_all()
        m.set_guest_mode(False)
        m.l1_has_control = True

    def set_nested_state(self, m: Machine, saved: NestedState) -> None:
        """KVM_SET_NESTED_STATE (K-5.19-22): vmcb02 is fresh, its next_rip 0."""
        restore_fresh(m, saved)
        self.prepare_control(m, m.vmcb02.rip, m.vmcb02.cs_base)
        m.vmcb02.rip, m.vmcb02.cs_base = saved.l2_rip, saved.l2_cs_base


# -- helpers shared with later KVM policies ------------------------------------------------------------------------


def restore_fresh(m: Machine, saved: NestedState) -> None:
    """A fresh destination vCPU: new vmcb02 (RIP, CS base, next_rip 0), KVM's soft-event record empty."""
    from dsl.engine.result import SoftIntRecord

    kvm = m.kvm
    m.vmcb02 = Vmcb(rflags=m.vmcb02.rflags)
    kvm.soft_int, kvm.next_rip, kvm.nmi_l1_to_l2 = SoftIntRecord(), 0, False
    m.set_guest_mode(True)  # after vmcb02 is replaced: the current VMCB is the fresh one
    kvm.nested_run_pending = saved.run_pending
    cached = kvm.vmcb12
    cached.event_inj = saved.vmcb12_event_inj if saved.run_pending else 0
    cached.event_inj_err, cached.next_rip = saved.vmcb12_event_inj_err, saved.vmcb12_next_rip
    cached.rip, cached.cs_base = saved.l2_rip, saved.l2_cs_base
    order = "KVM_SET_REGS, then KVM_SET_NESTED_STATE" if saved.regs_first else "KVM_SET_NESTED_STATE, then KVM_SET_REGS"
    m.log(Actor.USERSPACE, Action.RESTORE, "K-6.0-21", f"restore into a fresh vCPU ({order})")


__all__ = ["Kvm519", "restore_fresh"]
