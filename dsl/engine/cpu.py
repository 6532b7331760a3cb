"""The processor: VMRUN with EVENTINJ, and the guest's instructions (delivery is in `delivery`, exits in `exits`).

Hardware facts only (hardware.md); what differs between CPU models comes from the `Profile`. The CPU never
calls the hypervisor: it returns an `Exit` and the run loop hands it to the policy. `Exit`, `deliver`, `iret` and
`vmexit` are re-exported here for the policy modules.
"""

from __future__ import annotations

from typing import NamedTuple

from dsl.engine import events
from dsl.engine.decode import LEGACY_PREFIXES, LOCK_PREFIX, MAX_INSN_LENGTH, OPCODE_INT3, Insn, InsnKind, cpu_decode
from dsl.engine.delivery import deliver, iret
from dsl.engine.exits import Exit, profile_of, vmexit
from dsl.engine.machine import (
    ADDRESS_MASK_16,
    RFLAGS_IF,
    RFLAGS_OF,
    RFLAGS_TF,
    InFlight,
    Machine,
    Subject,
)
from dsl.engine.profiles import DR7_NOT_ARMED_RULE, ICEBP_COMPILED_OUT_RULE, LOCK_INT3_RULE, Profile
from dsl.engine.result import RFLAGS_RF, Action
from dsl.engine.vocab import (
    Actor,
    EventType,
    ExitCode,
    Level,
    Outcome,
    PageTable,
    PagingMode,
    Vector,
)

#: #PF error code of an instruction fetch from a non-present page (I/D bit).
PF_FETCH_ERROR = 0x10
#: Exits an instruction intercept produces, by instruction kind (H-18).
_INTERCEPT_EXIT: dict[InsnKind, ExitCode] = {
    InsnKind.HLT: ExitCode.HLT,
    InsnKind.CPUID: ExitCode.CPUID,
    InsnKind.IO: ExitCode.IOIO,
    InsnKind.MSR: ExitCode.MSR,
    InsnKind.VMMCALL: ExitCode.VMMCALL,
}
#: Instructions a policy may intercept (`Policy.intercepted_instructions`): the exit replaces their event (H-20).
_OPTIONAL_INTERCEPT: dict[InsnKind, ExitCode] = {InsnKind.ICEBP: ExitCode.ICEBP}
#: Instructions whose event is a trap: the frame returns after the instruction (H-21 … H-24).
_EVENT_OF: dict[InsnKind, tuple[int, EventType, bool]] = {
    InsnKind.INT3: (Vector.BP, EventType.EXCEPTION, True),
    InsnKind.INTO: (Vector.OF, EventType.EXCEPTION, True),
    InsnKind.ICEBP: (Vector.DB, EventType.EXCEPTION, False),
}
#: Instructions that raise an event when they execute (BOUND only out of bounds); every other one completes.
_RAISING: frozenset[InsnKind] = frozenset((*_EVENT_OF, InsnKind.INT_N, InsnKind.TOO_LONG, InsnKind.UD, InsnKind.BOUND))


class Fetched(NamedTuple):
    """The instruction the guest executes: where it is, where it ends, and its bytes.

    Fetched once per instruction and handed down, so raising its event neither recomputes the linear address
    nor reads the bytes the subject remembers again.
    """

    rip: int
    linear: int
    next_ip: int
    insn_bytes: bytes


#: Builds a NamedTuple in C (see machine._new_tuple).
_new_tuple = tuple.__new__

__all__ = ["Exit", "async_exit", "deliver", "execute", "iret", "profile_of", "vmexit", "vmrun"]


# -- VMRUN ---------------------------------------------------------------------------------------------------------


def vmrun(m: Machine) -> Exit | None:
    """Enter the guest: consistency check (H-8), then deliver EVENTINJ (H-5, H-6, H-9), then any armed exit."""
    profile = m.hardware
    vmcb = m.vmcb
    reason = profile.vmrun_rejects(vmcb.event_inj, m.mode)
    if reason is not None:
        m.record_vmrun(failed=True)
        m.set_anomaly(Outcome.VMEXIT_INVALID)
        return vmexit(m, Exit(ExitCode.INVALID, Level.L0), "H-8", f"VMRUN fails: {reason}")
    m.record_vmrun()
    m.entries += 1
    m.in_guest = True
    m.log(
        Actor.CPU,
        Action.VMRUN,
        "H-5",
        f"VMRUN: RIP {hex(vmcb.rip)}, next_rip {hex(vmcb.next_rip)}, EVENTINJ {events.describe(vmcb.event_inj)}",
    )
    if events.is_valid(vmcb.event_inj):
        ev = injected_event(m, profile)
        if profile.copies_event_slot:
            m.qemu_event_slot = vmcb.event_inj
        vmcb.event_inj = 0  # consumed (H-9)
        exit_ = deliver(m, ev)
        if exit_ is not None:
            return exit_
    if m.armed_exits:
        return async_exit(m, m.armed_exits.pop(0))
    return None


