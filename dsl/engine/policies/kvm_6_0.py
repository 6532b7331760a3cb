"""`kvm-6.0`: the seed series as released (kvm.md § 2, K-6.0-1 … K-6.0-32) — re-inject instead of retrying.

kvm-5.19 plus: the skip with optional side effects (K-6.0-3), soft-event bookkeeping `soft_int_*` (K-6.0-5),
re-injection of INT3/INTO/INT n with re-stuff / unwind on completion (K-6.0-9 … -11), soft interrupts injected
as SOFT (K-6.0-7), L1→L2 NMI kept apart from L1's NMI state (K-6.0-8), and nested next_rip / soft-event tracking
(K-6.0-19 … -24). The option `seed_as_committed` models the seed before da0b93d65e5b (K-6.0-20 variant).
"""

from __future__ import annotations

from dsl.engine import events
from dsl.engine.cpu import Exit
from dsl.engine.machine import Machine
from dsl.engine.policies.base import (
    NestedState,
    clear_queue,
    copy_event_inj,
    drop,
    in_flight_is_subject,
    requeue,
    write_event_inj,
)
from dsl.engine.policies.kvm_5_19 import Kvm519, restore_fresh
from dsl.engine.result import Action, SoftIntRecord
from dsl.engine.vocab import Actor, EventType, PolicyName, Vector


