"""`kvm-7.1` (= `kvm-mainline`): nested save/restore fixes and the EVENTINJ check (kvm.md § 6, K-7.1-1 … K-7.1-9).

kvm-6.19 plus Yosry Ahmed's fixes: NextRIP and the interrupt shadow synced back to the cached vmcb12 (K-7.1-1, -2);
vmcb02 next_rip from vmcb12 unless L1 lacks NRIPS on the first run (K-7.1-3), L2's RIP stuffed and the soft-event
fields computed right before VMRUN (K-7.1-4, -5); invalid vmcb12 EVENTINJ fails the nested VMRUN (K-7.1-6); flags
cleared on a nested #VMEXIT (K-7.1-7). Hardware without NRIPS keeps its branches (K-7.1-9 reading B).
"""

from __future__ import annotations

from dsl.engine import events
from dsl.engine.cpu import Exit
from dsl.engine.machine import Machine
from dsl.engine.policies.base import copy_event_inj
from dsl.engine.policies.kvm_6_19 import Kvm619
from dsl.engine.result import Action, SoftIntRecord, Vmcb12Exit
from dsl.engine.vocab import Actor, EventType, ExitCode, Outcome, PolicyName, Protection, Vector

#: Exception vectors a vmcb12 EVENTINJ of type 3 may carry (K-7.1-6); #CP needs SHSTK, #VC needs SEV-ES.
VALID_EXCEPTION_VECTORS: tuple[int, ...] = (0, 1, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 19, 28, 30)