def injected_event(m: Machine, profile: Profile) -> InFlight:
    """The event VMRUN delivers from EVENTINJ, with the return address it pushes (H-6)."""
    vmcb = m.vmcb
    value = vmcb.event_inj
    event_type = events.event_type_of(value) or EventType.INTR
    vector = Vector.NMI if event_type is EventType.NMI else events.vector_of(value)
    soft = events.is_soft(event_type, vector)
    ret: int | None = profile.injected_return(value, vmcb.rip, vmcb.next_rip, m.mode)
    if soft and m.state_protected:
        ret = None  # what an SEV-ES CPU pushes is hardware/VMSA-defined (K-6.0-31)
        m.log(Actor.CPU, Action.NOTE, "K-6.0-31", "SEV-ES/SNP: the pushed return address is not specified")
        m.set_anomaly(Outcome.UNSPECIFIED)
    error_code = vmcb.event_inj_err if events.has_error_code(value) else None
    external = event_type in (EventType.INTR, EventType.NMI)
    # Positional, in field order (keyword binding costs as much again): vector, type, error_code, return_rip,
    # start_rip, injected, dpl_checked, from_instruction, subject, external.
    dpl_checked = profile.event_dpl_checked(value)
    return InFlight(vector, event_type, error_code, ret, vmcb.rip, True, dpl_checked, False, m.inj_subject, external)


def async_exit(m: Machine, code: int) -> Exit:
    """An exit that is not a vectoring fault (INTR, NMI, #NPF/MMIO, or an intercepted instruction at RIP)."""
    next_ip = None
    if code in _INTERCEPT_EXIT.values():
        insn = cpu_decode(m.read(m.linear(m.vmcb.rip), MAX_INSN_LENGTH), m.mode.bitness, m.vmcb.rip)
        next_ip = (m.vmcb.rip + insn.length) & m.rip_mask()
    handled_by = _instruction_exit_level(m, code)
    return vmexit(m, Exit(code, handled_by, insn_next=next_ip), "H-12", "exit outside event delivery", next_ip)


def _instruction_exit_level(m: Machine, code: int) -> Level:
    if _l1_intercepts(m, code):
        return Level.L1
    return Level.L0


def _l1_intercepts(m: Machine, code: int) -> bool:
    nesting = m.program.setup.nesting
    return m.kvm.guest_mode and nesting is not None and code in nesting.intercepted_exits


def _intercepted_event(m: Machine, kind: InsnKind, at: Fetched) -> Exit | None:
    """An event-raising instruction L0 (or L1) intercepts: it exits before raising its event (H-20, XEN-4)."""
    exit_code = _OPTIONAL_INTERCEPT[kind]
    if exit_code not in m.instruction_intercepts and not _l1_intercepts(m, exit_code):
        return None
    vector, event_type, _ = _EVENT_OF[kind]
    _note_subject(m, at, vector, event_type)
    level = _instruction_exit_level(m, exit_code)
    next_ip = at.next_ip
    return vmexit(m, Exit(exit_code, level, insn_next=next_ip), "H-20", f"{kind.value} intercepted", next_ip)


def _note_subject(m: Machine, at: Fetched, vector: int, event_type: EventType, fault: bool = False) -> None:
    """The first event a guest instruction raises becomes the scenario's subject (a fault returns to its RIP)."""
    if m.subject is not None:
        return
    rip = at.rip
    # Positional, in field order (vector … arch_return): keyword binding costs as much again as the build.
    m.subject = Subject(vector, event_type, rip, at.linear, False, at.insn_bytes, rip if fault else at.next_ip)


# -- guest instructions --------------------------------------------------------------------------------------------