class Kvm60(Kvm519):
    """Re-inject soft events; learn next_rip by a look-ahead skip when the CPU cleared it."""

    name = PolicyName.KVM_6_0
    vmexit_rule = "K-6.0-24"

    # -- the skip (K-6.0-3, K-6.0-4) -------------------------------------------------------------------------------

    def skip(self, m: Machine, commit: bool, soft_vector: int | None) -> bool:
        """__svm_skip_emulated_instruction(commit_side_effects), K-6.0-3."""
        vmcb, kvm = m.vmcb, m.kvm
        if m.state_protected:
            m.log(Actor.L0, Action.SKIP, "K-6.0-31", "SEV-ES/SNP: the skip succeeds without touching RIP")
        else:
            if kvm.nrips and vmcb.next_rip:
                kvm.next_rip = vmcb.next_rip  # taken as is: no decode, no check (K-6.19-5)
                self.note_stale_next_rip(m)
            if not kvm.next_rip:
                saved_rflags = vmcb.rflags
                if not self.emulate_skip(m, soft_vector):
                    return False
                if not commit and vmcb.rflags != saved_rflags:
                    change = m.put(vmcb, "rflags", saved_rflags, "vmcb.")
                    m.log(Actor.L0, Action.UNWIND, "K-6.0-3", "look-ahead skip: RFLAGS restored (RF kept)", change)
            else:
                change = m.put(vmcb, "rip", kvm.next_rip, "vmcb.")
                m.log(Actor.L0, Action.SKIP, "K-6.0-3", f"skip to next_rip {hex(kvm.next_rip)} (no decode)", change)
        if commit and vmcb.int_shadow:
            m.log(Actor.L0, Action.SKIP, "K-6.0-16", "clear the interrupt shadow", m.put(vmcb, "int_shadow", False))
        return True

    def skip_emulated_instruction(self, m: Machine) -> bool:
        """K-6.0-4: the committing skip, as K-5.19-6."""
        return self.skip(m, commit=True, soft_vector=None)

    def expected_vector(self, vector: int) -> int | None:
        """The vector the decoded opcode must raise: none before kvm-6.19 (K-6.19-2)."""
        return None

    def update_soft_interrupt_rip(self, m: Machine, vector: int) -> bool:
        """svm_update_soft_interrupt_rip (K-6.0-5): learn the next RIP, record soft_int_*, write next_rip."""
        vmcb, kvm = m.vmcb, m.kvm
        old = vmcb.rip
        if not self.skip(m, commit=not kvm.nrips, soft_vector=self.expected_vector(vector)):
            return False
        new = vmcb.rip
        record = SoftIntRecord(injected=True, csbase=vmcb.cs_base, old_rip=old, next_rip=new)
        changes = [m.put(kvm, "soft_int", record, "kvm.")]
        if kvm.nrips:
            changes.append(m.put(vmcb, "rip", old, "vmcb."))
        if m.cpu_nrips:
            changes.append(m.put(vmcb, "next_rip", new, "vmcb."))
            m.stale_next_rip = False
        m.log(
            Actor.L0,
            Action.SAVE,
            "K-6.0-5" if m.cpu_nrips or kvm.nrips else "K-6.0-32",
            f"soft_int {{old {hex(old)}, next {hex(new)}, csbase {hex(vmcb.cs_base)}}}",
            *changes,
        )
        return True

    # -- injection (K-6.0-6 … K-6.0-8, K-6.0-18) -------------------------------------------------------------------

    def trace_exception(self, m: Machine, reinjected: bool) -> None:
        """kvm_inj_exception with " [reinjected]" (K-6.0-18)."""
        queue = m.kvm.queue
        name = events.VECTOR_NAMES[queue.exception_vector]
        error = f" ({hex(queue.exception_error)})" if queue.exception_error is not None else ""  # iff valid
        m.tracepoints.append(f"kvm_inj_exception: {name}{error}{' [reinjected]' if reinjected else ''}")

    def trace_irq(self, m: Machine, reinjected: bool) -> None:
        queue = m.kvm.queue
        kind = "Soft/INTn" if queue.interrupt_soft else "IRQ"
        m.tracepoints.append(f"kvm_inj_virq: {kind} {hex(queue.interrupt_nr)}{' [reinjected]' if reinjected else ''}")

    def queue_exception(self, m: Machine) -> None:
        """svm_queue_exception (K-6.0-6): #BP/#OF go through the soft-event bookkeeping; -EIO drops them."""
        queue = m.kvm.queue
        vector, error = queue.exception_vector, queue.exception_error
        if events.is_soft_exception(vector) and not self.update_soft_interrupt_rip(m, vector):
            drop(m, "K-6.0-6", f"{Vector(vector).mnemonic}: the skip failed, EVENTINJ not written")
            return
        value = events.encode(vector, EventType.EXCEPTION, error)
        write_event_inj(m, "K-6.0-6", value, error or 0, self.exception_hook)

    exception_hook = "svm_queue_exception"

    def inject_irq(self, m: Machine) -> None:
        """svm_inject_irq (K-6.0-7): no BUG_ON; a soft interrupt is injected as SOFT with next_rip.

        The tracepoint follows the skip: a dropped soft interrupt returns before it and is never traced.
        """
        queue = m.kvm.queue
        event_type = EventType.INTR
        if queue.interrupt_soft:
            if not self.update_soft_interrupt_rip(m, queue.interrupt_nr):
                drop(m, "K-6.0-7", f"INT {hex(queue.interrupt_nr)}: the skip failed, EVENTINJ not written")
                return
            event_type = EventType.SOFT
        self.trace_irq(m, reinjected=True)  # the engine queues interrupts only as interrupt.injected
        write_event_inj(m, "K-6.0-7", events.encode(queue.interrupt_nr, event_type), 0, "svm_inject_irq")

    def inject_nmi(self, m: Machine) -> None:
        """svm_inject_nmi (K-6.0-8): an L1→L2 NMI leaves L1's NMI state alone."""
        write_event_inj(m, "K-6.0-8", events.encode(0, EventType.NMI), 0, "svm_inject_nmi")
        if m.kvm.nmi_l1_to_l2 and not m.kvm.guest_mode:
            # Left set by a nested #VMEXIT during an L1→L2 NMI (K-6.0-25); kvm-7.1 clears it there (K-7.1-7).
            m.log(Actor.L0, Action.NOTE, "K-7.1-7", "stale nmi_l1_to_l2: the NMI into L1 leaves L1's NMIs unmasked")
            return
        if m.kvm.nmi_l1_to_l2:
            m.log(Actor.L0, Action.NOTE, "K-6.0-8", "NMI injected by L1 into L2: L1's NMI mask untouched")
            return
        self.mask_nmis(m, "K-6.0-8")

    # -- completion (K-6.0-9 … K-6.0-12, K-6.0-15) -----------------------------------------------------------------

    def complete_interrupts(self, m: Machine, exit_: Exit | None) -> None:
        """svm_complete_interrupts (K-6.0-9): the soft-event record is consumed by exactly one VMRUN."""
        kvm, vmcb = m.kvm, m.vmcb
        l1nmi, soft = kvm.nmi_l1_to_l2, kvm.soft_int.injected
        kvm.nmi_l1_to_l2 = False
        if soft:
            record = kvm.soft_int
            kvm.soft_int = SoftIntRecord(False, record.csbase, record.old_rip, record.next_rip)
        clear_queue(m, "K-6.0-9")
        info = vmcb.exit_int_info
        if not events.is_valid(info):
            if soft:
                m.log(Actor.L0, Action.COMPLETE, "K-6.0-12", "EXITINTINFO not valid: the soft event was delivered")
            return
        chain = in_flight_is_subject(m, exit_)
        vector, event_type = events.vector_of(info), events.event_type_of(info)
        error = vmcb.exit_int_info_err if events.has_error_code(info) else None
        if soft:
            self.complete_soft_interrupt(m, vector, event_type)
        if event_type is EventType.NMI:
            requeue(m, "K-6.0-9", chain, nmi=True)
            kvm.nmi_l1_to_l2 = l1nmi
        elif event_type is EventType.EXCEPTION:
            if vector != Vector.VC:
                requeue(m, "K-6.0-9", chain, exception=(vector, error))
        elif event_type is EventType.INTR:
            requeue(m, "K-6.0-9", chain, interrupt=(vector, False))
        elif event_type is EventType.SOFT:
            requeue(m, "K-6.0-9", chain, interrupt=(vector, True))

    def complete_soft_interrupt(self, m: Machine, vector: int, event_type: EventType | None) -> None:
        """svm_complete_soft_interrupt: re-stuff next_rip (nrips=1, K-6.0-10) or unwind RIP (nrips=0, K-6.0-11)."""
        kvm, vmcb = m.kvm, m.vmcb
        record = kvm.soft_int
        soft_type = event_type is EventType.SOFT
        exception = event_type is EventType.EXCEPTION
        if kvm.nrips and (soft_type or (exception and events.is_soft_exception(vector))):
            if m.is_linear_rip(record.old_rip + record.csbase):
                change = m.put(vmcb, "next_rip", record.next_rip, "vmcb.")
                m.stale_next_rip = False
                m.log(Actor.L0, Action.RESTUFF, "K-6.0-10", f"re-stuff next_rip {hex(record.next_rip)}", change)
            else:
                self.linear_mismatch(m, record.old_rip, record.old_rip + record.csbase, "no re-stuff")
        elif not kvm.nrips and (soft_type or exception):
            if m.is_linear_rip(record.next_rip + record.csbase):
                change = m.put(vmcb, "rip", record.old_rip, "vmcb.")
                m.log(Actor.L0, Action.UNWIND, "K-6.0-11", f"unwind RIP to {hex(record.old_rip)}", change)
            else:
                self.linear_mismatch(m, record.next_rip, record.next_rip + record.csbase, "no unwind")

    def linear_mismatch(self, m: Machine, rip: int, comparand: int, what: str) -> None:
        """The comparison failed: K-6.0-28 when RIP is the recorded one but the linear sums differ (CS base)."""
        rule = "K-6.0-28" if m.vmcb.rip == rip else ""
        m.log(Actor.L0, Action.NOTE, rule, f"linear RIP {hex(m.linear_rip())} != {hex(comparand)}: {what}")

    # -- nesting (K-6.0-19 … K-6.0-24) -----------------------------------------------------------------------------

    def prepare_control(self, m: Machine, rip: int, cs_base: int) -> None:
        """nested_vmcb02_prepare_control: next_rip from vmcb12 (K-6.0-19), L1→L2 event tracking (K-6.0-20)."""
        cached, vmcb02 = m.kvm.vmcb12, m.vmcb02
        copy_event_inj(m, "K-6.0-19")
        if self.nrips_enabled(m):
            change = m.put(vmcb02, "next_rip", cached.next_rip, "vmcb02.")
            m.log(Actor.L0, Action.PREPARE, "K-6.0-19", "vmcb02 next_rip = vmcb12 next_rip", change)
        elif m.cpu_nrips:
            change = m.put(vmcb02, "next_rip", rip, "vmcb02.")
            m.log(Actor.L0, Action.PREPARE, "K-6.0-19", "L1 without NRIPS: vmcb02 next_rip = vmcb12 RIP", change)
        self.track_l1_event(m, rip, cs_base)

    def track_l1_event(self, m: Machine, rip: int, cs_base: int) -> None:
        """K-6.0-20: nmi_l1_to_l2 and soft_int_* for an L1→L2 event."""
        kvm, cached = m.kvm, m.kvm.vmcb12
        value = cached.event_inj
        kvm.nmi_l1_to_l2 = events.is_valid(value) and events.event_type_of(value) is EventType.NMI
        if not (events.is_valid(value) and events.is_soft_encoding(value)):
            return
        rule = "K-6.0-20"
        csbase = cs_base
        if m.program.options.seed_as_committed:
            csbase = m.vmcb02.cs_base  # still the previous L2 run's CS base: control is prepared first
            rule = "K-6.0-20"
            m.log(Actor.L0, Action.NOTE, rule, f"seed as committed: soft_int_csbase from stale vmcb02 ({hex(csbase)})")
        next_rip = cached.next_rip if self.nrips_enabled(m) else rip
        record = SoftIntRecord(injected=True, csbase=csbase, old_rip=rip, next_rip=next_rip)
        if not self.nrips_enabled(m):
            m.log(Actor.L0, Action.NOTE, "K-6.0-23", "L1 without NRIPS: old = next = vmcb12 RIP")
        m.log(
            Actor.L0,
            Action.SAVE,
            rule,
            f"L1→L2 soft event: soft_int {{old {hex(rip)}, next {hex(next_rip)}, csbase {hex(csbase)}}}",
            m.put(kvm, "soft_int", record, "kvm."),
        )

    def set_nested_state(self, m: Machine, saved: NestedState) -> None:
        """KVM_SET_NESTED_STATE (K-6.0-21): control prepared with vmcb02's stale save.rip and CS base."""
        restore_fresh(m, saved)
        self.prepare_control(m, m.vmcb02.rip, m.vmcb02.cs_base)
        m.vmcb02.rip, m.vmcb02.cs_base = saved.l2_rip, saved.l2_cs_base
