"""`run(program) -> Result`: build the vCPU, interpret the steps, drive entries and exits, classify the outcome.

The loop follows KVM's order (K-5.19-5, K-5.19-18): before an entry `inject_pending_event`, then the cancel check,
then the nested fix-ups and VMRUN; after every #VMEXIT `svm->next_rip = 0`, the completion, then the exit handler
(L0) or the emulated #VMEXIT to L1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dsl.engine import cpu, events
from dsl.engine.cpu import Exit
from dsl.engine.decode import MAX_INSN_LENGTH, InsnKind, cpu_decode
from dsl.engine.errors import EngineError
from dsl.engine.machine import Kvm, Machine, Subject, Vmcb, page_of
from dsl.engine.outcome import classify
from dsl.engine.policies import POLICIES, NestedState, Policy
from dsl.engine.profiles import PROFILES
from dsl.engine.program import (
    CancelEntry,
    Event,
    Execute,
    ExitFor,
    Inject,
    L1Vmrun,
    ModifyCode,
    Program,
    Reenter,
    Run,
    SaveRestore,
    SetPage,
    Step,
    VectoringFault,
)
from dsl.engine.result import Action, Result
from dsl.engine.rules import DEFERRED_EXCEPTION_RULE, weakest
from dsl.engine.validate import validate
from dsl.engine.vocab import (
    Actor,
    EventType,
    ExitCode,
    InjectionSource,
    Level,
    Outcome,
    PageTable,
)

#: Anomalies after which nothing more happens (the host oopsed, the VM cannot exist, the vCPU exited).
#: A set: whether an anomaly ended the run is one hash probe, also for None (no anomaly).
_STOPPING: frozenset[Outcome | None] = frozenset(
    (
        Outcome.HOST_BUG,
        Outcome.UNSUPPORTED,
        Outcome.VMEXIT_INVALID,
        Outcome.EMULATION_ERROR,
        Outcome.SHUTDOWN,
    )
)


#: Guest actions (instructions, handler returns) allowed per entry in `Run` before it gives up.
ACTIONS_PER_ENTRY = 8
#: The instruction kinds whose re-execution delivers the subject again (a duplicate).
_INSTRUCTION_EXITS: tuple[int, ...] = (ExitCode.HLT, ExitCode.CPUID, ExitCode.IOIO, ExitCode.MSR, ExitCode.VMMCALL)


def run(program: Program) -> Result:
    """Run one Program under its hardware profile and policy and return what was observed."""
    validate(program)
    policy = POLICIES[program.policy]
    m = build(program, policy)
    policy.vm_init(m)
    for index, step in enumerate(program.steps):
        if m.anomaly in _STOPPING:
            m.notes.append(f"steps[{index}] and later not run: {m.anomaly.value if m.anomaly else ''}")
            break
        _step(m, policy, index, step)
    return _result(m, policy)


def build(program: Program, policy: Policy) -> Machine:
    """The vCPU before the first step: the set-up's registers in the VMCB the guest runs with, under `policy`
    (the program's, looked up once by `run`)."""
    setup = program.setup
    # Positional throughout, in field order: keyword binding costs a third of building the vCPU, on every run.
    guest = Vmcb(setup.rip, setup.cs_base, setup.rflags, setup.interrupt_shadow, setup.vmcb_next_rip)
    nested = setup.nesting is not None
    vmcb01 = Vmcb() if nested else guest  # nested, the set-up's registers are L2's
    hardware = PROFILES[program.profile]
    m = Machine(
        program,
        hardware,
        setup.mode,
        setup.cpl,
        setup.gif,
        vmcb01,
        guest if nested else Vmcb(),  # vmcb02
        vmcb01,  # the current VMCB: KVM starts outside guest mode
        Kvm(program.options.nrips and hardware.nrips),
        {},  # memory
        set(),  # written
        {PageTable.GUEST: set(), PageTable.HOST: set()},  # missing
        {gate.vector: gate for gate in setup.idt},  # idt
        {},  # breakpoints
        policy.intercepted_instructions,
        policy.intercepted_exceptions(program.options.protection),
    )
    for code in setup.code:
        m.write(code.address, code.data)
    for page in setup.pages:
        (m.missing[page.table].discard if page.present else m.missing[page.table].add)(page_of(page.address))
    for bp in setup.breakpoints:
        m.breakpoints[bp.address] = bp.slot
    return m


# -- steps ---------------------------------------------------------------------------------------------------------


def _field(index: int) -> str:
    """The name errors give step `index` (built only for an error: every run steps through its program)."""
    return f"steps[{index}]"


def _step(m: Machine, policy: Policy, index: int, step: Step) -> None:
    if type(step) is not Run:
        m.debug_exit_pending = False  # userspace acted on the debug exit
    _STEP_HANDLERS[type(step)](m, policy, index, step)


def _execute(m: Machine, policy: Policy, index: int, step: Execute) -> None:
    for _ in range(step.count):
        _guest_action(m, policy, index)


def _vectoring_fault(m: Machine, policy: Policy, index: int, step: VectoringFault) -> None:
    m.armed_faults.append(step)
    target = "" if step.during is None else f" of vector {hex(step.during)}"
    m.log(Actor.CPU, Action.NOTE, "", f"the next delivery{target} hits {step.fault.value} ({step.handled_by.value})")


def _exit_for(m: Machine, policy: Policy, index: int, step: ExitFor) -> None:
    if m.in_guest:
        _after_exit(m, policy, cpu.async_exit(m, step.exit_code))
    else:
        m.armed_exits.append(step.exit_code)


def _modify_code(m: Machine, policy: Policy, index: int, step: ModifyCode) -> None:
    m.write(step.address, step.data)
    m.log(Actor.GUEST, Action.MODIFY, "H-41", f"bytes at {hex(step.address)} rewritten: {step.data.hex(' ')}")


def _set_page(m: Machine, policy: Policy, index: int, step: SetPage) -> None:
    page = page_of(step.address)
    (m.missing[step.table].discard if step.present else m.missing[step.table].add)(page)
    state = "mapped" if step.present else "unmapped"
    m.log(Actor.GUEST, Action.MODIFY, "", f"page {hex(page)} {state} in the {step.table.value} tables")


def _cancel_entry(m: Machine, policy: Policy, index: int, step: CancelEntry) -> None:
    m.cancel_armed = True


def _reenter(m: Machine, policy: Policy, index: int, step: Reenter) -> None:
    """L0 enters the guest once; after an exit reflected to L1 that guest is L1 itself (vmcb01), so L0 delivers
    what it queued for L1, e.g. an NMI from userspace (K-6.0-8, K-7.1-7)."""
    if m.in_guest:
        raise EngineError(
            _field(index), "re-enter", "L0 outside the guest (the guest is running: an exit must come first)"
        )
    if m.l1_has_control:
        m.log(Actor.L0, Action.NOTE, "", "L0 enters L1 (vmcb01): L1 runs after the reflected #VMEXIT")
    _enter(m, policy)


def _require_l0(m: Machine, index: int) -> None:
    if m.l1_has_control:
        raise EngineError(_field(index), "L0 entry", "an L1 VMRUN step first: the last exit was reflected to L1")


def _running(m: Machine) -> bool:
    """Whether the guest runs now (a function, so the type checker does not keep an earlier narrowing)."""
    return m.in_guest


def _guest_action(m: Machine, policy: Policy, index: int) -> None:
    """One guest action: enter if L0 is outside, else return from a handler, else execute the instruction."""
    _require_l0(m, index)  # the guest's instructions are L2's once nested: L1 must VMRUN it again first
    if not m.in_guest:
        delivered = len(m.deliveries)
        _enter(m, policy)
        if not _running(m) or len(m.deliveries) > delivered:
            return
    if not _returned_or_served(m, policy):
        _execute_next(m, policy)


def _returned_or_served(m: Machine, policy: Policy) -> bool:
    """What the running guest does before its next instruction: return from a handler (IRET), or take the event
    KVM requested a window for. Whether it did one of them."""
    if m.frames:
        cpu.iret(m)
        return True
    if m.kvm.event_request:
        _serve_event_request(m, policy)
        return True
    return False


def _execute_next(m: Machine, policy: Policy) -> None:
    """The guest executes the instruction at RIP; L0 (or L1) handles the exit it causes, if any."""
    exit_ = cpu.execute(m)
    if exit_ is not None:
        _after_exit(m, policy, exit_)


def _inject(m: Machine, policy: Policy, index: int, step: Inject) -> None:
    """Userspace (KVM_SET_VCPU_EVENTS, K-5.19-19) or a debugger (K-5.19-20) fills the hypervisor's event queue,
    under the rule the running policy names for it."""
    if m.in_guest:
        raise EngineError(_field(index), "inject", "the vCPU outside the guest (add an exit step first)")
    event = step.event
    subject = m.subject
    linear = m.linear(m.vmcb.rip)
    if subject is None or (subject.vector, subject.linear) != (event.vector, linear):
        # A new event becomes the subject; re-injecting the current one (guest debug, EX-19) keeps it.
        subject = m.subject = _injected_subject(m, event.vector, event.type, m.vmcb.rip, m.vmcb.cs_base)
    queue = m.kvm.queue
    queue.subject = event.vector == subject.vector
    m.arch_return = None  # KVM_SET_VCPU_EVENTS replaces what was queued: the oracle forgets its return address
    if event.type is EventType.EXCEPTION:
        queue.exception_vector, queue.exception_error = event.vector, event.error_code
        if step.source is InjectionSource.GUEST_DEBUG:
            queue.exception_pending = True
        else:
            queue.exception_injected = True
    elif event.type is EventType.NMI:
        queue.nmi_injected = True
    else:
        queue.interrupt_injected = True
        queue.interrupt_nr, queue.interrupt_soft = event.vector, event.type is EventType.SOFT
    m.log(
        Actor.USERSPACE,
        Action.QUEUE,
        policy.userspace_rule(step.source),
        f"{step.source.value} injects {_describe(event)}",
    )


def _describe(event: Event) -> str:
    return events.describe(events.encode(event.vector, event.type, event.error_code))


def _injected_subject(m: Machine, vector: int, event_type: EventType, rip: int, cs_base: int) -> Subject:
    return Subject(
        vector=vector,
        type=event_type,
        rip=rip,
        linear=m.linear(rip, cs_base),
        injected=True,
        original=b"",
        arch_return=None,
    )


def _l1_vmrun(m: Machine, policy: Policy, index: int, step: L1Vmrun) -> None:
    if m.in_guest and not m.l1_has_control:
        raise EngineError(_field(index), "L1 VMRUN", "L2 not running (an exit reflected to L1 must come first)")
    if m.in_guest:  # L1 runs (L0 entered it after the reflected exit): its VMRUN exits to L0
        m.in_guest = False
        m.frames.clear()  # L1's own handler frames: the model does not follow L1's code
        m.log(Actor.L1, Action.NOTE, "", "L1 executes VMRUN: #VMEXIT to L0, which emulates it")
    m.l1_has_control = False
    if events.is_valid(step.event_inj):  # every L1 injection is a new subject (S-9, S-13)
        event_type = events.event_type_of(step.event_inj) or EventType.INTR
        rip = step.rip if step.rip is not None else m.vmcb02.rip
        cs_base = step.cs_base if step.cs_base is not None else m.vmcb02.cs_base
        m.subject = _injected_subject(m, events.vector_of(step.event_inj), event_type, rip, cs_base)
    policy.nested_vmrun(m, step)


def _save_restore(m: Machine, policy: Policy, index: int, step: SaveRestore) -> None:
    """KVM_GET_NESTED_STATE + KVM_GET_VCPU_EVENTS, then the same into a fresh vCPU (the queue travels)."""
    if m.in_guest:
        raise EngineError(_field(index), "save/restore", "the vCPU outside the guest (add an exit step first)")
    if not m.kvm.guest_mode:
        raise EngineError(_field(index), "save/restore", "L2 state to save (an L1 VMRUN step first)")
    kvm, cached = m.kvm, m.kvm.vmcb12
    saved = NestedState(
        run_pending=kvm.nested_run_pending,
        vmcb12_event_inj=cached.event_inj,
        vmcb12_event_inj_err=cached.event_inj_err,
        vmcb12_next_rip=cached.next_rip,
        l2_rip=m.vmcb02.rip,
        l2_cs_base=m.vmcb02.cs_base,
        regs_first=step.regs_first,
        vmcb02_next_rip=m.vmcb02.next_rip,
    )
    pending = "with" if saved.run_pending else "without"
    m.log(Actor.USERSPACE, Action.SAVE, "", f"KVM_GET_NESTED_STATE {pending} a nested run pending")
    policy.set_nested_state(m, saved)


# -- entries and exits ---------------------------------------------------------------------------------------------


def _enter(m: Machine, policy: Policy) -> None:
    """One VM entry: inject, maybe cancel, nested fix-ups, VMRUN, and the exit that ends it (if any)."""
    policy.inject_pending_event(m)
    if not m.kvm.queue.exception_pending:
        m.kvm.event_request = False  # the queued exception went in with this entry
    if m.anomaly in _STOPPING:
        return
    if m.cancel_armed:
        m.cancel_armed = False
        policy.cancel_injection(m)
        return
    policy.before_vmrun(m)
    exit_ = cpu.vmrun(m)
    if m.kvm.guest_mode and (exit_ is None or exit_.code != ExitCode.INVALID):
        m.kvm.nested_run_pending = False  # the hardware entered L2
    if exit_ is not None:
        _after_exit(m, policy, exit_)


def _serve_event_request(m: Machine, policy: Policy) -> None:
    """K-6.0-30: the #UD queued while the #BP was injected is injected at the next entry, before the guest's next
    instruction (its handler returned onto the INT3), so the guest takes #UD at the INT3. The interleaving is
    unverified (DEFERRED_EXCEPTION_RULE); no #VMEXIT is recorded because none is described."""
    m.kvm.event_request = False
    m.kvm.queue.subject = False  # the pending #UD is KVM's, not the scenario's event
    m.in_guest = False
    m.log(
        Actor.L0,
        Action.NOTE,
        DEFERRED_EXCEPTION_RULE,
        f"KVM_REQ_EVENT with {m.kvm.queue.describe()}: the vCPU re-enters before the next instruction",
    )
    m.deferred_entry = True
    _enter(m, policy)
    m.deferred_entry = False


def _after_exit(m: Machine, policy: Policy, exit_: Exit) -> None:
    """K-5.19-5: svm->next_rip = 0, the completion, then the exit handler (L0) or the reflection to L1."""
    m.kvm.next_rip = 0
    if exit_.code == ExitCode.INVALID:
        return
    policy.complete_interrupts(m, exit_)
    if m.kvm.guest_mode:
        policy.after_vmrun(m)
    if exit_.handled_by is Level.L1:
        policy.nested_vmexit(m, exit_)
        return
    policy.handle_exit(m, exit_)
    if exit_.code in _INSTRUCTION_EXITS and m.vmcb.next_rip:
        m.stale_next_rip = True  # KVM skipped using next_rip and never clears the field (K-6.0-26)


def _run(m: Machine, policy: Policy, index: int, step: Run) -> None:
    """Re-enter and let the guest run until the subject is settled, L1 or userspace must act, or the bound."""
    first_entry = m.entries
    for _ in range(step.max_entries * ACTIONS_PER_ENTRY):
        if m.anomaly in _STOPPING or m.l1_has_control or m.debug_exit_pending:
            return
        if not m.in_guest:
            if m.entries - first_entry >= step.max_entries:
                m.notes.append(f"run stopped after {step.max_entries} entries")
                return
            _enter(m, policy)
            continue
        if _returned_or_served(m, policy):
            continue
        if _settled(m):
            return
        _execute_next(m, policy)
    m.notes.append("run stopped: guest action bound reached")


def _settled(m: Machine) -> bool:
    """Nothing more to watch: the guest is not about to (re-)execute the subject's instruction."""
    subject = m.subject
    if subject is None:
        # Nothing raised yet: keep executing the scenario's own code, stop where no code was written.
        return not m.has_code(m.linear(m.vmcb.rip))
    if m.linear(m.vmcb.rip) != subject.linear:
        return True
    if subject.deliveries == 0:
        return False
    insn = cpu_decode(m.read(subject.linear, MAX_INSN_LENGTH), m.mode.bitness, m.vmcb.rip)
    return insn.kind not in (InsnKind.INT3, InsnKind.INTO, InsnKind.INT_N, InsnKind.ICEBP)


def _result(m: Machine, policy: Policy) -> Result:
    outcome = classify(m)
    # Positional, in field order (outcome … trace): keyword binding of 18 arguments costs half as much again.
    return Result(
        outcome,
        weakest(m.rules, policy.evidence),
        tuple(m.vmruns),
        tuple(m.exits),
        tuple(m.deliveries),
        tuple(m.requeued),
        tuple(m.vmcb12_exits),
        m.subject.vector if m.subject is not None else None,  # subject_vector
        m.spurious_db,
        m.pending_exception_seen,
        m.l1_nmi_masked,
        m.debug_exits,
        m.kvm.insn_emulation_fail,  # emulation_failures
        m.vmcb.rip,  # final_rip
        tuple(m.rules),  # outcome_rules
        tuple(m.tracepoints),
        tuple(m.notes),
        tuple(m.trace),
    )


#: One handler per step class: a dict lookup on the exact type instead of a chain of isinstance tests.
_STEP_HANDLERS: dict[type, Callable[[Machine, Policy, int, Any], None]] = {
    Execute: _execute,
    Inject: _inject,
    L1Vmrun: _l1_vmrun,
    VectoringFault: _vectoring_fault,
    ExitFor: _exit_for,
    ModifyCode: _modify_code,
    SetPage: _set_page,
    CancelEntry: _cancel_entry,
    SaveRestore: _save_restore,
    Reenter: _reenter,
    Run: _run,
}
