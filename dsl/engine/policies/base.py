"""The hypervisor interface every policy implements, and the helpers the hooks share.

A policy is stateless: the state lives in the `Machine` (the vCPU). The run loop calls, in KVM's order:
`vm_init` once; before each entry `before_vmrun` (nested fix-ups) and `inject_pending_event`; `cancel_injection`
when an entry is abandoned; after each #VMEXIT `complete_interrupts`, `after_vmrun`, then `handle_exit` (L0) or
`nested_vmexit` (reflected to L1). Nested VMRUN and save/restore go through `nested_vmrun` and
`set_nested_state`. A new hypervisor (xen, virtualbox, bhyve) is one module subclassing `Policy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import attrs

from dsl.engine import events
from dsl.engine.cpu import Exit
from dsl.engine.machine import Machine
from dsl.engine.program import L1Vmrun
from dsl.engine.result import Action, Vmcb12Exit
from dsl.engine.vocab import Actor, Evidence, ExitCode, InjectionSource, PageTable, PolicyName, Protection


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

    #: Evidence tags of the pseudo-rules only this policy cites ("xen [U]" …); spec rules are tagged in `rules`.
    evidence: ClassVar[Mapping[str, Evidence]] = MappingProxyType({})

    def intercepted_exceptions(self, protection: Protection) -> tuple[int, ...]:
        """Vectors L0 intercepts when a guest instruction raises them (beyond guest debugging's #BP)."""
        return ()

    def userspace_rule(self, source: InjectionSource) -> str:
        """The rule under which userspace (or a debugger) queues an event for this hypervisor; "" when the
        specification states none (only KVM's API is described: K-5.19-19, K-5.19-20)."""
        return ""

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
        handle_page_exit(m, exit_)
        if exit_.code in (ExitCode.HLT, ExitCode.CPUID, ExitCode.IOIO, ExitCode.MSR, ExitCode.VMMCALL):
            m.log(Actor.L0, Action.HANDLE, "", f"L0 emulates the intercepted instruction (exit {hex(exit_.code)})")
            if not self.skip_emulated_instruction(m):
                self.emulation_failed(m)
        if exit_.code == ExitCode.EXCP_BP and m.program.options.guest_debug_sw_bp:
            m.debug_exits += 1
            rule = self.userspace_rule(InjectionSource.GUEST_DEBUG)
            m.log(Actor.L0, Action.HANDLE, rule, "#BP intercepted for guest debugging: KVM_EXIT_DEBUG")

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


def write_event_inj(
    m: Machine, rule: str, value: int, error_code: int, label: str, subject: bool | None = None
) -> None:
    """Write EVENTINJ (+ error code); the subject mark travels with the queued event (or is given, when the
    hypervisor took the event out of its queue first)."""
    vmcb = m.vmcb
    changes = (
        m.put(vmcb, "event_inj", value, "vmcb."),
        m.put(vmcb, "event_inj_err", error_code, "vmcb."),
    )
    carries = m.kvm.queue.subject if subject is None else subject
    m.inj_subject = carries
    if carries and m.subject is not None and (m.subject.requeued or m.subject.dropped):
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


def clear_queue(m: Machine, rule: str) -> None:
    """The completion empties the event queue before requeueing what EXITINTINFO reports (K-5.19-12)."""
    m.kvm.queue.clear_all()
    if m.kvm.queue.describe() != m.queue_shown:
        m.log(Actor.L0, Action.COMPLETE, rule, "completion: the event queue is emptied")


def in_flight_is_subject(m: Machine, exit_: Exit | None) -> bool:
    """Whether the event EXITINTINFO reports is the scenario's subject (or the chain its delivery raised)."""
    if exit_ is None or exit_.in_flight is None:
        return m.inj_subject
    return exit_.in_flight.subject


def requeue(
    m: Machine,
    rule: str,
    chain: bool,
    *,
    nmi: bool = False,
    exception: tuple[int, int | None] | None = None,
    interrupt: tuple[int, bool] | None = None,
) -> None:
    """Put the reported event back into KVM's queue as injected (delivered first at the next entry)."""
    queue = m.kvm.queue
    if nmi:
        queue.nmi_injected = True
    elif exception is not None:
        queue.exception_injected = True
        queue.exception_vector, queue.exception_error = exception
    elif interrupt is not None:
        queue.interrupt_injected = True
        queue.interrupt_nr, queue.interrupt_soft = interrupt
    queue.subject = chain
    encoding = queue.requeued_encoding()
    m.requeued.append(encoding)
    if chain and m.subject is not None:
        m.subject.requeued = True
    m.log(Actor.L0, Action.REQUEUE, rule, f"requeue {events.describe(encoding)} as injected")


def reinject_verbatim(m: Machine, exit_: Exit | None, rule: str) -> None:
    """Copy EXITINTINFO (and its error code) into EVENTINJ unchanged, for the next VMRUN to deliver again."""
    vmcb = m.vmcb
    info, error = vmcb.exit_int_info, vmcb.exit_int_info_err
    chain = in_flight_is_subject(m, exit_)
    changes = (m.put(vmcb, "event_inj", info, "vmcb."), m.put(vmcb, "event_inj_err", error, "vmcb."))
    m.requeued.append(info)
    m.inj_subject = chain
    if chain and m.subject is not None:
        m.subject.requeued = m.subject.reinjected = True
    m.log(Actor.L0, Action.REQUEUE, rule, f"EXITINTINFO {events.describe(info)} copied into EVENTINJ", *changes)


def cache_vmcb12(m: Machine, step: L1Vmrun) -> None:
    """KVM caches vmcb12's control fields and reads its save area (RIP, CS base)."""
    cached = m.kvm.vmcb12
    cached.event_inj, cached.event_inj_err, cached.next_rip = step.event_inj, step.event_inj_err, step.next_rip
    cached.rip = step.rip if step.rip is not None else m.vmcb02.rip
    cached.cs_base = step.cs_base if step.cs_base is not None else m.vmcb02.cs_base
    m.log(
        Actor.L1,
        Action.VMRUN,
        "",
        f"L1 VMRUN: vmcb12 EVENTINJ {events.describe(step.event_inj)}, RIP {hex(cached.rip)}, "
        f"next_rip {hex(step.next_rip)}",
    )


def prepare_save(m: Machine, rule: str) -> None:
    """nested_vmcb02_prepare_save: L2's RIP and CS base from vmcb12 (after the control area, K-6.0-20)."""
    cached = m.kvm.vmcb12
    changes = (
        m.put(m.vmcb02, "rip", cached.rip, "vmcb02."),
        m.put(m.vmcb02, "cs_base", cached.cs_base, "vmcb02."),
    )
    m.log(Actor.L0, Action.PREPARE, rule, "vmcb02 save area from vmcb12", *changes)


def copy_event_inj(m: Machine, rule: str) -> None:
    """vmcb02 EVENTINJ = vmcb12 EVENTINJ; the subject mark follows an event L1 injected."""
    cached = m.kvm.vmcb12
    changes = (
        m.put(m.vmcb02, "event_inj", cached.event_inj, "vmcb02."),
        m.put(m.vmcb02, "event_inj_err", cached.event_inj_err, "vmcb02."),
    )
    m.inj_subject = events.is_valid(cached.event_inj) and m.subject is not None and m.subject.injected
    m.log(Actor.L0, Action.PREPARE, rule, "vmcb02 EVENTINJ = vmcb12 EVENTINJ", *changes)


def vmrun_without_next_rip(m: Machine, step: L1Vmrun, rule: str, note_rule: str, not_used: str, state: str) -> None:
    """An emulated VMRUN that copies vmcb12 EVENTINJ but not its NextRIP (VirtualBox, Xen): the nested guest's state
    from vmcb12, and, for a soft event, a note that the CPU pushes vmcb02's NextRIP instead (`not_used` says how)."""
    cache_vmcb12(m, step)
    kvm, vmcb02 = m.kvm, m.vmcb02
    m.set_guest_mode(True)
    kvm.nested_run_pending = True
    copy_event_inj(m, rule)
    cached = kvm.vmcb12
    if events.is_valid(cached.event_inj) and events.is_soft_encoding(cached.event_inj):
        message = f"L1's NextRIP {hex(cached.next_rip)} {not_used} {hex(vmcb02.next_rip)}"
        m.log(Actor.L0, Action.NOTE, note_rule, message)
    changes = (m.put(vmcb02, "rip", cached.rip, "vmcb02."), m.put(vmcb02, "cs_base", cached.cs_base, "vmcb02."))
    m.log(Actor.L0, Action.PREPARE, rule, state, *changes)


def reflect(m: Machine, exit_: Exit, info: int, error: int, next_rip: int, rule: str) -> None:
    """Record what L1 reads in vmcb12 after the emulated #VMEXIT; L0's queue for L2 is emptied (it went to L1)."""
    m.vmcb12_exits.append(Vmcb12Exit(exit_.code, info, error, next_rip))
    if events.is_valid(info) and m.kvm.queue.subject and m.subject is not None:
        m.subject.reflected = True
    m.kvm.queue.clear_all()
    m.log(
        Actor.L0,
        Action.REFLECT,
        rule,
        f"#VMEXIT {hex(exit_.code)} to L1: vmcb12 EXITINTINFO {events.describe(info)}, next_rip {hex(next_rip)}",
    )


def handle_page_exit(m: Machine, exit_: Exit) -> None:
    """An #NPF (or shadow #PF) exit: the hypervisor maps the page and the guest resumes."""
    if exit_.fixes is not None:
        table, page = exit_.fixes
        m.missing[table].discard(page)
        m.log(Actor.L0, Action.HANDLE, "", f"L0 maps page {hex(page)} in its {table.value} tables")
    elif exit_.code in (ExitCode.NPF, ExitCode.EXCP_PF):
        m.log(Actor.L0, Action.HANDLE, "", "L0 fixes its page tables (#NPF / shadow #PF handled)")
