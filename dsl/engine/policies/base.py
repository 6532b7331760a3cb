"""The hypervisor interface every policy implements, and the helpers the hooks share.

A policy is stateless: the state lives in the `Machine` (the vCPU). The run loop calls, in KVM's order:
`vm_init` once; before each entry `before_vmrun` (nested fix-ups) and `inject_pending_event`; `cancel_injection`
when an entry is abandoned; after each #VMEXIT `complete_interrupts`, `after_vmrun`, then `handle_exit` (L0) or
`nested_vmexit` (reflected to L1). Nested VMRUN and save/restore go through `nested_vmrun` and
`set_nested_state`. A new hypervisor (xen, virtualbox, bhyve) is one module subclassing `Policy`.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from dsl.engine import events
from dsl.engine.cpu import Exit
from dsl.engine.machine import Machine
from dsl.engine.program import L1Vmrun
from dsl.engine.result import Action
from dsl.engine.vocab import Actor, ExitCode, PageTable, PolicyName


@attrs.frozen
class NestedState:
    """What KVM_GET_NESTED_STATE (+ KVM_GET_VCPU_EVENTS / KVM_GET_REGS) carries to a fresh vCPU."""

    run_pending: bool
    vmcb12_event_inj: int
    vmcb12_event_inj_err: int
    vmcb12_next_rip: int
    l2_rip: int
    l2_cs_base: int
    regs_first: bool
    vmcb02_next_rip: int  # what a faithful save/restore would carry (the architectural policy uses it)


class Policy:
    """A hypervisor on SVM. Subclasses override the hooks whose behaviour their release changed."""

    name: ClassVar[PolicyName]
    #: Instruction intercepts L0 sets in the VMCB beyond those every policy sets (HLT, CPUID, IOIO, MSR, VMMCALL):
    #: the CPU exits with these codes instead of executing the instruction (H-18, H-20), e.g. Xen's ICEBP (XEN-4).
    intercepted_instructions: ClassVar[tuple[ExitCode, ...]] = ()

    # -- set-up ----------------------------------------------------------------------------------------------------

    def vm_init(self, m: Machine) -> None:
        """Check the configuration when the VM is created (may set an UNSUPPORTED anomaly)."""

    # -- entry -----------------------------------------------------------------------------------------------------

    def before_vmrun(self, m: Machine) -> None:
        """Fix-ups right before VMRUN (kvm-7.1's svm_fixup_nested_rips)."""

    def inject_pending_event(self, m: Machine) -> None:
        """Write EVENTINJ for the queued event, re-injections first."""
        raise NotImplementedError

    def cancel_injection(self, m: Machine) -> None:
        """The entry was abandoned after injection."""
        raise NotImplementedError

    # -- exit ------------------------------------------------------------------------------------------------------

    def complete_interrupts(self, m: Machine, exit_: Exit) -> None:
        """After every VMRUN: requeue (or not) what EXITINTINFO reports."""
        raise NotImplementedError

    def after_vmrun(self, m: Machine) -> None:
        """After the completion of an L2 run (kvm-7.1 syncs vmcb02 fields into the cached vmcb12)."""

    def skip_emulated_instruction(self, m: Machine) -> bool:
        """Advance RIP past an intercepted instruction; False when it failed."""
        raise NotImplementedError

    def handle_exit(self, m: Machine, exit_: Exit) -> None:
        """L0 handles an exit it owns: maps pages, emulates intercepted instructions, reports debug exits."""
        if exit_.fixes is not None:
            table, page = exit_.fixes
            m.missing[table].discard(page)
            m.log(Actor.L0, Action.HANDLE, "", f"L0 maps page {page:#x} in its {table.value} tables")
        elif exit_.code in (ExitCode.NPF, ExitCode.EXCP_PF):
            m.log(Actor.L0, Action.HANDLE, "", "L0 fixes its page tables (shadow #PF / #NPF handled)")
        if exit_.code in (ExitCode.HLT, ExitCode.CPUID, ExitCode.IOIO, ExitCode.MSR, ExitCode.VMMCALL):
            m.log(Actor.L0, Action.HANDLE, "", f"L0 emulates the intercepted instruction (exit {exit_.code:#x})")
            if not self.skip_emulated_instruction(m):
                self.emulation_failed(m)
        if exit_.code == ExitCode.EXCP_BP and m.program.options.guest_debug_sw_bp:
            m.debug_exits += 1
            m.log(Actor.L0, Action.HANDLE, "K-5.19-20", "#BP intercepted for guest debugging: KVM_EXIT_DEBUG")

    def emulation_failed(self, m: Machine) -> None:
        """An ordinary intercept skip failed: the vCPU exits to userspace with an emulation error (K-6.2-4)."""
        from dsl.engine.vocab import Outcome

        m.log(Actor.L0, Action.FAIL, "K-6.2-4", "skip of an intercepted instruction failed: emulation error")
        m.set_anomaly(Outcome.EMULATION_ERROR)

    # -- nesting ---------------------------------------------------------------------------------------------------

    def nested_vmrun(self, m: Machine, step: L1Vmrun) -> bool:
        """L1 executed VMRUN: build vmcb02; False when the nested VMRUN fails (VMEXIT_INVALID to L1)."""
        raise NotImplementedError

    def nested_vmexit(self, m: Machine, exit_: Exit) -> None:
        """Reflect an exit of L2 to L1 (nested_svm_vmexit)."""
        raise NotImplementedError

    def set_nested_state(self, m: Machine, saved: NestedState) -> None:
        """KVM_SET_NESTED_STATE into a fresh vCPU."""
        raise NotImplementedError


# -- helpers shared by the hooks -----------------------------------------------------------------------------------


def write_event_inj(m: Machine, rule: str, value: int, error_code: int, label: str) -> None:
    """Write EVENTINJ (+ error code); the subject mark travels with the queued event."""
    vmcb = m.vmcb
    changes = (
        m.put(vmcb, "event_inj", value, "vmcb."),
        m.put(vmcb, "event_inj_err", error_code, "vmcb."),
    )
    m.inj_subject = m.kvm.queue.subject
    if m.kvm.queue.subject and m.subject is not None and (m.subject.requeued or m.subject.dropped):
        m.subject.reinjected = True
    m.log(Actor.L0, Action.INJECT, rule, f"{label}: EVENTINJ {events.describe(value)}", *changes)


def drop(m: Machine, rule: str, message: str) -> None:
    """The injection hook writes nothing: a guest instruction is retried, an injected event is lost."""
    if m.kvm.queue.subject and m.subject is not None:
        m.subject.dropped = True
    m.log(Actor.L0, Action.DROP, rule, message)


def unmapped_code(m: Machine, linear: int, length: int) -> int | None:
    """The first page of the code range missing from the guest's tables (a fetch or decode #PF)."""
    return m.first_missing_page(PageTable.GUEST, linear, length)