def execute(m: Machine) -> Exit | None:
    """The guest executes the instruction at RIP (fetch, DR7, decode, effect, trap-class events)."""
    vmcb = m.vmcb
    rip = vmcb.rip
    linear = m.linear(rip)
    code = m.read(linear, MAX_INSN_LENGTH + 1)  # one more byte shows an over-long instruction (H-27)
    insn = cpu_decode(code, m.mode.bitness, rip)
    if any(m.missing.values()):  # most scenarios map every page: one test skips both tables' lookups
        host_page = m.first_missing_page(PageTable.HOST, linear, insn.length)
        if host_page is not None:
            npt = m.program.options.paging is PagingMode.NPT
            exit_code = ExitCode.NPF if npt else ExitCode.EXCP_PF
            return vmexit(
                m,
                Exit(exit_code, Level.L0, fixes=(PageTable.HOST, host_page)),
                "H-12",
                f"fetch at {hex(linear)}: no host mapping",
            )
        guest_page = m.first_missing_page(PageTable.GUEST, linear, insn.length)
        if guest_page is not None:
            m.log(Actor.CPU, Action.FAULT, "H-5", f"instruction fetch at {hex(linear)}: guest page not present, #PF")
            fault = InFlight(Vector.PF, EventType.EXCEPTION, PF_FETCH_ERROR, rip, rip, False, False, False, False)
            return deliver(m, fault._replace(maps_page=guest_page))
    if linear in m.breakpoints and not vmcb.rflags & RFLAGS_RF:
        if m.hardware.arms_dr7_breakpoints:
            return _code_breakpoint(m, rip, linear)
        m.log(Actor.CPU, Action.NOTE, DR7_NOT_ARMED_RULE, f"DR7 breakpoint at {hex(linear)} not armed by VMRUN")
    m.log(Actor.GUEST, Action.EXECUTE, "", f"{hex(rip)}: {insn.text} ({insn.encoding})")
    next_ip = rip + insn.length
    if m.mode.bitness == 16 and next_ip > ADDRESS_MASK_16:
        m.log(Actor.CPU, Action.NOTE, "H-32", "16-bit IP overflows past 0xFFFF: not specified by the sources")
        m.set_anomaly(Outcome.UNSPECIFIED)
    next_ip &= m.rip_mask()
    kind = _tcg_kind(m, insn, code) if m.hardware.tcg_quirks else insn.kind
    if kind in _INTERCEPT_EXIT:
        exit_code = _INTERCEPT_EXIT[kind]
        return vmexit(
            m, Exit(exit_code, _instruction_exit_level(m, exit_code), insn_next=next_ip), "H-12", insn.text, next_ip
        )
    if kind is InsnKind.INTO and not vmcb.rflags & RFLAGS_OF:
        kind = InsnKind.OTHER  # OF = 0: INTO does nothing (H-23)
    if kind not in _RAISING:
        return _complete(m, insn.kind, next_ip, insn.branch_target)
    at = _new_tuple(Fetched, (rip, linear, next_ip, code[: insn.length]))
    if kind in _OPTIONAL_INTERCEPT:
        intercepted = _intercepted_event(m, kind, at)
        if intercepted is not None:
            return intercepted
    # The kinds below exclude each other; the trap-class instructions, what scenarios are about, are tested first
    # (every `InsnKind.X` costs a lookup through EnumType.__getattr__ on Python 3.11).
    if kind in _EVENT_OF:
        vector, event_type, dpl = _EVENT_OF[kind]
        return _raise(m, at, vector, event_type, None, fault=False, rule="H-4", dpl=dpl)
    if kind is InsnKind.INT_N:
        return _raise(m, at, insn.imm8, EventType.SOFT, None, fault=False, rule="H-22", dpl=True)
    if kind is InsnKind.TOO_LONG:
        return _raise(m, at, Vector.GP, EventType.EXCEPTION, 0, fault=True, rule="H-27")
    if kind is InsnKind.UD:
        return _raise(m, at, Vector.UD, EventType.EXCEPTION, None, fault=True, rule="H-28")
    if kind is InsnKind.BOUND and not m.program.setup.bound_in_range:
        # H-25: out of bounds, #BR as a fault; it is the scenario's subject like a soft instruction's event.
        return _raise(m, at, Vector.BR, EventType.EXCEPTION, None, fault=True, rule="H-25", subject=True)
    return _complete(m, insn.kind, next_ip, insn.branch_target)


def _tcg_kind(m: Machine, insn: Insn, code: bytes) -> InsnKind:
    """What QEMU's TCG makes of ICEBP (Q-10) and LOCK INT3 (Q-11); every other CPU model executes `insn.kind`."""
    kind = insn.kind
    profile = m.hardware
    if kind is InsnKind.ICEBP and profile.icebp_raises_ud:
        m.log(Actor.CPU, Action.NOTE, ICEBP_COMPILED_OUT_RULE, "TCG compiles ICEBP out: F1 raises #UD")
        return InsnKind.UD
    if kind is InsnKind.UD and profile.lock_int3_is_int3 and _is_lock_int3(code[: insn.length]):
        m.log(Actor.CPU, Action.NOTE, LOCK_INT3_RULE, "TCG ignores LOCK on INT3: #BP after the instruction")
        return InsnKind.INT3
    return kind


