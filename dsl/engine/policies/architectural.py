"""`architectural`: the ideal hypervisor — every event delivered exactly once, with the right return address.

An oracle, not an implementation: when a delivery is cut short it re-injects exactly what the CPU was delivering,
with the return address the CPU had computed for it (the model's in-flight event), so no decode, no retry, no
spurious #DB. On a CPU without NRIPS it advances RIP for the injection and puts it back if the delivery is cut
short again (H-11: emulate what the CPU cannot push). The reference the property tests compare KVM against.
"""

from __future__ import annotations

from dsl.engine import events
from dsl.engine.cpu import Exit
from dsl.engine.decode import MAX_INSN_LENGTH, OPCODE_INT3, OPCODE_INT_N, OPCODE_INTO, kvm_decode
from dsl.engine.machine import Machine, Vmcb
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
    write_event_inj,
)
from dsl.engine.program import L1Vmrun
from dsl.engine.result import Action
from dsl.engine.vocab import Actor, EventType, InjectionSource, PolicyName, Vector

_OPCODE_VECTOR: dict[int, int] = {OPCODE_INT3: Vector.BP, OPCODE_INTO: Vector.OF}


class Architectural(Policy):
    """Re-inject everything, exactly, with the architecturally right return address."""

    name = PolicyName.ARCHITECTURAL

    def userspace_rule(self, source: InjectionSource) -> str:
        return "ARCH"

    def inject_pending_event(self, m: Machine) -> None:
        queue = m.kvm.queue
        if queue.exception_pending:
            queue.exception_pending, queue.exception_injected = False, True
        if queue.nmi_pending:
            queue.nmi_pending, queue.nmi_injected = False, True
        if queue.exception_injected:
            vector, error = queue.exception_vector, queue.exception_error
            self.place_return(m, EventType.EXCEPTION, vector)
            write_event_inj(m, "ARCH", events.encode(vector, EventType.EXCEPTION, error), error or 0, "inject")
        elif queue.nmi_injected:
            write_event_inj(m, "ARCH", events.encode(0, EventType.NMI), 0, "inject NMI")
            if not m.kvm.guest_mode and m.program.setup.nesting is not None:
                # An NMI delivered to L1 blocks L1's NMIs until its IRET; one L1 gave L2 does not (K-6.0-8).
                m.l1_nmi_masked = True
                m.log(Actor.L0, Action.SAVE, "ARCH", "NMI into L1: L1's NMIs blocked until its IRET")
        elif queue.interrupt_injected:
            kind = EventType.SOFT if queue.interrupt_soft else EventType.INTR
            self.place_return(m, kind, queue.interrupt_nr)
            write_event_inj(m, "ARCH", events.encode(queue.interrupt_nr, kind), 0, "inject interrupt")

    def place_return(self, m: Machine, event_type: EventType, vector: int) -> None:
        """Put the right return address where this CPU takes it: next_rip (NRIPS) or RIP (H-6).

        A trap-like event that is not soft (ICEBP's #DB) cannot be re-injected faithfully: it is emulated by
        advancing RIP, so the pushed RIP is the one after the instruction (H-11, H-24).
        """
        vmcb = m.vmcb
        soft = events.is_soft(event_type, vector)
        if not soft:
            if m.arch_return is not None and m.arch_return != vmcb.rip:
                m.arch_origin = vmcb.rip
                change = m.put(vmcb, "rip", m.arch_return, "vmcb.")
                m.log(Actor.L0, Action.SKIP, "H-11", f"emulate the trap: RIP advanced to {hex(m.arch_return)}", change)
            return
        ret = m.arch_return if m.arch_return is not None else self.matching_next(m, vector, event_type)
        m.arch_return = ret
        if m.cpu_nrips:
            m.log(Actor.L0, Action.SAVE, "ARCH", f"next_rip = {hex(ret)}", m.put(vmcb, "next_rip", ret, "vmcb."))
        elif ret != vmcb.rip:
            m.arch_origin = vmcb.rip
            m.log(Actor.L0, Action.SKIP, "ARCH", f"RIP advanced to {hex(ret)} (H-11)", m.put(vmcb, "rip", ret, "vmcb."))

    def matching_next(self, m: Machine, vector: int, event_type: EventType) -> int:
        """For an injected soft event: after the instruction at RIP if it raises this vector, else RIP itself."""
        vmcb = m.vmcb
        decoded = kvm_decode(m.read(m.linear(vmcb.rip), MAX_INSN_LENGTH), m.mode.bitness)
        if decoded is not None and not decoded.escaped:
            raises = decoded.imm8 if decoded.final_opcode == OPCODE_INT_N else _OPCODE_VECTOR.get(decoded.final_opcode)
            if raises == vector:
                return (vmcb.rip + decoded.length) & m.rip_mask()
        return vmcb.rip

    def cancel_injection(self, m: Machine) -> None:
        vmcb = m.vmcb
        vmcb.exit_int_info, vmcb.exit_int_info_err, vmcb.event_inj = vmcb.event_inj, vmcb.event_inj_err, 0
        m.log(Actor.L0, Action.CANCEL, "ARCH", "entry cancelled: the event is kept for the next entry")
        self.complete_interrupts(m, None)

    def complete_interrupts(self, m: Machine, exit_: Exit | None) -> None:
        vmcb = m.vmcb
        clear_queue(m, "ARCH")
        if m.arch_origin is not None:
            m.log(Actor.L0, Action.UNWIND, "ARCH", "RIP back to the instruction", m.put(vmcb, "rip", m.arch_origin))
            m.arch_origin = None
        info = vmcb.exit_int_info
        if not events.is_valid(info):
            m.arch_return = None
            return
        if exit_ is not None and exit_.in_flight is not None:
            m.arch_return = exit_.in_flight.return_rip
        chain = in_flight_is_subject(m, exit_)
        vector, event_type = events.vector_of(info), events.event_type_of(info)
        error = vmcb.exit_int_info_err if events.has_error_code(info) else None
        if event_type is EventType.NMI:
            requeue(m, "ARCH", chain, nmi=True)
        elif event_type is EventType.EXCEPTION:
            requeue(m, "ARCH", chain, exception=(vector, error))
        elif event_type in (EventType.INTR, EventType.SOFT):
            requeue(m, "ARCH", chain, interrupt=(vector, event_type is EventType.SOFT))

    def skip_emulated_instruction(self, m: Machine) -> bool:
        vmcb = m.vmcb
        if m.cpu_nrips and vmcb.next_rip:
            target = vmcb.next_rip
        else:
            decoded = kvm_decode(m.read(m.linear(vmcb.rip), MAX_INSN_LENGTH), m.mode.bitness)
            if decoded is None:
                return False
            target = (vmcb.rip + decoded.length) & m.rip_mask()
        m.log(Actor.L0, Action.SKIP, "ARCH", f"skip to {hex(target)}", m.put(vmcb, "rip", target, "vmcb."))
        vmcb.int_shadow = False
        return True

    def nested_vmrun(self, m: Machine, step: L1Vmrun) -> bool:
        cache_vmcb12(m, step)
        m.set_guest_mode(True)
        m.kvm.nested_run_pending = True
        copy_event_inj(m, "ARCH")
        nesting = m.program.setup.nesting
        l1_nrips = nesting is not None and nesting.l1_nrips and m.cpu_nrips
        cached = m.kvm.vmcb12
        # The CPU L1 believes in pushes vmcb12 next_rip (NRIPS) or vmcb12 RIP (no NRIPS) for a soft event.
        m.vmcb02.next_rip = cached.next_rip if l1_nrips else cached.rip
        value = cached.event_inj
        soft = events.is_valid(value) and events.is_soft_encoding(value)
        m.arch_return = m.vmcb02.next_rip if soft and m.cpu_nrips else (cached.rip if soft else None)
        prepare_save(m, "ARCH")
        return True

    def nested_vmexit(self, m: Machine, exit_: Exit) -> None:
        nesting = m.program.setup.nesting
        l1_nrips = nesting is not None and nesting.l1_nrips and m.cpu_nrips
        vmcb02 = m.vmcb02
        next_rip = vmcb02.next_rip if l1_nrips else 0
        reflect(m, exit_, vmcb02.exit_int_info, vmcb02.exit_int_info_err, next_rip, "ARCH")
        m.set_guest_mode(False)
        m.l1_has_control = True

    def set_nested_state(self, m: Machine, saved: NestedState) -> None:
        m.vmcb02 = Vmcb(rip=saved.l2_rip, cs_base=saved.l2_cs_base, next_rip=saved.vmcb02_next_rip)
        m.set_guest_mode(True)
        m.kvm.nested_run_pending = saved.run_pending
        if saved.run_pending:
            m.vmcb02.event_inj, m.vmcb02.event_inj_err = saved.vmcb12_event_inj, saved.vmcb12_event_inj_err
        m.log(Actor.USERSPACE, Action.RESTORE, "ARCH", "faithful save/restore into a fresh vCPU")