class Kvm71(Kvm619):
    """Nested next_rip and soft_int_* computed from the live L2 state right before VMRUN."""

    name = PolicyName.KVM_7_1
    vmexit_rule = "K-6.0-24"

    def first_run_without_l1_nrips(self, m: Machine) -> bool:
        """K-7.1-3: only the first run after L1's VMRUN, for an L1 without NRIPS, uses L2's current RIP."""
        return not self.nrips_enabled(m) and m.kvm.nested_run_pending

    def check_vmcb12(self, m: Machine) -> None:
        """K-7.1-6: a vmcb12 EVENTINJ with a reserved type or a non-exception vector fails the nested VMRUN."""
        value = m.kvm.vmcb12.event_inj
        if not events.is_valid(value):
            return
        event_type, vector = events.event_type_of(value), events.vector_of(value)
        nesting = m.program.setup.nesting
        allowed = VALID_EXCEPTION_VECTORS
        if nesting is not None and nesting.l1_shstk:
            allowed += (Vector.CP,)
        if m.protection in (Protection.SEV_ES, Protection.SEV_SNP):
            allowed += (Vector.VC,)
        reason = None
        if event_type is None:
            reason = f"reserved type {events.type_of(value)}"
        elif event_type is EventType.EXCEPTION and vector not in allowed:
            reason = f"vector {hex(vector)} is not a valid exception for L2"
        if reason is None:
            return
        m.kvm.soft_int = SoftIntRecord()
        m.kvm.nmi_l1_to_l2 = False
        m.vmcb12_exits.append(Vmcb12Exit(ExitCode.INVALID, 0, 0, 0))
        m.l1_has_control = True
        m.log(Actor.L0, Action.FAIL, "K-7.1-6", f"nested VMRUN fails: {reason}; L1 gets VMEXIT_INVALID")
        m.set_anomaly(Outcome.VMEXIT_INVALID)

    def prepare_control(self, m: Machine, rip: int, cs_base: int) -> None:
        """K-7.1-3/-5: copy vmcb12 next_rip unless it is L1's first run without NRIPS; soft fields at run time."""
        kvm, cached, vmcb02 = m.kvm, m.kvm.vmcb12, m.vmcb02
        copy_event_inj(m, "K-6.0-19")
        first_without = self.first_run_without_l1_nrips(m)
        if m.cpu_nrips and not first_without:
            change = m.put(vmcb02, "next_rip", cached.next_rip, "vmcb02.")
            m.log(Actor.L0, Action.PREPARE, "K-7.1-3", "vmcb02 next_rip = vmcb12 next_rip", change)
        value = cached.event_inj
        kvm.nmi_l1_to_l2 = events.is_valid(value) and events.event_type_of(value) is EventType.NMI
        if events.is_valid(value) and events.is_soft_encoding(value):
            next_rip = kvm.soft_int.next_rip if first_without else cached.next_rip
            kvm.soft_int = SoftIntRecord(injected=True, next_rip=next_rip)
            m.log(Actor.L0, Action.SAVE, "K-7.1-5", "L1→L2 soft event: soft_int_injected; fields set at VMRUN")

    def set_nested_run_soft_int_state(self, m: Machine) -> None:
        """svm_set_nested_run_soft_int_state (K-7.1-5): CS base and RIPs from the live L2 state."""
        kvm, vmcb = m.kvm, m.vmcb
        next_rip = kvm.soft_int.next_rip if self.nrips_enabled(m) else vmcb.rip
        record = SoftIntRecord(injected=True, csbase=vmcb.cs_base, old_rip=vmcb.rip, next_rip=next_rip)
        m.log(
            Actor.L0,
            Action.SAVE,
            "K-7.1-5",
            f"soft_int {{old {hex(vmcb.rip)}, next {hex(next_rip)}, csbase {hex(vmcb.cs_base)}}} from live L2 state",
            m.put(kvm, "soft_int", record, "kvm."),
        )

    def before_vmrun(self, m: Machine) -> None:
        """svm_fixup_nested_rips (K-7.1-4, K-7.1-5a)."""
        kvm = m.kvm
        if not (kvm.guest_mode and kvm.nested_run_pending):
            return
        if m.cpu_nrips and not self.nrips_enabled(m):
            change = m.put(m.vmcb02, "next_rip", m.vmcb02.rip, "vmcb02.")
            m.log(Actor.L0, Action.PREPARE, "K-7.1-4", "L1 without NRIPS: vmcb02 next_rip = current L2 RIP", change)
        if kvm.soft_int.injected:
            self.set_nested_run_soft_int_state(m)

    def complete_soft_interrupt(self, m: Machine, vector: int, event_type: EventType | None) -> None:
        """K-7.1-5b: a cancelled first entry sets the fields before the re-stuff / unwind decision."""
        if m.kvm.guest_mode and m.kvm.nested_run_pending:
            self.set_nested_run_soft_int_state(m)
        super().complete_soft_interrupt(m, vector, event_type)

    def after_vmrun(self, m: Machine) -> None:
        """K-7.1-1/-2: vmcb02's next_rip and interrupt shadow synced into the cached vmcb12 after L2 ran."""
        if not m.kvm.guest_mode:
            return
        cached = m.kvm.vmcb12
        change = m.put(cached, "next_rip", m.vmcb02.next_rip, "vmcb12.")
        m.log(Actor.L0, Action.SAVE, "K-7.1-1", "sync NextRIP to the cached vmcb12", change)
        change = m.put(cached, "int_shadow", m.vmcb02.int_shadow, "vmcb12.")
        m.log(Actor.L0, Action.SAVE, "K-7.1-2", "sync the interrupt shadow to the cached vmcb12", change)

    def nested_vmexit(self, m: Machine, exit_: Exit) -> None:
        """K-7.1-7: nested_svm_vmexit also clears nmi_l1_to_l2 and soft_int_injected."""
        super().nested_vmexit(m, exit_)
        kvm = m.kvm
        if kvm.soft_int.injected or kvm.nmi_l1_to_l2:
            kvm.nmi_l1_to_l2 = False
            kvm.soft_int = SoftIntRecord()
            m.log(Actor.L0, Action.NOTE, "K-7.1-7", "nested #VMEXIT clears soft_int_injected and nmi_l1_to_l2")