def _is_lock_int3(code: bytes) -> bool:
    """Legacy prefixes, one of them LOCK, then `CC`."""
    prefixes, final = code[:-1], code[-1:]
    return final == bytes((OPCODE_INT3,)) and LOCK_PREFIX in prefixes and all(b in LEGACY_PREFIXES for b in prefixes)


def _complete(m: Machine, kind: InsnKind, next_ip: int, target: int | None) -> Exit | None:
    """An instruction completed: RIP moves on, RF and the shadow end, TF single-steps (H-34 … H-36)."""
    vmcb = m.vmcb
    single_step = bool(vmcb.rflags & RFLAGS_TF)
    vmcb.rip = target if kind in (InsnKind.JUMP, InsnKind.CALL) and target is not None else next_ip
    vmcb.rflags &= ~RFLAGS_RF
    had_if = bool(vmcb.rflags & RFLAGS_IF)
    vmcb.int_shadow = (kind is InsnKind.STI and not had_if) or kind is InsnKind.MOV_SS
    if kind is InsnKind.STI:
        vmcb.rflags |= RFLAGS_IF
    if single_step:
        ev = InFlight(Vector.DB, EventType.EXCEPTION, None, vmcb.rip, vmcb.rip, False, False, False, False)
        return deliver(m, ev)
    return None


def _code_breakpoint(m: Machine, rip: int, linear: int) -> Exit | None:
    """A DR7 instruction breakpoint: a fault before the instruction, suppressed by RF (H-37)."""
    hits = m.breakpoint_hits.get(linear, 0) + 1
    m.breakpoint_hits[linear] = hits
    subject = m.subject
    if subject is not None and linear == subject.linear and (subject.retried or subject.dropped):
        m.spurious_db = True
        m.log(
            Actor.CPU, Action.FAULT, "H-37", f"code breakpoint at {hex(linear)} fires again on the retried instruction"
        )
    else:
        m.log(Actor.CPU, Action.FAULT, "H-37", f"code breakpoint DR{m.breakpoints[linear]} at {hex(linear)}: #DB")
    # The handler returns with RF set so the instruction then runs (the pushed image carries RF, H-34).
    ev = InFlight(Vector.DB, EventType.EXCEPTION, None, rip, rip, False, False, False, False)
    return deliver(m, ev)


def _raise(
    m: Machine,
    at: Fetched,
    vector: int,
    event_type: EventType,
    error_code: int | None,
    *,
    fault: bool,
    rule: str,
    dpl: bool = False,
    subject: bool = False,
) -> Exit | None:
    """A guest instruction raises an event: exception intercepts first (H-19, H-20), then IDT delivery.

    Traps (INT3, INTO, INT n) and `subject` faults (BOUND's #BR) are what a scenario is about; #UD / #GP of a bad
    encoding are not.
    """
    rip, next_ip = at.rip, at.next_ip
    if subject or not fault:
        _note_subject(m, at, vector, event_type, fault)
    current = m.subject
    is_subject = (
        current is not None and at.linear == current.linear and (not current.injected or vector == current.vector)
    )
    intercept = _exception_intercept(m, vector, event_type)
    if intercept is not None:
        exit_code = ExitCode.for_exception(vector)
        if intercept is Level.L0 and vector == Vector.BP:
            m.debug_exit_pending = True  # KVM_SET_GUEST_DEBUG: userspace acts next
        message = f"{events.VECTOR_NAMES[vector]} intercepted"
        return vmexit(m, Exit(exit_code, intercept, insn_next=next_ip), "H-20", message, next_ip)
    # Positional, in field order (vector … subject), like the other InFlight builds on this path.
    ev = InFlight(vector, event_type, error_code, rip if fault else next_ip, rip, False, dpl, not fault, is_subject)
    m.log(Actor.CPU, Action.DELIVER, rule, f"{hex(rip)} raises vector {hex(vector)} ({events.TYPE_NAMES[event_type]})")
    return deliver(m, ev)


def _exception_intercept(m: Machine, vector: int, event_type: EventType) -> Level | None:
    """Who intercepts an exception raised by a guest instruction; INT n never triggers one (H-19)."""
    if event_type is not EventType.EXCEPTION:
        return None
    nesting = m.program.setup.nesting
    if m.kvm.guest_mode and nesting is not None and vector in nesting.intercepted_exceptions:
        return Level.L1
    if vector == Vector.BP and m.program.options.guest_debug_sw_bp:
        return Level.L0
    if vector in m.exception_intercepts:
        return Level.L0
    return None
